"""Metrics per user-activity group: users split into quantile groups by their number of training
interactions (cold / light / heavy users), each labelled with its interaction range.

Group ``g`` of ``n`` holds the users whose count ``c`` satisfies ``q_g < c <= q_{g+1}`` with ``q`` the
``g/n`` quantiles of the counts (the first group also takes ``c = min``). Counts are discrete, so
groups can be unequal, and a group left empty by tied quantiles is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from evaluation import EvaluationError


@dataclass(frozen=True)
class ActivityGroup:
    """One group: its label, training-interaction range (inclusive) and member positions ``[n]``
    (indices into the per-user arrays the counts were given for)."""

    label: str
    min_interactions: int
    max_interactions: int
    members: np.ndarray


def activity_groups(train_counts: np.ndarray, n_groups: int = 4) -> list[ActivityGroup]:
    """Split users (``train_counts``: int ``[U]``, training interactions per user) into quantile groups."""
    counts = np.asarray(train_counts, dtype=np.int64).ravel()
    if n_groups < 1:
        raise EvaluationError(f"n_groups must be >= 1, got {n_groups}")
    if counts.size == 0:
        return []
    edges = np.quantile(counts, np.arange(1, n_groups) / n_groups)
    assignment = np.searchsorted(edges, counts, side="left")
    groups = []
    for g in range(n_groups):
        members = np.flatnonzero(assignment == g)
        if members.size == 0:
            continue
        lo, hi = int(counts[members].min()), int(counts[members].max())
        label = f"G{len(groups) + 1}: {lo}-{hi} train interactions" if lo != hi else \
            f"G{len(groups) + 1}: {lo} train interactions"
        members.setflags(write=False)
        groups.append(ActivityGroup(label, lo, hi, members))
    return groups


def metrics_by_group(per_user: Mapping[str, np.ndarray], train_counts: np.ndarray,
                     n_groups: int = 4) -> list[dict]:
    """Mean of every per-user metric in every activity group.

    Returns ``[{"label", "min_train_interactions", "max_train_interactions", "users", "metrics": {name: mean}}]``
    ordered from the least to the most active users.
    """
    counts = np.asarray(train_counts).ravel()
    for name, values in per_user.items():
        if np.size(values) != counts.size:
            raise EvaluationError(f"{name}: {np.size(values)} per-user values for {counts.size} users")
    out = []
    for group in activity_groups(counts, n_groups):
        means = {name: float(np.asarray(v)[group.members].mean()) for name, v in per_user.items()}
        out.append({"label": group.label, "min_train_interactions": group.min_interactions,
                    "max_train_interactions": group.max_interactions, "users": int(group.members.size),
                    "metrics": means})
    return out
