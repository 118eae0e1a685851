"""benchmarks/quality_headroom.py and headroom_terms.py: the terms against their definitions computed by hand on
tiny matrices, the blend chosen on validation only (and never when it lowers it), missing rows refused."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from benchmarks.headroom_terms import cease_terms, ease_terms, gfcf_terms, lowpass_terms, popularity_terms
from benchmarks.quality_headroom import DEFAULT_ROW, main, render, select_blend, summarize
from evaluation.protocol import ValidationEvaluator
from evaluation.ranking import build_user_item_sets
from gnn.ease import ease_weights

X = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1], [0, 0, 1, 1], [1, 1, 1, 0]], dtype=float)


def test_popularity_and_gfcf_by_hand() -> None:
    x = sp.csr_matrix(X)
    [(_, pop)] = popularity_terms(x)
    assert np.allclose(pop, np.log1p([3, 3, 3, 2])[None, :].repeat(5, 0))
    [(_, t)] = gfcf_terms(x)
    du, di = X.sum(1), X.sum(0)
    p = np.zeros((4, 4))  # P_ij = sum_u X_ui X_uj / (d_u sqrt(d_i d_j))
    for i in range(4):
        for j in range(4):
            p[i, j] = sum(X[u, i] * X[u, j] / du[u] for u in range(5)) / np.sqrt(di[i] * di[j])
    assert np.allclose(t, X @ p)
    # user 0 has items 0, 1: P_00 = (1/2 + 1/2 + 1/3) / 3 (users 0, 2, 4), P_10 = (1/2 + 1/3) / 3 (users 0, 4)
    assert t[0, 0] == pytest.approx(4 / 9 + 5 / 18)


def test_cease_is_ease_on_stacked_rows() -> None:
    x, e = sp.csr_matrix(X), sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1], [0, 0]], dtype=float))  # [I, Ent]
    [(label, t)] = cease_terms(x, e, grid=((2.0, 3.0),))
    stacked = np.vstack([X, 2.0 * e.toarray().T])  # each entity a pseudo-user of its items, weight a
    b = ease_weights(torch.from_numpy(stacked.T @ stacked), 3.0).numpy()
    assert label == "a 2, L2 3" and np.allclose(t, X @ b)
    [(_, zero)] = cease_terms(x, e, grid=((0.0, 3.0),))
    [(_, plain)] = ease_terms(x, regs=(3.0,))
    assert np.allclose(zero, plain)


def test_full_rank_lowpass_gives_back_the_history() -> None:
    x = sp.csr_matrix(np.delete(X, 4, axis=0))  # [4, 4]: rank 3, so 3 singular vectors span the rows
    assert np.linalg.matrix_rank(x.toarray()) == 3
    [(label, t)] = lowpass_terms(x, ks=(3,))
    assert label == "k 3" and np.allclose(t, x.toarray())
    assert list(lowpass_terms(x, ks=(4, 64))) == []  # no k below min(U, I): no term


def test_blend_chosen_on_validation_only_and_never_when_it_hurts() -> None:
    rng = np.random.default_rng(0)
    users, items = 30, 12
    train = build_user_item_sets(np.arange(users), np.arange(users) % items, users, items)
    v_items = (np.arange(users) + 1 + rng.integers(0, items - 1, users)) % items
    v_items = np.where(v_items == np.arange(users) % items, (v_items + 1) % items, v_items)
    valid = build_user_item_sets(np.arange(users), v_items, users, items)
    validator = ValidationEvaluator(train, valid, ks=(20,), main_metric="ndcg@20")
    base = rng.normal(size=(users, items))
    unseen = np.ones((users, items), bool)
    unseen[np.arange(users), np.arange(users) % items] = False
    hit = np.zeros((users, items))
    hit[np.arange(users), v_items] = 1.0
    before = validator.score(lambda u: torch.from_numpy(base)[u])
    good = select_blend(base, unseen, [("answers", hit)], validator)
    assert good["param"] == "answers" and good["weight"] > 0 and good["valid"] > before
    assert good["alone"] == pytest.approx(1.0)  # the answers alone rank each user's validation item first
    bad = select_blend(base, unseen, [("anti", -hit), ("flat", np.zeros_like(base))], validator)
    assert bad["param"] is None and bad["weight"] == 0.0 and bad["valid"] == before and bad["scores"] is base
    assert bad["alone"] < before  # the flat term has no spread: not scored; the anti-answers rank them last


def test_missing_row_is_refused(tmp_path, capsys) -> None:
    q = tmp_path / "quality.json"
    q.write_text(json.dumps({"models": {}}))
    assert main(["--quality", str(q), "--rows", "No such row", "--out-dir", str(tmp_path)]) == 2
    assert "no row 'No such row'" in capsys.readouterr().err
    assert not (tmp_path / "headroom.md").exists()


def test_summary_and_table_by_hand() -> None:
    quality = {"models": {"LightGCN": {"mean": {"test/ndcg@20": 0.2}}}}
    cell = lambda p, w, v, t, a: {"param": p, "weight": w, "valid": v, "test": t, "alone": a}  # noqa: E731
    per_seed = {"0": {"model": cell(None, 0.0, 0.25, 0.30, None), "ease": cell("L2 300", 0.1, 0.26, 0.33, 0.20)},
                "1": {"model": cell(None, 0.0, 0.27, 0.34, None), "ease": cell(None, 0.0, 0.27, 0.34, 0.22)}}
    model, ease = summarize(quality, DEFAULT_ROW, per_seed)
    assert model["test"] == pytest.approx(0.32) and model["vs_reference"] == pytest.approx(1.6)
    assert model["alone"] is None and model["vs_model"] == pytest.approx(1.0)
    assert ease["valid"] == pytest.approx(0.265) and ease["test"] == pytest.approx(0.335)
    assert ease["vs_model"] == pytest.approx(0.335 / 0.32) and ease["alone"] == pytest.approx(0.21)
    assert ease["chosen"] == ["L2 300, w 0.1", None]
    text = render({"rows": {DEFAULT_ROW: {"summary": [model, ease]}}})
    assert "| ease | 2 | 0.2100 | 0.2650 | 0.3350 | 1.047x | 1.675x | L2 300, w 0.1; w 0 |" in text
    assert summarize({"models": {}}, "another row", per_seed)[0]["vs_reference"] is None
