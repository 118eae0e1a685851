"""benchmarks/quality_headroom.py and headroom_terms.py: the terms against their definitions computed by hand on
tiny matrices, the blend chosen on validation only (and never when it lowers it), missing rows refused."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from benchmarks.headroom_terms import cease_terms, ease_terms, gfcf_terms, lowpass_terms, popularity_terms
from benchmarks.quality_headroom import main, select_blend
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
    bad = select_blend(base, unseen, [("anti", -hit), ("flat", np.zeros_like(base))], validator)
    assert bad["param"] is None and bad["weight"] == 0.0 and bad["valid"] == before and bad["scores"] is base


def test_missing_row_is_refused(tmp_path, capsys) -> None:
    q = tmp_path / "quality.json"
    q.write_text(json.dumps({"models": {}}))
    assert main(["--quality", str(q), "--rows", "No such row", "--out-dir", str(tmp_path)]) == 2
    assert "no row 'No such row'" in capsys.readouterr().err
    assert not (tmp_path / "headroom.md").exists()
