"""Accuracy metrics against hand-worked cases and a brute-force pure-Python reference."""

import math

import numpy as np
import pytest
import torch

from evaluation import EvaluationError
from evaluation.metrics import METRIC_NAMES, hit_matrix, ranking_metrics
from evaluation.ranking import build_user_item_sets

LOG3 = 1 / math.log2(3)  # discount of rank 2


def _value(result, name, row):
    """The per-user value of ``name`` for input row ``row``."""
    pos = int(np.flatnonzero(result.rows == row)[0])
    return float(result.per_user[name][pos])


def test_hand_worked_user():
    # held-out {1, 4}, list [4, 2, 1, 7, 9]: hits at ranks 1 and 3
    m = ranking_metrics(torch.tensor([[4, 2, 1, 7, 9]]), [np.array([1, 4])], ks=(2, 5))
    assert _value(m, "recall@5", 0) == pytest.approx(1.0)
    assert _value(m, "precision@5", 0) == pytest.approx(0.4)
    assert _value(m, "f1@5", 0) == pytest.approx(2 * 0.4 * 1.0 / 1.4)
    assert _value(m, "ndcg@5", 0) == pytest.approx((1 + 1 / math.log2(4)) / (1 + LOG3))
    assert _value(m, "ndcg@5", 0) == pytest.approx(0.919720, abs=1e-6)
    assert _value(m, "hit@5", 0) == 1.0
    assert _value(m, "mrr@5", 0) == 1.0
    assert _value(m, "map@5", 0) == pytest.approx((1 / 1 + 2 / 3) / 2)  # 0.8333
    # at K=2 only the first hit counts
    assert _value(m, "recall@2", 0) == pytest.approx(0.5)
    assert _value(m, "precision@2", 0) == pytest.approx(0.5)
    assert _value(m, "f1@2", 0) == pytest.approx(0.5)
    assert _value(m, "ndcg@2", 0) == pytest.approx(1 / (1 + LOG3))
    assert _value(m, "map@2", 0) == pytest.approx(0.5)


def test_late_hit_many_relevant_and_skipped_users():
    top = torch.tensor([[0, 1, 2, 3, 5], [8, 9, 6, 7, 5], [10, 0, 11, 1, 2]])
    relevant = [np.array([3]), np.array([], dtype=np.int64), np.arange(10, 17)]
    m = ranking_metrics(top, relevant, ks=(2, 5))
    assert m.users_evaluated == 2 and m.users_skipped == 1
    assert list(m.rows) == [0, 2]
    # user 0: single relevant item at rank 4
    assert _value(m, "recall@5", 0) == pytest.approx(1.0)
    assert _value(m, "precision@5", 0) == pytest.approx(0.2)
    assert _value(m, "ndcg@5", 0) == pytest.approx(1 / math.log2(5))  # 0.4307
    assert _value(m, "mrr@5", 0) == pytest.approx(0.25)
    assert _value(m, "map@5", 0) == pytest.approx(0.25)
    for name in METRIC_NAMES:
        assert _value(m, f"{name}@2", 0) == 0.0
    # user 2: 7 relevant items, hits at ranks 1 and 3; IDCG over min(5, 7) = 5 positions
    idcg5 = sum(1 / math.log2(i + 2) for i in range(5))
    assert _value(m, "recall@5", 2) == pytest.approx(2 / 7)
    assert _value(m, "ndcg@5", 2) == pytest.approx(1.5 / idcg5)
    assert _value(m, "ndcg@5", 2) == pytest.approx(0.508740, abs=1e-6)
    assert _value(m, "map@5", 2) == pytest.approx((1 + 2 / 3) / 5)
    assert m.means()["mrr@5"] == pytest.approx((0.25 + 1.0) / 2)


def test_cutoff_beyond_list_counts_missing_positions_as_misses():
    m = ranking_metrics(np.array([[4, 2, 1, 7, 9], [3, -1, -1, -1, -1]]), [np.array([1, 4]), np.array([3])], ks=(10,))
    assert _value(m, "precision@10", 0) == pytest.approx(0.2)
    assert _value(m, "recall@10", 0) == pytest.approx(1.0)
    assert _value(m, "ndcg@10", 0) == pytest.approx(1.5 / (1 + LOG3))
    assert _value(m, "precision@10", 1) == pytest.approx(0.1)
    assert _value(m, "ndcg@10", 1) == pytest.approx(1.0)


