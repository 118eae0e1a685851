"""Train / validation / test splits of a KG's interactions.

* ``random``: per user, a seeded shuffle cut 80/10/10 (RecBole's ``RS: [0.8, 0.1, 0.1]`` with
  ``group_by: user``, including its rounding rule);
* ``temporal``: per user, ordered by timestamp (ties by position), oldest 80% train, then valid, newest test;
* ``cold_item``: a seeded 10% of the interacted items are held out with ALL their interactions (half of
  the cold items feed validation, the other half test), so a model reaches them only via content and KG;
  the warm interactions are split per user as ``random``.

A :class:`Split` holds index arrays into ``kg.interactions()``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from kg.errors import MMKGError
from kg.model.graph import Interactions

SPLIT_METHODS = ("random", "temporal", "cold_item")


@dataclass(frozen=True)
class Split:
    """Index arrays ``[E_*]`` (int64, sorted) into the interactions, and the held-out cold items."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    cold_items: np.ndarray
    method: str
    seed: int

    def parts(self, inter: Interactions) -> tuple[Interactions, Interactions, Interactions]:
        """``(train, valid, test)`` interactions."""
        return inter.subset(self.train), inter.subset(self.valid), inter.subset(self.test)


def split_counts(total: int, ratios: tuple[float, ...]) -> list[int]:
    """How many of a user's ``total`` interactions go to each part (RecBole's ``_calcu_split_ids``):
    floor for every part but the first, which takes the rest; a part whose share is in ``(0, 1)``
    gets one interaction from the first while the first keeps more than one."""
    cnt = [int(r * total) for r in ratios]
    cnt[0] = total - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def _check_ratios(ratios: tuple[float, ...]) -> tuple[float, float, float]:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise MMKGError(f"split ratios must be three non-negative numbers, got {list(ratios)}")
    total = float(sum(ratios))
    return tuple(r / total for r in ratios)  # type: ignore[return-value]


def _split_groups(user: np.ndarray, order: np.ndarray, ratios: tuple[float, float, float]):
    """Cut each user's interactions (visited in ``order``) into three parts by :func:`split_counts`."""
    ordered_users = user[order]
    grouped = order[np.argsort(ordered_users, kind="stable")]
    bounds = np.cumsum(np.bincount(user, minlength=int(user.max()) + 1 if user.size else 0))
    parts: tuple[list[np.ndarray], ...] = ([], [], [])
    start = 0
    for end in bounds.tolist():
        if end > start:
            idx = grouped[start:end]
            c = split_counts(end - start, ratios)
            parts[0].append(idx[: c[0]])
            parts[1].append(idx[c[0]: c[0] + c[1]])
            parts[2].append(idx[c[0] + c[1]:])
        start = end
    return tuple(np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts)


def random_split(inter: Interactions, ratios: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 0) -> Split:
    """Per-user random split of ``inter`` with ``ratios`` (train, valid, test)."""
    r = _check_ratios(ratios)
    order = np.random.default_rng(seed).permutation(len(inter)).astype(np.int64)
    train, valid, test = _split_groups(inter.user, order, r)
    return Split(train, valid, test, np.zeros(0, np.int64), "random", seed)


def temporal_split(inter: Interactions, ratios: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 0) -> Split:
    """Per-user temporal split: each user's oldest interactions train, the newest test."""
    r = _check_ratios(ratios)
    missing = np.flatnonzero(np.isnan(inter.timestamp))
    if missing.size:
        raise MMKGError(f"temporal split needs timestamps; interaction {int(missing[0])} has none")
    order = np.lexsort((np.arange(len(inter)), inter.timestamp)).astype(np.int64)
    train, valid, test = _split_groups(inter.user, order, r)
    return Split(train, valid, test, np.zeros(0, np.int64), "temporal", seed)


def cold_item_split(
    inter: Interactions, ratios: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 0, cold_fraction: float = 0.1
) -> Split:
    """Hold out ``cold_fraction`` of the interacted items with all their interactions (first half of
    the shuffled cold items -> validation, the rest -> test); split the other interactions per user."""
    if not 0 < cold_fraction < 1:
        raise MMKGError(f"cold_fraction must be in (0, 1), got {cold_fraction}")
    rng = np.random.default_rng(seed)
    items = rng.permutation(np.unique(inter.item))
    n_cold = max(1, int(round(cold_fraction * items.size))) if items.size > 1 else 0
    cold = items[:n_cold]
    cold_valid = cold[: (n_cold + 1) // 2]
    is_cold = np.isin(inter.item, cold)
    warm_idx = np.flatnonzero(~is_cold).astype(np.int64)
    order = warm_idx[rng.permutation(warm_idx.size)]
    train, valid, test = _split_groups(inter.user, order, _check_ratios(ratios))
    cold_idx = np.flatnonzero(is_cold).astype(np.int64)
    to_valid = np.isin(inter.item[cold_idx], cold_valid)
    valid = np.sort(np.concatenate([valid, cold_idx[to_valid]]))
    test = np.sort(np.concatenate([test, cold_idx[~to_valid]]))
    return Split(train, valid, test, np.sort(cold).astype(np.int64), "cold_item", seed)


def thin_train(split: Split, inter: Interactions, fraction: float) -> Split:
    """The sparse regime: ``split`` with each user's training pairs cut to ``ceil(fraction * n)`` of its ``n``
    (at least one kept; seeded by the split's seed), validation and test untouched."""
    if not 0.0 < fraction <= 1.0:
        raise MMKGError(f"train_fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0 or split.train.size == 0:
        return split
    rng = np.random.default_rng([split.seed, 7919])
    train = split.train[rng.permutation(split.train.size)]
    user = inter.user[train].astype(np.int64)
    order = np.argsort(user, kind="stable")
    train, user = train[order], user[order]
    start = np.searchsorted(user, user, side="left")
    count = np.bincount(user)[user]
    keep = np.arange(train.size) - start < np.maximum(np.ceil(fraction * count - 1e-9), 1)
    return replace(split, train=np.sort(train[keep]))


def make_split(
    inter: Interactions, method: str = "random", ratios: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 0,
    cold_fraction: float = 0.1, train_fraction: float = 1.0,
) -> Split:
    """Dispatch on ``method`` (one of :data:`SPLIT_METHODS`); ``train_fraction < 1`` thins the training part
    (:func:`thin_train`)."""
    if method == "random":
        split = random_split(inter, ratios, seed)
    elif method == "temporal":
        split = temporal_split(inter, ratios, seed)
    elif method == "cold_item":
        split = cold_item_split(inter, ratios, seed, cold_fraction)
    else:
        raise MMKGError(f"unknown split method {method!r} (expected one of {', '.join(SPLIT_METHODS)})")
    return thin_train(split, inter, train_fraction)
