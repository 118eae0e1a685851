"""Confidence intervals by bootstrap over users.

A user is the unit of resampling: draw ``U`` users with replacement ``n_resamples`` times, take the
mean of a per-user metric in each draw, and report the 2.5 / 97.5 percentiles of those means
(percentile bootstrap). All metrics share the same draws (a paired bootstrap), so the intervals of
``recall@20`` and ``ndcg@20`` come from the same resampled user populations. Same ``seed`` -> same CI.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from evaluation import EvaluationError

_MAX_DRAW_CELLS = 4_000_000  # bounds the [resamples, users] index matrix held at once


def _draws(n_users: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Index matrices ``[b, n_users]`` whose rows together make ``n_resamples`` resamples."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_DRAW_CELLS // max(n_users, 1))
    for start in range(0, n_resamples, chunk):
        yield rng.integers(0, n_users, size=(min(chunk, n_resamples - start), n_users))


def bootstrap_means(per_user: Mapping[str, np.ndarray], n_resamples: int = 1000,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """The resampled means ``[n_resamples]`` of every per-user array (all arrays ``[U]``, same users)."""
    arrays = {name: np.asarray(v, dtype=np.float64).ravel() for name, v in per_user.items()}
    sizes = {v.size for v in arrays.values()}
    if len(sizes) > 1:
        raise EvaluationError(f"per-user arrays differ in length: {sorted(sizes)}")
    n_users = sizes.pop() if sizes else 0
    if n_users == 0:
        raise EvaluationError("cannot bootstrap over zero users")
    if n_resamples < 1:
        raise EvaluationError(f"n_resamples must be >= 1, got {n_resamples}")
    out = {name: np.empty(n_resamples) for name in arrays}
    start = 0
    for idx in _draws(n_users, n_resamples, seed):
        for name, values in arrays.items():
            out[name][start : start + idx.shape[0]] = values[idx].mean(axis=1)
        start += idx.shape[0]
    return out


def bootstrap_ci(per_user: Mapping[str, np.ndarray], n_resamples: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval ``(low, high)`` of the mean of every per-user array."""
    if not 0.0 < confidence < 1.0:
        raise EvaluationError(f"confidence must lie in (0, 1), got {confidence}")
    tail = (1.0 - confidence) / 2.0
    means = bootstrap_means(per_user, n_resamples, seed)
    return {name: (float(np.quantile(m, tail)), float(np.quantile(m, 1.0 - tail))) for name, m in means.items()}


def summarize(per_user: Mapping[str, np.ndarray], n_resamples: int = 1000,
              seed: int = 0) -> dict[str, dict[str, float | list[float] | None]]:
    """``{name: {"mean": m, "ci95": [low, high]}}``; ``"ci95"`` is ``None`` when ``n_resamples == 0``."""
    cis = bootstrap_ci(per_user, n_resamples, seed) if n_resamples > 0 else {}
    out: dict[str, dict[str, float | list[float] | None]] = {}
    for name, values in per_user.items():
        ci = cis.get(name)
        mean = float(np.mean(values)) if np.size(values) else float("nan")
        out[name] = {"mean": mean, "ci95": [ci[0], ci[1]] if ci is not None else None}
    return out


def paired_difference_ci(a: np.ndarray, b: np.ndarray, n_resamples: int = 1000, seed: int = 0,
                         confidence: float = 0.95) -> dict[str, float]:
    """Bootstrap the mean per-user difference ``a - b`` of two models on the same users.

    Returns ``{"mean_diff", "low", "high", "p_not_better"}`` where ``p_not_better`` is the share of
    resamples whose mean difference is ``<= 0`` (a one-sided bootstrap p-value for "a beats b").
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise EvaluationError(f"paired arrays differ in length: {a.size} vs {b.size}")
    diff = a - b
    means = bootstrap_means({"diff": diff}, n_resamples, seed)["diff"]
    tail = (1.0 - confidence) / 2.0
    return {"mean_diff": float(diff.mean()), "low": float(np.quantile(means, tail)),
            "high": float(np.quantile(means, 1.0 - tail)), "p_not_better": float((means <= 0).mean())}
