"""Top-K accuracy metrics with binary relevance, vectorised over users.

For a user with held-out set ``R`` (``|R| >= 1``) and a ranked list ``L`` (``L[j]`` the item at rank
``j = 0, 1, ...``), with ``hit_j = [L[j] in R]`` and ``h@K = sum_{j<K} hit_j``:

- ``recall@K = h@K / |R|``;  ``precision@K = h@K / K``;  ``f1@K = 2PR / (P + R)`` (0 when both are 0);
- ``ndcg@K = DCG / IDCG`` with ``DCG = sum_{j<K} hit_j / log2(j + 2)`` and
  ``IDCG = sum_{i < min(K, |R|)} 1 / log2(i + 2)``;
- ``hit@K = [h@K > 0]``;  ``mrr@K = 1 / (first hit rank, 1-based)``, 0 without a hit;
- ``map@K`` = mean over users of ``AP@K = sum_{j<K} hit_j * precision@(j+1) / min(K, |R|)``.

Lists shorter than ``K`` (a catalogue smaller than ``K``, or ``-1`` padding from
:func:`evaluation.ranking.rank_all_items`) count their missing positions as non-relevant, so
``precision@K`` still divides by ``K``. Users with an empty held-out set are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch

from evaluation import EvaluationError
from evaluation.ranking import UserItemSets

METRIC_NAMES: tuple[str, ...] = ("recall", "precision", "f1", "ndcg", "hit", "mrr", "map")


@dataclass(frozen=True)
class RankingMetrics:
    """Per-user metric values (read-only float64 arrays ``[users_evaluated]``, keyed ``"ndcg@20"``),
    the input rows they belong to (``rows``, int64 ``[users_evaluated]``) and the users skipped."""

    ks: tuple[int, ...]
    per_user: MappingProxyType
    rows: np.ndarray
    users_evaluated: int
    users_skipped: int

    def means(self) -> dict[str, float]:
        """Mean over evaluated users of every metric (NaN when no user was evaluated)."""
        return {name: float(v.mean()) if v.size else float("nan") for name, v in self.per_user.items()}


def hit_matrix(topk: torch.Tensor | np.ndarray,
               relevant: Sequence[np.ndarray] | UserItemSets,
               users: torch.Tensor | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``hits`` bool ``[U, K]`` (``topk[u, j]`` is in user ``u``'s held-out set) and ``n_relevant``
    int64 ``[U]`` (held-out set sizes, duplicates counted once).

    ``relevant`` is either a sequence aligned with the rows of ``topk`` or a :class:`UserItemSets`
    indexed by ``users`` (the user id of each row).
    """
    top = np.asarray(topk.cpu() if isinstance(topk, torch.Tensor) else topk, dtype=np.int64)
    if top.ndim != 2:
        raise EvaluationError(f"top-k lists must be a [U, K] matrix, got shape {top.shape}")
    if top.size and top.min() < -1:
        raise EvaluationError(f"top-k lists hold item index {top.min()} (only -1 may mark an empty position)")
    n_rows = top.shape[0]
    rel_rows, rel_items = _relevant_pairs(relevant, users, n_rows)
    _check_no_duplicates(top)
    width = int(max(top.max(initial=-1), rel_items.max(initial=-1))) + 1
    rel_keys = np.unique(rel_rows * width + rel_items)
    n_relevant = np.bincount(rel_keys // width, minlength=n_rows).astype(np.int64)
    top_keys = np.arange(n_rows, dtype=np.int64)[:, None] * width + top
    hits = np.isin(top_keys, rel_keys) & (top >= 0)
    return hits, n_relevant


def ranking_metrics(topk: torch.Tensor | np.ndarray,
                    relevant: Sequence[np.ndarray] | UserItemSets,
                    ks: Sequence[int],
                    users: torch.Tensor | np.ndarray | None = None) -> RankingMetrics:
    """Recall, precision, F1, NDCG, hit rate, MRR and MAP at every ``K`` in ``ks`` for each user.

    Args:
        topk: ``[U, K_list]`` ranked item indices, best first (``-1`` = empty position).
        relevant: held-out items per row (sequence of arrays) or a :class:`UserItemSets` with ``users``.
        ks: cut-offs; a ``K`` above ``K_list`` treats the missing positions as misses.
        users: ``[U]`` user ids of the rows, needed when ``relevant`` is a :class:`UserItemSets`.
    """
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise EvaluationError(f"cut-offs must be positive integers, got {ks}")
    hits, n_rel = hit_matrix(topk, relevant, users)
    n_rows = n_rel.size
    keep = np.flatnonzero(n_rel > 0)
    hits, n_rel = hits[keep].astype(np.float64), n_rel[keep]
    k_top = max(ks)
    if hits.shape[1] < k_top:
        hits = np.pad(hits, ((0, 0), (0, k_top - hits.shape[1])))
    discount = 1.0 / np.log2(np.arange(k_top, dtype=np.float64) + 2.0)
    ideal = np.cumsum(discount)
    ranks = np.arange(1, k_top + 1, dtype=np.float64)
    precision_at_j = np.cumsum(hits, axis=1) / ranks
    per_user: dict[str, np.ndarray] = {}
    for k in ks:
        h = hits[:, :k]
        n_hit = h.sum(axis=1)
        recall = n_hit / n_rel
        precision = n_hit / k
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
        cap = np.minimum(k, n_rel)
        ndcg = (h @ discount[:k]) / ideal[cap - 1]
        first = np.argmax(h, axis=1)
        mrr = np.where(n_hit > 0, 1.0 / (first + 1.0), 0.0)
        ap = (precision_at_j[:, :k] * h).sum(axis=1) / cap
        values = {"recall": recall, "precision": precision, "f1": f1, "ndcg": ndcg,
                  "hit": (n_hit > 0).astype(np.float64), "mrr": mrr, "map": ap}
        for name in METRIC_NAMES:
            arr = np.ascontiguousarray(values[name], dtype=np.float64)
            arr.setflags(write=False)
            per_user[f"{name}@{k}"] = arr
    keep.setflags(write=False)
    return RankingMetrics(ks, MappingProxyType(per_user), keep, int(keep.size), int(n_rows - keep.size))


def _relevant_pairs(relevant: Sequence[np.ndarray] | UserItemSets, users: torch.Tensor | np.ndarray | None,
                    n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) int64 arrays of every held-out pair, rows aligned with the top-k matrix."""
    if isinstance(relevant, UserItemSets):
        if users is None:
            raise EvaluationError("held-out UserItemSets need the user id of each top-k row (users=...)")
        ids = np.asarray(users.cpu() if isinstance(users, torch.Tensor) else users, dtype=np.int64).ravel()
        if ids.size != n_rows:
            raise EvaluationError(f"{ids.size} user ids for {n_rows} top-k rows")
        if ids.size and (ids.min() < 0 or ids.max() >= relevant.num_users):
            raise EvaluationError(f"user ids must lie in [0, {relevant.num_users}), got {ids.min()}..{ids.max()}")
        starts = relevant.indptr[ids]
        lens = relevant.indptr[ids + 1] - starts
        offsets = np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
        items = relevant.indices[offsets + np.repeat(starts, lens)]
        return np.repeat(np.arange(n_rows, dtype=np.int64), lens), items
    if len(relevant) != n_rows:
        raise EvaluationError(f"{len(relevant)} held-out sets for {n_rows} top-k rows")
    lists = [np.asarray(r, dtype=np.int64).ravel() for r in relevant]
    items = np.concatenate(lists) if lists else np.zeros(0, np.int64)
    if items.size and items.min() < 0:
        raise EvaluationError(f"negative held-out item index {items.min()}")
    return np.repeat(np.arange(n_rows, dtype=np.int64), [x.size for x in lists]), items


def _check_no_duplicates(top: np.ndarray) -> None:
    """A ranked list must not repeat an item (it would count one relevant item twice)."""
    if top.shape[1] < 2:
        return
    s = np.sort(top, axis=1)
    dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
    if dup.any():
        row = int(np.flatnonzero(dup.any(axis=1))[0])
        raise EvaluationError(f"top-k row {row} lists an item more than once")
