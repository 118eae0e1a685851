"""The protocol: only a ValidationEvaluator reaches model selection; the test evaluator masks
train + valid items, runs once per checkpoint and returns a frozen result."""

import dataclasses

import numpy as np
import pytest
import torch

from evaluation.protocol import (
    EarlyStopping,
    ProtocolError,
    TestEvaluator,
    ValidationEvaluator,
    require_validation_evaluator,
    select_best,
)
from evaluation.ranking import build_user_item_sets


def _sets(pairs, num_users, num_items):
    users, items = zip(*pairs, strict=True) if pairs else ((), ())
    return build_user_item_sets(np.array(users, dtype=np.int64), np.array(items, dtype=np.int64), num_users, num_items)


def _by_index(users):
    """Item 0 scores best, then 1, 2, ..."""
    return -torch.arange(6, dtype=torch.float32).expand(len(users), 6)


def _splits(seed):
    """Small random splits over 30 users x 20 items, different per seed (a set keeps one role per process)."""
    rng = np.random.default_rng(seed)
    pairs = np.unique(rng.integers(0, [30, 20], size=(300, 2)), axis=0)
    part = rng.integers(0, 3, size=len(pairs))
    return [build_user_item_sets(pairs[part == p, 0], pairs[part == p, 1], 30, 20) for p in range(3)]


def test_test_evaluator_masks_train_and_valid_items():
    train = _sets([(0, 0), (1, 1)], 3, 6)
    valid = _sets([(0, 1), (1, 2)], 3, 6)
    test = _sets([(0, 2), (1, 0)], 3, 6)
    result = TestEvaluator(train, valid, test, ks=(1, 2), n_resamples=0, n_groups=0).evaluate(_by_index, "ckpt-a")
    # user 0: {0, 1} masked -> [2, 3]; user 1: {1, 2} masked -> [0, 3]; both test items ranked first
    assert result.mean("hit@1") == 1.0 and result.mean("ndcg@2") == 1.0
    assert result.users_evaluated == 2 and result.users_skipped == 1  # user 2 has no test item
    assert result.users.tolist() == [0, 1] and result.heldout_masked == 0
    # the validation evaluator masks train only: user 0 -> [1, 2] hits valid {1}; user 1 -> [0, 2] misses at 1
    val = ValidationEvaluator(train, valid, ks=(1, 2), main_metric="hit@1")
    assert val.score(_by_index) == 0.5
    assert val.evaluate(_by_index).mean("hit@2") == 1.0


def test_selection_utilities_refuse_a_test_evaluator():
    train, valid, test = _splits(1)
    test_ev = TestEvaluator(train, valid, test, ks=(5,), n_resamples=0)
    with pytest.raises(ProtocolError, match="TestEvaluator"):
        require_validation_evaluator(test_ev)
    with pytest.raises(ProtocolError, match="TestEvaluator"):
        EarlyStopping(test_ev)
    with pytest.raises(ProtocolError, match="TestEvaluator"):
        select_best({"a": _by_index}, test_ev)
    with pytest.raises(ProtocolError, match="ValidationEvaluator"):
        EarlyStopping(object())
    assert not hasattr(test_ev, "score")
    assert not isinstance(test_ev, ValidationEvaluator)


def test_validation_evaluator_cannot_be_subclassed_or_fed_the_test_set():
    with pytest.raises(ProtocolError, match="subclassed"):
        type("Sneaky", (ValidationEvaluator,), {})
    train, valid, test = _splits(2)
    TestEvaluator(train, valid, test, ks=(5,), n_resamples=0)
    with pytest.raises(ProtocolError, match="already the test set"):
        ValidationEvaluator(train, test, ks=(5,), main_metric="ndcg@5")
    with pytest.raises(ProtocolError, match="main_metric"):
        ValidationEvaluator(train, valid, ks=(5,), main_metric="ndcg@20")


def test_test_result_is_frozen_and_once_per_checkpoint():
    train, valid, test = _splits(3)
    ev = TestEvaluator(train, valid, test, ks=(5, 10), n_resamples=50, n_groups=2)
    scores = torch.randn(30, 20, generator=torch.Generator().manual_seed(0))
    result = ev.evaluate(lambda u: scores[u], "epoch-7.pt")
    assert result.split == "test" and result.checkpoint == "epoch-7.pt" and result.ks == (5, 10)
    lo, hi = result.metrics["recall@10"]["ci95"]
    assert lo <= result.mean("recall@10") <= hi
    assert {"coverage@10", "novelty@5"} <= set(result.beyond)
    assert sum(g["users"] for g in result.groups) == result.users_evaluated
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.users_evaluated = 0
    with pytest.raises(TypeError):
        result.metrics["recall@10"] = {"mean": 1.0}
    with pytest.raises(ValueError):
        result.per_user["recall@10"][0] = 1.0
    with pytest.raises(ProtocolError, match="already evaluated"):
        ev.evaluate(lambda u: scores[u], "epoch-7.pt")
    with pytest.raises(ProtocolError, match="name the checkpoint"):
        ev.evaluate(lambda u: scores[u], "")


def test_early_stopping_and_select_best():
    train, valid, _ = _splits(4)
    ev = ValidationEvaluator(train, valid, ks=(5,), main_metric="recall@5")
    valid_hits = torch.zeros(30, 20)
    valid_hits[torch.from_numpy(valid.pairs()[0]), torch.from_numpy(valid.pairs()[1])] = 1.0
    good, bad = (lambda u: valid_hits[u]), (lambda u: -valid_hits[u])
    best, scores = select_best({"bad": bad, "good": good}, ev)
    assert best == "good" and scores["good"] > scores["bad"]
    stopper = EarlyStopping(ev, patience=2)
    assert [stopper.step(fn, e) for e, fn in enumerate([bad, good, bad, good, bad])] == [False, False, False, True,
                                                                                           True]
    assert stopper.best_epoch == 1 and stopper.best_score == scores["good"] and not stopper.improved
    assert [e for e, _ in stopper.history] == [0, 1, 2, 3, 4]


def test_mismatched_index_spaces_and_empty_splits():
    train, valid, test = _splits(5)
    with pytest.raises(ProtocolError, match="index spaces"):
        TestEvaluator(train, valid, _sets([(0, 1)], 31, 20), ks=(5,))
    with pytest.raises(ProtocolError, match="no held-out item"):
        ValidationEvaluator(train, _sets([], 30, 20), ks=(5,), main_metric="recall@5")
