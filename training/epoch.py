"""One training epoch: mini-batches of the training edges, ranking loss plus the model's own terms.

``--content_refresh N`` (> 1, the full model): the content side of the propagation's input (projected text /
image, the KG propagation, the item-item graph propagation, user content and profile:
:meth:`~gnn.mmkg_model.MMKGModel.content_terms`) is
computed on the first step of every window of ``N`` steps and reused on the others, added to the current ID
embeddings; each step's gradient with respect to those terms is summed over the window and sent back through
their graph once, on its last step, before that step's optimiser update. The content parameters therefore take
one update per window (from ``N`` batches' gradient; Adam skips them in between, their gradient is ``None``),
the ID embeddings every step; the KG and item-item graph terms see the ID embeddings of the window's first
step. With ``N = 1`` every step computes everything (the exact gradient).
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from gnn.graph_inputs import GraphInputs
from gnn.losses import bpr_loss, l2_regularization, sampled_softmax_loss
from gnn.negative_sampling import NegativeSampler
from gnn.recommender import Batch, Rows, TrainableRecommender
from training.config import TrainConfig


def train_epoch(model, core: TrainableRecommender, inputs: GraphInputs, sampler: NegativeSampler,
                opt: torch.optim.Optimizer, cfg: TrainConfig, epoch: int, rank: int, world: int,
                ema: AveragedModel | None = None) -> dict[str, float]:
    """One pass over this process's shard of the training edges (``ema``, when given, averages the weights
    after every step); returns the mean loss terms."""
    torch.manual_seed(cfg.seed * 1_000_003 + epoch * 7919 + rank)  # reproducible after --resume
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch * 7919 + rank)
    n_edges = inputs.train_user.numel()
    perm = torch.randperm(n_edges, generator=torch.Generator().manual_seed(cfg.seed * 31 + epoch))
    perm = perm[: n_edges - n_edges % world][rank::world] if world > 1 else perm
    dev = inputs.train_user.device
    user_weight = None  # pairs of a user with n training items weigh n ** -user_weight_power
    if cfg.user_weight_power:
        user_weight = torch.bincount(inputs.train_user, minlength=inputs.num_users).clamp(min=1).float()
        user_weight = user_weight.pow(-cfg.user_weight_power)
    shared = cfg.shared_negatives or cfg.loss == "full_softmax"  # one negative set for the whole batch
    every_item = sampler.candidates.to(dev) if cfg.loss == "full_softmax" else None  # (cold items excluded)
    sums: dict[str, float] = {}
    steps = range(0, perm.numel(), cfg.batch_size)
    window = cfg.content_refresh if hasattr(core, "content_terms") else 1
    content = reused = None  # this window's content terms (with their graph) and the detached leaves steps use
    for step, start in enumerate(tqdm(steps, desc=f"epoch {epoch}", unit="batch", leave=False,
                                      disable=not cfg.progress or rank)):
        if window > 1 and step % window == 0:
            content = {k: v for k, v in core.content_terms(inputs).items() if k in core.reusable_content}
            reused = {k: v.detach().requires_grad_() for k, v in content.items()}
        extra = {"content": reused} if reused is not None else {}
        idx = perm[start: start + cfg.batch_size].to(dev)
        users, pos = inputs.train_user[idx], inputs.train_item[idx]
        if every_item is not None:  # full softmax: every item is a negative (own ones masked below)
            neg = every_item
        elif shared:
            neg = sampler.sample(users[:1], cfg.num_negatives, gen).reshape(-1).to(dev)
        else:
            neg = sampler.sample(users, cfg.num_negatives, gen).to(dev)
        if core.supports_rows and every_item is None:  # only the batch's rows need be exact
            user_emb, item_emb = model(inputs, rows=Rows(users, torch.cat([pos, neg.reshape(-1)])), **extra)
        else:
            user_emb, item_emb = model(inputs, **extra)
        u = user_emb[users]
        s_pos = (u * item_emb[pos]).sum(-1)
        batch = Batch(users, pos, neg)
        fix = core.positive_score_correction(batch, user_emb, item_emb)
        s_pos = s_pos if fix is None else s_pos + fix
        if shared:  # a user's own training items are no negatives ("accidental hits")
            s_neg = u @ item_emb[neg].T  # the hits are found from the users' own items, not [B, n] lookups
            s_neg = s_neg.index_put_(sampler.positive_pairs(users, neg), s_neg.new_tensor(-1e9))
        else:
            s_neg = (u.unsqueeze(1) * item_emb[neg]).sum(-1) if neg.dim() == 2 else (u * item_emb[neg]).sum(-1)
        w = user_weight[users] if user_weight is not None else None
        terms = {"rank": bpr_loss(s_pos, s_neg, w) if cfg.loss == "bpr" else
                 sampled_softmax_loss(s_pos, s_neg, cfg.softmax_temperature, w)}
        if cfg.l2_weight > 0:
            terms["l2"] = cfg.l2_weight * l2_regularization(core.ego_embeddings(batch), users.numel())
        terms.update(core.loss_terms(inputs, user_emb, item_emb, batch))
        loss = sum(terms.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if reused is not None and (step % window == window - 1 or step == len(steps) - 1):
            done = [k for k in content if reused[k].grad is not None]  # the window's summed gradient, sent back once
            torch.autograd.backward([content[k] for k in done], [reused[k].grad for k in done])
            content = reused = None
        opt.step()
        if ema is not None:
            ema.update_parameters(core)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
    return {k: v / max(len(steps), 1) for k, v in sums.items()}
