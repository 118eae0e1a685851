"""Training losses: BPR, sampled softmax, L2 on ego embeddings, cross-modal InfoNCE and a TransE KG loss.

All return a scalar; weights are applied by the caller (``train.py`` / the model's ``loss_terms``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor


def _mean(per_row: Tensor, weight: Tensor | None) -> Tensor:
    return per_row.mean() if weight is None else (per_row * weight).sum() / weight.sum().clamp(min=1e-12)


def bpr_loss(pos_scores: Tensor, neg_scores: Tensor, weight: Tensor | None = None) -> Tensor:
    """Bayesian personalised ranking ``mean(-log sigmoid(s_pos - s_neg))``.

    Args:
        pos_scores: ``[B]`` scores of the positive items.
        neg_scores: ``[B]`` or ``[B, n]`` scores of sampled negatives (each paired with its row's positive).
        weight: ``[B]`` row weights (weighted mean); ``None`` = plain mean.
    """
    if neg_scores.dim() == 2:
        return _mean(F.softplus(neg_scores - pos_scores.unsqueeze(1)).mean(1), weight)
    return _mean(F.softplus(neg_scores - pos_scores), weight)


def sampled_softmax_loss(pos_scores: Tensor, neg_scores: Tensor, temperature: float = 1.0,
                         weight: Tensor | None = None) -> Tensor:
    """Softmax cross-entropy of the positive against its negatives: ``-log softmax([s_pos, s_neg] / t)[0]``.

    Args:
        pos_scores: ``[B]``; neg_scores: ``[B, n]`` (or ``[B]``, one negative each).
        temperature: ``t`` > 0.
        weight: ``[B]`` row weights (weighted mean); ``None`` = plain mean.
    """
    if neg_scores.dim() == 1:
        neg_scores = neg_scores.unsqueeze(1)
    return _mean(_SoftmaxCE.apply(pos_scores, neg_scores, float(temperature)), weight)


class _SoftmaxCE(torch.autograd.Function):
    """Per-row ``logsumexp([p, n_1..n_k] / t) - p / t`` without concatenating ``[B, k + 1]`` logits: two passes
    over ``[B, k]`` forward (max, then the exponentials kept for backward), one backward (the softmax times the
    row's gradient); the autograd composition made about ten (``tests/gnn/test_fast_paths.py``)."""

    @staticmethod
    def forward(ctx, pos: Tensor, neg: Tensor, t: float) -> Tensor:  # noqa: D102
        p, x = (pos, neg) if t == 1.0 else (pos / t, neg / t)
        top = torch.maximum(x.amax(1), p)
        ex = (x - top.unsqueeze(1)).exp_()
        total = ex.sum(1) + (p - top).exp()
        lse = top + total.log()
        ctx.save_for_backward(ex, total, (p - lse).exp())
        ctx.t = t
        return lse - p

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        ex, total, p_soft = ctx.saved_tensors
        g = grad / ctx.t
        return g * (p_soft - 1.0), ex * (g / total).unsqueeze(1), None


def l2_regularization(tensors: list[Tensor], batch_size: int) -> Tensor:
    """``sum_x ||x||^2 / (2 B)`` over the batch's ego embeddings (LightGCN's regulariser)."""
    if not tensors:
        return torch.zeros(())
    return sum(t.pow(2).sum() for t in tensors) / (2.0 * max(batch_size, 1))


def info_nce(a: Tensor, b: Tensor, temperature: float = 0.2, mask: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE aligning row ``k`` of ``a`` with row ``k`` of ``b`` (the other rows are negatives).

    Args:
        a, b: ``[N, d]`` two views of the same ``N`` nodes (L2-normalised inside).
        temperature: softmax temperature ``tau``.
        mask: ``[N]`` bool, rows to use (e.g. items having both modalities); ``None`` = all.

    Returns:
        ``(CE(a b^T / tau, I) + CE(b a^T / tau, I)) / 2``; zero when fewer than two rows are used.
    """
    if mask is not None:
        a, b = a[mask], b[mask]
    if a.shape[0] < 2:
        return a.sum() * 0.0
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def transe_loss(head: Tensor, rel: Tensor, tail: Tensor, neg_tail: Tensor) -> Tensor:
    """TransE with a BPR margin (as KGAT's KG loss): ``-log sigmoid(||h + r - t'||^2 - ||h + r - t||^2)``.

    Args:
        head, rel, tail, neg_tail: ``[B, d]`` embeddings of the triples and of corrupted tails.
    """
    pos = (head + rel - tail).pow(2).sum(-1)
    neg = (head + rel - neg_tail).pow(2).sum(-1)
    return F.softplus(pos - neg).mean()
