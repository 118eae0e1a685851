"""Beyond-accuracy measures of a set of top-K lists: what the recommender exposes, not whether it hits.

With ``c_i`` the training interaction count of item ``i`` and ``C = sum_i c_i``:

- ``coverage@K``: share of the catalogue recommended to at least one user in the top ``K``;
- ``avg_popularity@K``: mean over users of the mean ``c_i`` of their ``K`` recommended items (ARP);
- ``novelty@K``: mean over users of the mean self-information ``-log2(c_i / C)`` of their items. An item
  never seen in training would have infinite self-information, so its count is floored at 1 here;
- ``gini@K``: Gini index of the exposure counts of all catalogue items (0 = every item recommended
  equally often, towards 1 = a few items get all the exposure).

Empty positions (``-1``) are ignored; a user with an empty list is left out of the per-user means.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from evaluation import EvaluationError

BEYOND_NAMES: tuple[str, ...] = ("coverage", "avg_popularity", "novelty", "gini")


def _lists(topk: torch.Tensor | np.ndarray, k: int, num_items: int) -> np.ndarray:
    top = np.asarray(topk.cpu() if isinstance(topk, torch.Tensor) else topk, dtype=np.int64)
    if top.ndim != 2:
        raise EvaluationError(f"top-k lists must be a [U, K] matrix, got shape {top.shape}")
    if top.size and (top.min() < -1 or top.max() >= num_items):
        raise EvaluationError(f"top-k lists hold item indices outside [0, {num_items})")
    return top[:, :k]


def catalogue_coverage(topk: torch.Tensor | np.ndarray, num_items: int, k: int) -> float:
    """Share of the ``num_items`` items that appear in at least one user's top ``k``."""
    top = _lists(topk, k, num_items)
    return float(np.unique(top[top >= 0]).size / num_items)


def exposure_counts(topk: torch.Tensor | np.ndarray, num_items: int, k: int) -> np.ndarray:
    """int64 ``[num_items]``: how many users get each item in their top ``k``."""
    top = _lists(topk, k, num_items)
    return np.bincount(top[top >= 0], minlength=num_items).astype(np.int64)


def gini_index(values: np.ndarray) -> float:
    """Gini index of non-negative ``values``: ``sum_i (2i - n - 1) x_(i) / (n sum x)`` over the
    ascending order ``x_(1) <= ... <= x_(n)``; 0 when all are equal (or all zero)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total == 0:
        return 0.0
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def _per_user_mean(top: np.ndarray, item_values: np.ndarray) -> float:
    valid = top >= 0
    per_item = np.where(valid, item_values[np.where(valid, top, 0)], 0.0)
    n = valid.sum(axis=1)
    has = n > 0
    if not has.any():
        return float("nan")
    return float((per_item.sum(axis=1)[has] / n[has]).mean())


def average_popularity(topk: torch.Tensor | np.ndarray, item_counts: np.ndarray, k: int) -> float:
    """Mean over users of the mean training count of their top-``k`` items."""
    counts = np.asarray(item_counts, dtype=np.float64)
    return _per_user_mean(_lists(topk, k, counts.size), counts)


def novelty(topk: torch.Tensor | np.ndarray, item_counts: np.ndarray, k: int) -> float:
    """Mean over users of the mean ``-log2 p(i)``, ``p(i) = max(c_i, 1) / sum_j c_j``."""
    counts = np.asarray(item_counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise EvaluationError("novelty needs training interaction counts with a positive total")
    info = -np.log2(np.maximum(counts, 1.0) / counts.sum())
    return _per_user_mean(_lists(topk, k, counts.size), info)


def beyond_accuracy(topk: torch.Tensor | np.ndarray, item_counts: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Every measure of :data:`BEYOND_NAMES` at every ``K``, keyed ``"coverage@20"`` etc.
    ``item_counts``: int ``[num_items]`` training interactions per item."""
    counts = np.asarray(item_counts)
    num_items = counts.size
    out: dict[str, float] = {}
    for k in ks:
        out[f"coverage@{k}"] = catalogue_coverage(topk, num_items, k)
        out[f"avg_popularity@{k}"] = average_popularity(topk, counts, k)
        out[f"novelty@{k}"] = novelty(topk, counts, k)
        out[f"gini@{k}"] = gini_index(exposure_counts(topk, num_items, k))
    return out
