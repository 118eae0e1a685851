"""Train a recommender on a saved KG, select it on validation NDCG@20, test it once, export embeddings.

    python train.py --config configs/ml100k.toml [--key value ...]
    torchrun --nproc_per_node 2 train.py --config configs/ml100k.toml --distributed true

Read top to bottom: config (train_config.py) -> data (KG, split, features, GraphInputs from the TRAINING
interactions only) -> model ("mmkg" or a baseline) -> epochs of BPR / softmax mini-batches over the training
edges (each process a shard under --distributed) -> validation every ``eval_every`` epochs with early
stopping (never the test set) -> the best-validation checkpoint is tested once. Writes into ``--out``:
``last.pt`` (every epoch, for --resume), ``best.pt``, ``metrics.json``, ``embeddings.safetensors`` +
``ids.json`` (serving), ``tb/`` (TensorBoard). Checkpoints hold only tensors / dicts / lists / str /
numbers (``torch.load(weights_only=True)``) and are written to a temporary file, then renamed.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from gnn.graph_inputs import GraphInputs, build_graph_inputs
from gnn.losses import bpr_loss, l2_regularization, sampled_softmax_loss
from gnn.negative_sampling import NegativeSampler
from gnn.recommender import Batch, FittedRecommender, TrainableRecommender, make_score_fn
from kg.atomic_files import atomic_path, write_text_atomic
from kg.errors import MMKGError
from kg.graph import KnowledgeGraph
from kg.splits import make_split
from train_config import RESUME_INVARIANT, ConfigError, TrainConfig, config_dict, parse_config, pick_device


def build_model(cfg: TrainConfig | dict[str, Any], inputs: GraphInputs) -> TrainableRecommender | FittedRecommender:
    """The model named by ``cfg.model`` ("mmkg" or a key of ``gnn.baselines.BASELINES``), sized from ``inputs``."""
    c = config_dict(cfg) if isinstance(cfg, TrainConfig) else {**config_dict(TrainConfig(kg="-")), **cfg}
    if c["model"] == "mmkg":
        from gnn.mmkg_model import MMKGModel, MMKGOptions

        names = MMKGOptions.__dataclass_fields__
        return MMKGModel.from_inputs(inputs, MMKGOptions(**{k: c[k] for k in names}))
    from gnn.baselines import BASELINES

    if c["model"] not in BASELINES:
        raise ConfigError(f"unknown model {c['model']!r} (mmkg or one of {', '.join(sorted(BASELINES))})")
    try:
        return BASELINES[c["model"]](inputs, embedding_dim=c["embedding_dim"], num_layers=c["num_layers"],
                                     **c["baseline_options"])
    except TypeError as e:
        raise ConfigError(f"baseline_options for {c['model']}: {e}") from None


def load_features(cfg: TrainConfig, kg: KnowledgeGraph) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``<kg>/features`` when present and wanted, else no features."""
    fdir = Path(cfg.kg) / "features"
    if not cfg.use_features or not fdir.is_dir():
        return {}, {}
    from encoders.features import load_features as load

    feats = load(fdir, kg)
    return dict(feats), dict(feats.identities)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``."""
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(obj, tmp)


def write_json(obj: Any, path: Path) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True))


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
    for start in tqdm(steps, desc=f"epoch {epoch}", unit="batch", leave=False, disable=not cfg.progress or rank):
        idx = perm[start: start + cfg.batch_size].to(dev)
        users, pos = inputs.train_user[idx], inputs.train_item[idx]
        if every_item is not None:  # full softmax: every item is a negative (own ones masked below)
            neg = every_item
        elif shared:
            neg = sampler.sample(users[:1], cfg.num_negatives, gen).reshape(-1).to(dev)
        else:
            neg = sampler.sample(users, cfg.num_negatives, gen).to(dev)
        user_emb, item_emb = model(inputs)
        u = user_emb[users]
        s_pos = (u * item_emb[pos]).sum(-1)
        batch = Batch(users, pos, neg)
        fix = core.positive_score_correction(batch, user_emb, item_emb)
        s_pos = s_pos if fix is None else s_pos + fix
        if shared:  # a user's own training items are no negatives ("accidental hits")
            s_neg = (u @ item_emb[neg].T).masked_fill(sampler.is_positive(users[:, None], neg[None, :]), -1e9)
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
        opt.step()
        if ema is not None:
            ema.update_parameters(core)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
    return {k: v / max(len(steps), 1) for k, v in sums.items()}


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_config(sys.argv[1:] if argv is None else argv))
    except MMKGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(cfg: TrainConfig) -> int:
    # ---------------------------------------------------------------- runtime
    rank, world, local_rank = 0, 1, 0
    if cfg.distributed:
        if "RANK" not in os.environ:
            raise ConfigError("--distributed needs torchrun (RANK / WORLD_SIZE are not set)")
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = pick_device(cfg.device, local_rank)
    if cfg.distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        warnings.filterwarnings("once", message=".*does not have a deterministic implementation.*")
    if cfg.neighbor_sampling:
        from gnn.adjacency import neighbor_sampling_backend

        found = neighbor_sampling_backend()
        print("note: neighbour-sampled mini-batching needs pyg-lib or torch-sparse; " + (
            "neither is importable, so training runs full-graph" if found is None else
            f"{found} is importable, but this trainer propagates full-graph (sampled training not implemented)"),
            file=sys.stderr)
    (out := Path(cfg.out)).mkdir(parents=True, exist_ok=True)
    # ------------------------------------------------------------------- data
    kg = KnowledgeGraph.load(cfg.kg)
    inter = kg.interactions()
    split = make_split(inter, cfg.split, tuple(cfg.split_ratios), cfg.split_seed, cfg.cold_fraction)
    train_part, valid_part, test_part = split.parts(inter)
    feats, identities = load_features(cfg, kg)
    inputs = build_graph_inputs(kg, train_part, feats).to(device)
    from evaluation.protocol import TestEvaluator, ValidationEvaluator
    from evaluation.ranking import build_user_item_sets

    sets = [build_user_item_sets(p.user, p.item, inputs.num_users, inputs.num_items)
            for p in (train_part, valid_part, test_part)]
    validator = ValidationEvaluator(sets[0], sets[1], cfg.ks, cfg.main_metric, cfg.eval_batch_size)
    from evaluation.checkpoint_scoring import ids_digest

    meta = {"format": "mmkgrec-train/1", "model": cfg.model, "config": config_dict(cfg),
            "kg_dir": str(Path(cfg.kg).resolve()), "encoders": identities,
            "id_maps": {"user": list(kg.ids("user")), "item": list(kg.ids("item")),
                        "entity": ids_digest(kg.ids("entity"))},
            "split": {"method": split.method, "ratios": list(cfg.split_ratios), "seed": split.seed,
                      "cold_fraction": cfg.cold_fraction, "cold_items": split.cold_items.tolist()}}
    # ------------------------------------------------------------------ model
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, inputs)
    history: dict[str, Any] = {"valid": [], "epoch_seconds": [], "best_epoch": None, "best_score": None, "bad": 0,
                               "stopped": False, "epoch": 0}
    if isinstance(model, FittedRecommender):
        t0 = time.perf_counter()
        model.fit(inputs.train_user, inputs.train_item, inputs.num_users, inputs.num_items)
        history["fit_seconds"] = time.perf_counter() - t0
        result = validator.evaluate(model.score)
        history["valid"].append({"epoch": 0, **{k: v["mean"] for k, v in result.metrics.items()}})
        atomic_save({**meta, "model_state": {}, "metrics": {"valid": history["valid"][-1]}}, out / "best.pt")
    else:
        model.to(device)
        core = model
        if cfg.distributed:
            model = torch.nn.parallel.DistributedDataParallel(
                core, device_ids=[device.index] if device.type == "cuda" else None)
        opt = torch.optim.Adam(core.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        ema = AveragedModel(core, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay)) if cfg.ema_decay > 0 else None
        scored = core if ema is None else ema.module  # what validation ranks and best.pt keeps
        if cfg.resume and (out / "last.pt").is_file():
            ck = torch.load(out / "last.pt", map_location=device, weights_only=True)
            changed = [k for k in RESUME_INVARIANT  # a field newer than the checkpoint: its default
                       if ck["config"].get(k, getattr(TrainConfig, k, None)) != config_dict(cfg)[k]]
            if changed:
                raise ConfigError(f"{out / 'last.pt'}: cannot resume, the config changed ({', '.join(changed)})")
            core.load_state_dict(ck["model_state"])
            opt.load_state_dict(ck["optimizer_state"])
            if ema is not None:
                ema.load_state_dict(ck["ema_state"])
            history = ck["history"]
            if rank == 0:
                print(f"resumed from {out / 'last.pt'} after epoch {history['epoch']}", file=sys.stderr)
        elif cfg.resume and rank == 0:
            print(f"note: --resume but no {out / 'last.pt'} yet; starting from scratch", file=sys.stderr)
        sampler = NegativeSampler(inputs.train_user, inputs.train_item, inputs.num_items, cfg.negative_sampling,
                                  exclude_items=torch.from_numpy(split.cold_items))  # new items: not yet there
        writer = None
        if cfg.tensorboard and rank == 0:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"), purge_step=history["epoch"] + 1)
        epoch = history["epoch"]
        while not history["stopped"] and epoch < cfg.epochs:
            epoch += 1
            core.train()
            t0 = time.perf_counter()
            losses = train_epoch(model, core, inputs, sampler, opt, cfg, epoch, rank, world, ema)
            history["epoch_seconds"].append(time.perf_counter() - t0)
            history.setdefault("train", []).append({"epoch": epoch, "loss": float(sum(losses.values()))})
            history["epoch"] = epoch
            stop = [False]
            if rank == 0:
                scalars = {f"train/{k}": v for k, v in losses.items()}
                scalars["train/epoch_seconds"] = history["epoch_seconds"][-1]
                improved = False
                if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                    core.eval()
                    scored.eval()
                    result = validator.evaluate(scored.score_fn(inputs))
                    metrics = {k: v["mean"] for k, v in result.metrics.items()}
                    history["valid"].append({"epoch": epoch, **metrics})
                    scalars.update({f"valid/{k}": v for k, v in metrics.items()})
                    score = metrics[cfg.main_metric]
                    improved = history["best_score"] is None or score > history["best_score"]
                    if improved:
                        history.update(best_score=score, best_epoch=epoch, bad=0)
                    else:
                        history["bad"] += 1
                    history["stopped"] = history["bad"] >= cfg.patience
                    print(f"epoch {epoch}: loss {sum(losses.values()):.4f}, valid {cfg.main_metric} {score:.4f}"
                          f"{' *' if improved else ''} ({history['epoch_seconds'][-1]:.1f}s/epoch)", file=sys.stderr)
                for tag, value in scalars.items() if writer is not None else ():
                    writer.add_scalar(tag, value, epoch)
                ck = {**meta, "model_state": core.state_dict(), "optimizer_state": opt.state_dict(),
                      "history": history, "metrics": {"valid": history["valid"][-1] if history["valid"] else {}}}
                if ema is not None:  # resume needs both; the best checkpoint holds the averaged weights it scored
                    ck["ema_state"] = ema.state_dict()
                if improved:
                    atomic_save({**ck, "model_state": scored.state_dict()}, out / "best.pt")
                atomic_save(ck, out / "last.pt")
                stop = [history["stopped"]]
            if cfg.distributed:
                dist.broadcast_object_list(stop, src=0)
            history["stopped"] = stop[0]
        if writer is not None:
            writer.close()
        if cfg.distributed:  # the ranks' parameters must agree after training
            flat = torch.cat([p.detach().double().flatten().cpu() for p in core.parameters()])
            history["rank_checksums"] = [None] * world
            dist.all_gather_object(history["rank_checksums"], [float(flat.sum()), float(flat.pow(2).sum())])
        if rank == 0:
            best = torch.load(out / "best.pt", map_location=device, weights_only=True)
            core.load_state_dict(best["model_state"])
            core.eval()
    # ------------------------------------------------------------------- test
    if rank == 0:
        tester = TestEvaluator(sets[0], sets[1], sets[2], cfg.ks, cfg.eval_batch_size, cfg.test_resamples, cfg.seed)
        scorer = model if isinstance(model, FittedRecommender) else core
        score_fn = make_score_fn(scorer, inputs)
        result = tester.evaluate(score_fn, str((out / "best.pt").resolve()))
        test = {k: v["mean"] for k, v in result.metrics.items()}
        ci = {k: list(v["ci95"]) for k, v in result.metrics.items() if v["ci95"]}
        best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
        best["metrics"] = {**best.get("metrics", {}), "test": test}
        atomic_save(best, out / "best.pt")
        summary = {"model": cfg.model, "test": test, "test_ci95": ci, **history}
        write_json(summary, out / "metrics.json")
        if isinstance(scorer, TrainableRecommender):
            export_embeddings(scorer, inputs, kg, out)
        print("test: " + ", ".join(f"{k} {v:.4f}" for k, v in test.items() if k[:4] in ("reca", "ndcg")),
              file=sys.stderr)
    if cfg.distributed:
        dist.barrier()
        del model  # the DDP wrapper's reducer holds the group: let it go first (no gloo work left at exit)
        gc.collect()
        dist.destroy_process_group()
    return 0


def export_embeddings(model: TrainableRecommender, inputs: GraphInputs, kg: KnowledgeGraph, out: Path) -> None:
    """Final ``user_emb [U, d]`` / ``item_emb [I, d]`` as safetensors, and the external ids as JSON."""
    from safetensors.torch import save_file

    with torch.no_grad():
        user_emb, item_emb = model(inputs)
    tmp = out / f".embeddings.{os.getpid()}.tmp"
    save_file({"user_emb": user_emb.float().cpu().contiguous(), "item_emb": item_emb.float().cpu().contiguous()},
              str(tmp), metadata={"score": "dot", "model": type(model).__name__})
    os.replace(tmp, out / "embeddings.safetensors")
    write_json({"user": kg.ids("user"), "item": kg.ids("item")}, out / "ids.json")


if __name__ == "__main__":
    sys.exit(main())
