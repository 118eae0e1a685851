"""Coverage, average popularity, novelty and Gini of exposure on hand-worked lists."""

import math

import numpy as np
import pytest
import torch

from evaluation import EvaluationError
from evaluation.beyond_accuracy import (
    average_popularity,
    beyond_accuracy,
    catalogue_coverage,
    exposure_counts,
    gini_index,
    novelty,
)

COUNTS = np.array([10, 5, 1, 0])  # training interactions per item, total 16
TOP = torch.tensor([[0, 1], [0, 2]])


def test_coverage_and_exposure():
    assert catalogue_coverage(TOP, 4, k=2) == pytest.approx(3 / 4)
    assert catalogue_coverage(TOP, 4, k=1) == pytest.approx(1 / 4)
    assert exposure_counts(TOP, 4, k=2).tolist() == [2, 1, 1, 0]
    assert catalogue_coverage(np.array([[3, -1]]), 4, k=2) == pytest.approx(1 / 4)


def test_average_popularity():
    assert average_popularity(TOP, COUNTS, k=2) == pytest.approx((7.5 + 5.5) / 2)
    assert average_popularity(TOP, COUNTS, k=1) == pytest.approx(10.0)
    # empty positions are ignored, an all-empty list is left out
    assert average_popularity(np.array([[1, -1], [-1, -1]]), COUNTS, k=2) == pytest.approx(5.0)


def test_novelty_self_information():
    user0 = (-math.log2(10 / 16) - math.log2(5 / 16)) / 2  # 1.178
    user1 = (-math.log2(10 / 16) - math.log2(1 / 16)) / 2  # 2.339
    assert novelty(TOP, COUNTS, k=2) == pytest.approx((user0 + user1) / 2)
    assert novelty(TOP, COUNTS, k=2) == pytest.approx(1.758554, abs=1e-6)
    # an item never seen in training counts as seen once: -log2(1/16) = 4
    assert novelty(np.array([[3]]), COUNTS, k=1) == pytest.approx(4.0)
    with pytest.raises(EvaluationError, match="positive total"):
        novelty(TOP, np.zeros(4), k=2)


def test_gini_index():
    assert gini_index(np.array([2, 1, 1, 0])) == pytest.approx(6 / 16)  # sorted [0,1,1,2]: (-1 + 1 + 6) / (4*4)
    assert gini_index(np.array([3, 3, 3])) == 0.0
    assert gini_index(np.array([0, 0, 0, 1])) == pytest.approx(0.75)
    assert gini_index(np.zeros(5)) == 0.0


def test_beyond_accuracy_keys_and_bad_lists():
    out = beyond_accuracy(TOP, COUNTS, ks=(1, 2))
    assert set(out) == {f"{n}@{k}" for n in ("coverage", "avg_popularity", "novelty", "gini") for k in (1, 2)}
    assert out["gini@2"] == pytest.approx(0.375)
    assert out["gini@1"] == pytest.approx(0.75)  # exposure [2, 0, 0, 0]
    with pytest.raises(EvaluationError, match="outside"):
        catalogue_coverage(np.array([[7]]), 4, k=1)
