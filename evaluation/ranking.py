"""Full-ranking top-K retrieval: every user is scored against the *whole* item catalogue,
items the user must not be recommended (training items; for test also validation items) are
masked to ``-inf``, and the top ``k_max`` items are kept. Users are processed a batch at a time,
so memory is bounded by ``batch_size x num_items`` scores.

Ties are broken deterministically: among equal scores the **lower item index ranks first**
(``torch.topk`` alone does not guarantee this; see :func:`topk_lower_index_ties`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from evaluation import EvaluationError

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
"""``score_fn(users: LongTensor[B]) -> Tensor[B, num_items]``: a score for every item."""


@dataclass(frozen=True)
class UserItemSets:
    """Sets of items per user in CSR form: user ``u`` owns ``indices[indptr[u]:indptr[u + 1]]``,
    sorted ascending and unique. ``indptr``: int64 ``[num_users + 1]``; ``indices``: int64 ``[nnz]``."""

    indptr: np.ndarray
    indices: np.ndarray
    num_items: int

    @property
    def num_users(self) -> int:
        return int(self.indptr.shape[0] - 1)

    def lengths(self) -> np.ndarray:
        """int64 ``[num_users]``: the size of each user's set."""
        return np.diff(self.indptr)

    def row(self, user: int) -> np.ndarray:
        return self.indices[self.indptr[user] : self.indptr[user + 1]]

    def rows(self, users: Sequence[int] | np.ndarray | torch.Tensor) -> list[np.ndarray]:
        return [self.row(int(u)) for u in np.asarray(users).ravel()]

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(users, items)`` int64 arrays ``[nnz]`` of every (user, item) in the sets."""
        return np.repeat(np.arange(self.num_users, dtype=np.int64), self.lengths()), self.indices

    def item_counts(self) -> np.ndarray:
        """int64 ``[num_items]``: how many users hold each item (popularity in a training set)."""
        return np.bincount(self.indices, minlength=self.num_items).astype(np.int64)

    def union(self, other: UserItemSets) -> UserItemSets:
        """The per-user union of two sets over the same users and catalogue."""
        if other.num_items != self.num_items:
            raise EvaluationError(f"cannot unite item sets over {self.num_items} and {other.num_items} items")
        n = max(self.num_users, other.num_users)
        u1, i1 = self.pairs()
        u2, i2 = other.pairs()
        return build_user_item_sets(np.concatenate([u1, u2]), np.concatenate([i1, i2]), n, self.num_items)

    def fingerprint(self) -> bytes:
        """A content hash (same sets -> same fingerprint), used to keep test data out of selection."""
        import hashlib

        digest = hashlib.sha256(np.int64(self.num_items).tobytes())
        digest.update(np.ascontiguousarray(self.indptr, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(self.indices, dtype=np.int64).tobytes())
        return digest.digest()


def build_user_item_sets(users: np.ndarray | torch.Tensor, items: np.ndarray | torch.Tensor, num_users: int,
                         num_items: int) -> UserItemSets:
    """Group ``(user, item)`` pairs (int arrays ``[E]``) into per-user sets, dropping duplicates.

    Use it for the held-out relevance sets (valid / test pairs) and for the exclusion sets (train pairs).
    Raises :class:`EvaluationError` naming the first pair whose index is out of range.
    """
    u = np.asarray(users, dtype=np.int64).ravel()
    i = np.asarray(items, dtype=np.int64).ravel()
    if u.shape != i.shape:
        raise EvaluationError(f"users and items differ in length: {u.shape[0]} vs {i.shape[0]}")
    for name, arr, bound in (("user", u, num_users), ("item", i, num_items)):
        bad = np.flatnonzero((arr < 0) | (arr >= bound))
        if bad.size:
            raise EvaluationError(f"pair {bad[0]}: {name} index {arr[bad[0]]} outside [0, {bound})")
    keys = np.unique(u * num_items + i)
    counts = np.bincount(keys // num_items, minlength=num_users) if num_users else np.zeros(0, np.int64)
    indptr = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return UserItemSets(indptr, (keys % num_items).astype(np.int64), int(num_items))


def as_user_item_sets(sets: UserItemSets | tuple[np.ndarray, np.ndarray] | Sequence[np.ndarray],
                      num_items: int) -> UserItemSets:
    """Accept a :class:`UserItemSets`, a **tuple** ``(indptr, indices)`` (CSR) or a **list** of item
    arrays, one per user (user ``u`` -> ``sets[u]``)."""
    if isinstance(sets, UserItemSets):
        if sets.num_items != num_items:
            raise EvaluationError(f"item sets cover {sets.num_items} items, the catalogue has {num_items}")
        return sets
    if isinstance(sets, tuple):
        if len(sets) != 2:
            raise EvaluationError("a CSR exclusion must be a tuple (indptr, indices)")
        indptr = np.asarray(sets[0], dtype=np.int64)
        indices = np.asarray(sets[1], dtype=np.int64)
        if indptr.ndim != 1 or indptr.size == 0 or indptr[0] != 0 or np.any(np.diff(indptr) < 0) \
                or indptr[-1] != indices.size:
            raise EvaluationError("malformed CSR: indptr must start at 0, not decrease and end at len(indices)")
        users = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))
        return build_user_item_sets(users, indices, indptr.size - 1, num_items)
    lists = [np.asarray(x, dtype=np.int64).ravel() for x in sets]
    users = np.repeat(np.arange(len(lists), dtype=np.int64), [x.size for x in lists])
    items = np.concatenate(lists) if lists else np.zeros(0, np.int64)
    return build_user_item_sets(users, items, len(lists), num_items)


def topk_lower_index_ties(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` of each row of ``scores [B, N]`` ordered by (score descending, item index ascending).

    ``torch.topk`` picks an arbitrary member of a tie; here the result is the same as a stable
    descending sort cut at ``k``: ties inside the list are re-ordered by index, and rows where the
    ``k``-th score ties with an item left out (more than ``k`` scores ``>=`` it) are stably sorted in full.
    Returns ``(values [B, k], indices [B, k])``.
    """
    vals, idx = torch.topk(scores, k, dim=1, sorted=True)
    idx, perm = torch.sort(idx, dim=1)
    vals = vals.gather(1, perm)
    vals, order = torch.sort(vals, dim=1, descending=True, stable=True)
    idx = idx.gather(1, order)
    boundary_tie = (scores >= vals[:, -1:]).sum(dim=1) > k
    if bool(boundary_tie.any()):
        rows = boundary_tie.nonzero().squeeze(1)
        full_vals, full_idx = torch.sort(scores[rows], dim=1, descending=True, stable=True)
        vals[rows] = full_vals[:, :k]
        idx[rows] = full_idx[:, :k]
    return vals, idx