def test_user_item_sets_input_and_duplicate_relevant_items():
    sets = build_user_item_sets(np.array([5, 5, 5, 2]), np.array([1, 4, 4, 0]), num_users=6, num_items=10)
    m = ranking_metrics(torch.tensor([[4, 2, 1], [0, 1, 2]]), sets, ks=(3,), users=torch.tensor([5, 3]))
    assert m.users_evaluated == 1 and m.users_skipped == 1  # user 3 holds nothing
    assert _value(m, "recall@3", 0) == pytest.approx(1.0)
    hits, n_rel = hit_matrix(np.array([[1, 4]]), [np.array([4, 4, 1])])
    assert hits.tolist() == [[True, True]] and n_rel.tolist() == [2]


def test_bad_inputs():
    with pytest.raises(EvaluationError, match="more than once"):
        ranking_metrics(np.array([[1, 2, 1]]), [np.array([1])], ks=(3,))
    with pytest.raises(EvaluationError, match="rows"):
        ranking_metrics(np.array([[1, 2]]), [np.array([1]), np.array([2])], ks=(2,))
    with pytest.raises(EvaluationError, match="positive"):
        ranking_metrics(np.array([[1, 2]]), [np.array([1])], ks=(0,))
    with pytest.raises(EvaluationError, match="users="):
        ranking_metrics(np.array([[1, 2]]), build_user_item_sets([0], [1], 1, 3), ks=(2,))


def _brute_force(top, relevant, k):
    """Every metric for one user, in plain Python loops."""
    rel = set(int(x) for x in relevant)
    hits = [1 if j < len(top) and int(top[j]) in rel else 0 for j in range(k)]
    n_hit = sum(hits)
    recall, precision = n_hit / len(rel), n_hit / k
    f1 = 2 * precision * recall / (precision + recall) if n_hit else 0.0
    dcg = sum(h / math.log2(j + 2) for j, h in enumerate(hits))
    idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(rel))))
    first = next((j for j, h in enumerate(hits) if h), None)
    ap, seen = 0.0, 0
    for j, h in enumerate(hits):
        if h:
            seen += 1
            ap += seen / (j + 1)
    return {"recall": recall, "precision": precision, "f1": f1, "ndcg": dcg / idcg, "hit": float(n_hit > 0),
            "mrr": 0.0 if first is None else 1 / (first + 1), "map": ap / min(k, len(rel))}


def test_vectorised_matches_brute_force_on_random_data():
    rng = np.random.default_rng(7)
    n_users, n_items, width = 200, 60, 25
    top = np.stack([rng.permutation(n_items)[:width] for _ in range(n_users)])
    relevant = [rng.choice(n_items, size=rng.integers(0, 12), replace=False) for _ in range(n_users)]
    ks = (1, 5, 10, 25, 30)
    m = ranking_metrics(top, relevant, ks)
    assert m.users_skipped == sum(len(r) == 0 for r in relevant)
    for pos, row in enumerate(m.rows):
        for k in ks:
            expected = _brute_force(top[row], relevant[row], k)
            for name in METRIC_NAMES:
                assert m.per_user[f"{name}@{k}"][pos] == pytest.approx(expected[name], abs=1e-12), (row, name, k)


def test_per_user_arrays_are_read_only():
    m = ranking_metrics(np.array([[1, 2]]), [np.array([1])], ks=(2,))
    with pytest.raises(ValueError):
        m.per_user["recall@2"][0] = 0.0
    with pytest.raises(TypeError):
        m.per_user["recall@2"] = np.zeros(1)


def test_activity_groups_split_by_training_interactions():
    from evaluation.activity_groups import activity_groups, metrics_by_group

    groups = activity_groups(np.array([8, 1, 2, 3, 4, 5, 6, 7]), n_groups=4)  # quartile edges 2.75, 4.5, 6.25
    assert [g.label for g in groups] == ["G1: 1-2 train interactions", "G2: 3-4 train interactions",
                                         "G3: 5-6 train interactions", "G4: 7-8 train interactions"]
    assert [g.members.tolist() for g in groups] == [[1, 2], [3, 4], [5, 6], [0, 7]]
    tied = activity_groups(np.array([5, 5, 5, 5, 9]), n_groups=4)  # empty groups are dropped
    assert [(g.label, g.members.size) for g in tied] == [("G1: 5 train interactions", 4),
                                                         ("G2: 9 train interactions", 1)]
    out = metrics_by_group({"recall@5": np.array([0.0, 1.0, 0.5, 0.5, 1.0])}, np.array([5, 5, 5, 5, 9]), 4)
    assert out[0]["metrics"] == {"recall@5": 0.5} and out[1]["metrics"] == {"recall@5": 1.0}
    assert (out[1]["min_train_interactions"], out[1]["max_train_interactions"], out[1]["users"]) == (9, 9, 1)
    with pytest.raises(EvaluationError, match="per-user values"):
        metrics_by_group({"recall@5": np.zeros(3)}, np.array([1, 2]))
