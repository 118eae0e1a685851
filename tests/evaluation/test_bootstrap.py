"""Bootstrap over users: determinism, paired draws, interval width, errors."""

import numpy as np
import pytest

import evaluation.bootstrap as bootstrap
from evaluation import EvaluationError
from evaluation.bootstrap import bootstrap_ci, bootstrap_means, paired_difference_ci, summarize


def test_constant_values_give_a_point_interval():
    assert bootstrap_ci({"m": np.full(50, 0.3)}, n_resamples=200) == {"m": (pytest.approx(0.3), pytest.approx(0.3))}


def test_same_seed_same_interval_and_paired_draws():
    x = np.random.default_rng(0).random(300)
    a = bootstrap_ci({"a": x, "b": 2 * x}, n_resamples=500, seed=3)
    assert a == bootstrap_ci({"a": x, "b": 2 * x}, n_resamples=500, seed=3)
    assert a != bootstrap_ci({"a": x, "b": 2 * x}, n_resamples=500, seed=4)
    # every metric is resampled over the same users: b = 2a draw by draw
    assert a["b"][0] == pytest.approx(2 * a["a"][0]) and a["b"][1] == pytest.approx(2 * a["a"][1])
    low, high = a["a"]
    assert low < x.mean() < high


def test_width_matches_the_normal_approximation():
    hits = (np.random.default_rng(1).random(1000) < 0.3).astype(float)
    low, high = bootstrap_ci({"hit": hits}, n_resamples=2000, seed=0)["hit"]
    p = hits.mean()
    expected = 2 * 1.96 * np.sqrt(p * (1 - p) / hits.size)  # about 0.057
    assert high - low == pytest.approx(expected, rel=0.15)


def test_chunked_draws_cover_every_resample(monkeypatch):
    monkeypatch.setattr(bootstrap, "_MAX_DRAW_CELLS", 70)  # 7 resamples of 10 users per chunk
    means = bootstrap_means({"m": np.arange(10.0)}, n_resamples=25, seed=0)["m"]
    assert means.shape == (25,) and np.all((means >= 0) & (means <= 9))
    assert len(set(np.round(means, 9))) > 5


def test_summarize_and_paired_difference():
    out = summarize({"m": np.array([0.0, 1.0])}, n_resamples=0)
    assert out == {"m": {"mean": 0.5, "ci95": None}}
    out = summarize({"m": np.array([0.0, 1.0, 1.0, 0.0])}, n_resamples=100)
    assert out["m"]["mean"] == 0.5 and 0.0 <= out["m"]["ci95"][0] <= 0.5 <= out["m"]["ci95"][1] <= 1.0
    b = np.random.default_rng(2).random(100)
    d = paired_difference_ci(b + 0.1, b, n_resamples=200)
    assert d["mean_diff"] == pytest.approx(0.1)
    assert d["low"] == pytest.approx(0.1) and d["high"] == pytest.approx(0.1) and d["p_not_better"] == 0.0


def test_errors():
    with pytest.raises(EvaluationError, match="zero users"):
        bootstrap_ci({"m": np.array([])})
    with pytest.raises(EvaluationError, match="differ in length"):
        bootstrap_ci({"a": np.zeros(3), "b": np.zeros(4)})
    with pytest.raises(EvaluationError, match="confidence"):
        bootstrap_ci({"a": np.zeros(3)}, confidence=1.5)
