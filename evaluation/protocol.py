"""The evaluation protocol: one evaluator per split, so a model cannot be selected on test data.

- :class:`ValidationEvaluator` masks training items, ranks the whole catalogue and scores the validation
  items. It is the **only** evaluator that model selection (:func:`select_best`) and early stopping
  (:class:`EarlyStopping`) accept; they raise :class:`ProtocolError` on anything else.
- :class:`TestEvaluator` masks training **and** validation items and scores the test items. It runs once
  per trained checkpoint and returns a frozen :class:`SplitResult` (read-only arrays and mappings);
  it has no ``score()`` method and nothing in training accepts it.

A held-out set registered in one role cannot be registered in the other within a process (content
fingerprint), so the test set cannot be passed to a :class:`ValidationEvaluator` by mistake.
Call ``model.eval()`` before evaluating; the evaluators run ``score_fn`` under ``torch.no_grad()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from evaluation import EvaluationError
from evaluation.activity_groups import metrics_by_group
from evaluation.beyond_accuracy import beyond_accuracy
from evaluation.bootstrap import summarize
from evaluation.metrics import METRIC_NAMES, ranking_metrics
from evaluation.ranking import ScoreFn, UserItemSets, rank_all_items
from evaluation.report_tables import ResourceMeter


class ProtocolError(EvaluationError):
    """An evaluation protocol violation, e.g. test data offered to model selection."""


_ROLE_FINGERPRINTS: dict[str, set[bytes]] = {"valid": set(), "test": set()}


def _register_heldout(role: str, heldout: UserItemSets) -> None:
    if heldout.indices.size == 0:
        return
    fp = heldout.fingerprint()
    other = "test" if role == "valid" else "valid"
    if fp in _ROLE_FINGERPRINTS[other]:
        raise ProtocolError(f"this held-out set is already the {other} set of another evaluator; "
                            f"it cannot also serve as the {role} set")
    _ROLE_FINGERPRINTS[role].add(fp)


@dataclass(frozen=True)
class SplitResult:
    """The frozen outcome of evaluating one model on one split.

    ``metrics``: ``{"recall@20": {"mean": float, "ci95": (low, high) | None}}``; ``per_user``: read-only
    float64 ``[users_evaluated]`` arrays aligned with ``users`` (evaluated user ids); ``heldout_masked``:
    held-out pairs that were also in the mask (unreachable; a leaky split when > 0).
    """

    split: str
    checkpoint: str | None
    ks: tuple[int, ...]
    metrics: Mapping[str, Mapping[str, Any]]
    per_user: Mapping[str, np.ndarray]
    users: np.ndarray
    users_evaluated: int
    users_skipped: int
    heldout_masked: int
    beyond: Mapping[str, float]
    groups: tuple[Mapping[str, Any], ...]
    seconds: float
    peak_mem_mb: float

    def mean(self, name: str) -> float:
        return float(self.metrics[name]["mean"])


class _SplitEvaluator:
    """Shared machinery: rank all items for the users with held-out items, then compute every measure."""

    split = ""

    def __init__(self, train: UserItemSets, exclude: UserItemSets, heldout: UserItemSets, ks: Sequence[int],
                 batch_size: int, n_resamples: int, seed: int, n_groups: int, beyond: bool,
                 device: torch.device | str | None) -> None:
        if len({train.num_users, exclude.num_users, heldout.num_users}) != 1 or \
                len({train.num_items, exclude.num_items, heldout.num_items}) != 1:
            raise ProtocolError("train, validation and test sets must share the same user and item index spaces")
        self.ks = tuple(sorted({int(k) for k in ks}))
        if not self.ks or self.ks[0] < 1:
            raise ProtocolError(f"cut-offs must be positive integers, got {tuple(ks)}")
        self.num_items = heldout.num_items
        self._exclude, self._heldout = exclude, heldout
        self._item_counts = train.item_counts()
        self._train_counts = train.lengths()
        self._users = np.flatnonzero(heldout.lengths() > 0)
        if self._users.size == 0:
            raise ProtocolError(f"the {self.split} set holds no held-out item")
        self._skipped = int(heldout.num_users - self._users.size)
        self._batch_size, self._n_resamples, self._seed = batch_size, n_resamples, seed
        self._n_groups, self._beyond, self._device = n_groups, beyond, device
        u_ex, i_ex = exclude.pairs()
        u_ho, i_ho = heldout.pairs()
        self.heldout_masked = int(np.isin(u_ho * self.num_items + i_ho, u_ex * self.num_items + i_ex).sum())

    @property
    def users(self) -> np.ndarray:
        """The user ids evaluated (those with at least one held-out item)."""
        return self._users.copy()

    def _run(self, score_fn: ScoreFn, checkpoint: str | None) -> SplitResult:
        users = torch.from_numpy(self._users)
        with ResourceMeter(self._device) as meter, torch.no_grad():
            topk = rank_all_items(score_fn, users, self.num_items, self._exclude, max(self.ks), self._batch_size)
            m = ranking_metrics(topk, self._heldout, self.ks, users)
            summary = summarize(m.per_user, self._n_resamples, self._seed) if m.users_evaluated else {}
            beyond = beyond_accuracy(topk, self._item_counts, self.ks) if self._beyond else {}
            evaluated = self._users[m.rows]
            groups = metrics_by_group(m.per_user, self._train_counts[evaluated], self._n_groups) \
                if self._n_groups else []
        evaluated.setflags(write=False)
        metrics = {n: MappingProxyType({"mean": v["mean"], "ci95": tuple(v["ci95"]) if v["ci95"] else None})
                   for n, v in summary.items()}
        frozen_groups = tuple(MappingProxyType({**g, "metrics": MappingProxyType(g["metrics"])}) for g in groups)
        return SplitResult(self.split, checkpoint, self.ks, MappingProxyType(metrics), m.per_user, evaluated,
                           m.users_evaluated, self._skipped + m.users_skipped, self.heldout_masked,
                           MappingProxyType(beyond), frozen_groups, meter.seconds, meter.peak_mem_mb)


class ValidationEvaluator(_SplitEvaluator):
    """Scores the validation split with training items masked: the evaluator of model selection.

    Args:
        train, valid: per-user item sets over the same users / items (see
            :func:`evaluation.ranking.build_user_item_sets`).
        ks: cut-offs; ``main_metric`` (e.g. ``"ndcg@20"``) is what :meth:`score` returns.
        n_resamples: bootstrap resamples for CIs (0 = none, the fast default for per-epoch use).
    """

    split = "valid"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise ProtocolError("ValidationEvaluator cannot be subclassed (a subclass could score other data)")

    def __init__(self, train: UserItemSets, valid: UserItemSets, ks: Sequence[int] = (20,),
                 main_metric: str = "ndcg@20", batch_size: int = 1024, n_resamples: int = 0, seed: int = 0,
                 n_groups: int = 0, beyond: bool = False, device: torch.device | str | None = None) -> None:
        super().__init__(train, train, valid, ks, batch_size, n_resamples, seed, n_groups, beyond, device)
        name, _, k = main_metric.rpartition("@")
        if not k.isdigit() or int(k) not in self.ks or name not in METRIC_NAMES:
            raise ProtocolError(f"main_metric {main_metric!r} is not a metric computed at ks={self.ks}")
        self.main_metric = main_metric
        _register_heldout("valid", valid)

    def evaluate(self, score_fn: ScoreFn) -> SplitResult:
        return self._run(score_fn, None)

    def score(self, score_fn: ScoreFn) -> float:
        """The mean of ``main_metric`` on the validation users (higher is better)."""
        return self._run(score_fn, None).mean(self.main_metric)


class TestEvaluator(_SplitEvaluator):
    """Scores the test split with training and validation items masked, once per checkpoint.

    Args:
        train, valid, test: per-user item sets over the same users / items (``valid`` may be empty).
        ks: cut-offs; n_resamples / seed: bootstrap CIs; n_groups: activity groups (0 = none).
    """

    split = "test"
    __test__ = False  # not a pytest test class

    def __init__(self, train: UserItemSets, valid: UserItemSets, test: UserItemSets,
                 ks: Sequence[int] = (10, 20, 50), batch_size: int = 1024, n_resamples: int = 1000, seed: int = 0,
                 n_groups: int = 4, beyond: bool = True, device: torch.device | str | None = None) -> None:
        super().__init__(train, train.union(valid), test, ks, batch_size, n_resamples, seed, n_groups, beyond,
                         device)
        _register_heldout("test", test)
        self._evaluated: set[str] = set()

    def evaluate(self, score_fn: ScoreFn, checkpoint: str) -> SplitResult:
        """Evaluate the model of ``checkpoint`` (its path or id). A checkpoint is evaluated only once."""
        if not checkpoint:
            raise ProtocolError("a test evaluation must name the checkpoint it evaluates")
        if checkpoint in self._evaluated:
            raise ProtocolError(f"checkpoint {checkpoint!r} was already evaluated on test")
        self._evaluated.add(checkpoint)
        return self._run(score_fn, checkpoint)


def require_validation_evaluator(evaluator: object) -> ValidationEvaluator:
    """Return ``evaluator`` if it is a :class:`ValidationEvaluator`, else raise :class:`ProtocolError`."""
    if isinstance(evaluator, TestEvaluator):
        raise ProtocolError("model selection received a TestEvaluator: select on the validation split only")
    if type(evaluator) is not ValidationEvaluator:
        raise ProtocolError(f"model selection needs a ValidationEvaluator, got {type(evaluator).__name__}")
    return evaluator


def select_best(candidates: Mapping[str, ScoreFn], evaluator: ValidationEvaluator) -> tuple[str, dict[str, float]]:
    """The candidate name with the highest validation ``main_metric`` (first wins a tie) and all scores."""
    ev = require_validation_evaluator(evaluator)
    if not candidates:
        raise ProtocolError("select_best needs at least one candidate")
    scores = {name: ev.score(fn) for name, fn in candidates.items()}
    best = max(scores, key=lambda n: (scores[n], -list(scores).index(n)))
    return best, scores


class EarlyStopping:
    """Stop training when the validation ``main_metric`` has not improved by ``min_delta`` for ``patience``
    evaluations. After each :meth:`step`, ``improved`` says whether to save the checkpoint."""

    def __init__(self, evaluator: ValidationEvaluator, patience: int = 10, min_delta: float = 0.0) -> None:
        self.evaluator = require_validation_evaluator(evaluator)
        if patience < 1:
            raise ProtocolError(f"patience must be >= 1, got {patience}")
        self.patience, self.min_delta = patience, min_delta
        self.best_score = -float("inf")
        self.best_epoch: int | None = None
        self.improved = False
        self.history: list[tuple[int, float]] = []
        self._bad = 0

    def step(self, score_fn: ScoreFn, epoch: int) -> bool:
        """Evaluate on validation; return ``True`` when training should stop."""
        score = self.evaluator.score(score_fn)
        self.history.append((epoch, score))
        self.improved = score > self.best_score + self.min_delta
        if self.improved:
            self.best_score, self.best_epoch, self._bad = score, epoch, 0
        else:
            self._bad += 1
        return self._bad >= self.patience