def rank_all_items(score_fn: ScoreFn, users: torch.Tensor, num_items: int,
                   exclude: UserItemSets | tuple[np.ndarray, np.ndarray] | Sequence[np.ndarray] | None,
                   k_max: int, batch_size: int = 1024, progress: bool = False) -> torch.Tensor:
    """The top ``k_max`` items of every user in ``users`` over the whole catalogue.

    Args:
        score_fn: ``score_fn(users_batch: LongTensor[B]) -> Tensor[B, num_items]`` (any device).
        users: LongTensor ``[U]`` of user indices; ``exclude`` is indexed by these ids.
        num_items: catalogue size ``N``.
        exclude: items never to recommend per user (training items; for test also validation items),
            as :class:`UserItemSets`, a tuple ``(indptr, indices)`` or a list of arrays per user; ``None``
            excludes nothing.
        k_max: list length. A ``k_max`` larger than the catalogue is **clipped** to ``num_items``.
        batch_size: users scored at once (memory ``batch_size x num_items`` scores).

    Returns:
        CPU LongTensor ``[U, min(k_max, num_items)]``, best first, ties -> lower item index first.
        Positions left when a user has fewer recommendable items than the list length (everything
        else excluded or scored ``-inf``) hold ``-1``.

    Raises :class:`EvaluationError` on a score matrix of the wrong shape or containing NaN.
    """
    if k_max < 1 or batch_size < 1 or num_items < 1:
        raise EvaluationError(f"need k_max, batch_size, num_items >= 1, got {k_max}, {batch_size}, {num_items}")
    users = torch.as_tensor(users, dtype=torch.long).reshape(-1).cpu()
    k = min(int(k_max), int(num_items))
    ex = as_user_item_sets(exclude, num_items) if exclude is not None else None
    if ex is not None and users.numel() and int(users.max()) >= ex.num_users:
        raise EvaluationError(f"user {int(users.max())} has no row in the exclusion sets ({ex.num_users} users)")
    out = torch.empty((users.numel(), k), dtype=torch.long)
    starts = range(0, users.numel(), batch_size)
    for start in tqdm(starts, desc="ranking", unit="batch", disable=not progress):
        batch = users[start : start + batch_size]
        out[start : start + batch.numel()] = top_k_batch(score_fn, batch, num_items, ex, k)[1]
    return out


def top_k_batch(score_fn: ScoreFn, batch: torch.Tensor, num_items: int, ex: UserItemSets | None, k: int,
                allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU ``(scores [B, k], items [B, k])`` of one batch of users, best first, ties -> lower item index first,
    the items of ``ex`` (per-user sets, indexed by user id) and those outside ``allowed`` (bool ``[num_items]``)
    never returned: positions left when fewer items remain hold item ``-1``, score ``-inf``."""
    scores = score_fn(batch)
    if tuple(scores.shape) != (batch.numel(), num_items):
        raise EvaluationError(f"score_fn returned shape {tuple(scores.shape)}, expected ({batch.numel()}, {num_items})")
    scores = scores.detach().clone() if scores.is_floating_point() else scores.detach().float()
    nan_rows = torch.isnan(scores).any(dim=1)
    if bool(nan_rows.any()):
        raise EvaluationError(f"score_fn returned NaN for user {int(batch[nan_rows.nonzero()[0, 0]])}")
    if ex is not None:
        rows, cols = _exclusion_coordinates(ex, batch.numpy())
        scores[torch.from_numpy(rows).to(scores.device), torch.from_numpy(cols).to(scores.device)] = -np.inf
    if allowed is not None:
        scores[:, ~allowed.to(device=scores.device, dtype=torch.bool)] = -np.inf
    vals, idx = topk_lower_index_ties(scores, k)
    idx[vals == -np.inf] = -1
    return vals.cpu(), idx.cpu()


def _exclusion_coordinates(ex: UserItemSets, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row in batch, item) int64 arrays of every excluded pair of the batch's users."""
    starts = ex.indptr[batch]
    lens = ex.indptr[batch + 1] - starts
    total = int(lens.sum())
    rows = np.repeat(np.arange(batch.size, dtype=np.int64), lens)
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(starts, lens)
    return rows, ex.indices[offsets]
