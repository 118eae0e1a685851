"""evaluate.py on a tiny checkpoint: the numbers equal an independent full ranking, bad input exits 2 writing
nothing, robustness acts on inputs only, and nothing the script does feeds back into training."""

import hashlib
import json

import numpy as np
import pytest
import torch

import evaluate
from evaluation.metrics import ranking_metrics
from evaluation.ranking import build_user_item_sets, rank_all_items
from gnn.baselines import BASELINES
from gnn.graph_inputs import build_graph_inputs
from gnn.recommender import FittedRecommender, make_score_fn
from kg.graph import KnowledgeGraph
from kg.splits import make_split


def _kg(n_users=30, n_items=40, seed=0, rename_user=None) -> KnowledgeGraph:
    """User ``u`` rates ``10 + u % 10`` random items (8 + u % 10 of them land in training); 40 genre triples."""
    rng = np.random.default_rng(seed)
    kg = KnowledgeGraph()
    for u in range(n_users):
        for i in rng.choice(n_items, size=10 + u % 10, replace=False):
            kg.add_interaction(f"u{u}" if u != rename_user else "someone-else", f"i{i}", 4.0, float(u * 100 + i))
    for i in range(n_items):
        kg.add_triple("item", f"i{i}", "genre", "entity", f"g{i % 4}")
    return kg


def _checkpoint(tmp_path, model="lightgcn", seed=0):
    """A KG dir and a checkpoint in train.py's layout with random weights and its test metrics recorded."""
    kg = _kg()
    kg_dir = tmp_path / "kg"
    kg.save(kg_dir)
    inter = kg.interactions()
    split = make_split(inter, "random", (0.8, 0.1, 0.1), seed)
    train, valid, test = split.parts(inter)
    inputs = build_graph_inputs(kg, train)
    torch.manual_seed(0)
    net = BASELINES[model](inputs, embedding_dim=8, num_layers=2)
    nu, ni = kg.num_nodes("user"), kg.num_nodes("item")
    sets = [build_user_item_sets(p.user, p.item, nu, ni) for p in (train, valid, test)]
    users = torch.from_numpy(np.flatnonzero(sets[2].lengths() > 0))
    if isinstance(net, FittedRecommender):
        net.fit(inputs.train_user, inputs.train_item, nu, ni)
    top = rank_all_items(make_score_fn(net, inputs), users, ni, sets[0].union(sets[1]), 20)
    expected = ranking_metrics(top, sets[2], (10, 20), users).means()
    ck = {"format_version": 1, "config": {"model": model, "embedding_dim": 8, "num_layers": 2},
          "kg_dir": str(kg_dir), "id_maps": {t: list(kg.ids(t)) for t in ("user", "item", "entity")},
          "split": {"method": "random", "ratios": [0.8, 0.1, 0.1], "seed": seed}, "encoders": {},
          "metrics": {"test": {k: expected[k] for k in ("recall@20", "ndcg@20")}},
          "model_state": net.state_dict() if isinstance(net, torch.nn.Module) else {}}
    path = tmp_path / "run" / "best.pt"
    path.parent.mkdir()
    torch.save(ck, path)
    return path, kg_dir, expected


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_evaluate_reports_the_independent_full_ranking_numbers(tmp_path, capsys):
    path, _, expected = _checkpoint(tmp_path)
    before = _sha(path)
    out = tmp_path / "out"
    rc = evaluate.main(["--checkpoint", str(path), "--ks", "10,20", "--out-dir", str(out), "--bootstrap", "50",
                        "--groups", "2", "--threads", "1"])
    assert rc == 0
    report = json.loads((out / "eval_test.json").read_text())
    for k in ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "hit@10", "precision@20"):
        assert report["metrics"]["test"][k]["mean"] == pytest.approx(expected[k], abs=1e-12)
        lo, hi = report["metrics"]["test"][k]["ci95"]
        assert lo <= expected[k] <= hi
    assert report["users_evaluated"]["test"] == 30 and report["users_skipped"]["test"] == 0
    assert report["meta"]["recorded_by_train"]["matches"] is True
    assert report["meta"]["split"] == {"method": "random", "seed": 0, "ratios": [0.8, 0.1, 0.1]}
    assert report["timing"]["test"]["seconds"] > 0 and "peak_mem_mb" in report["timing"]["test"]
    assert report["meta"]["heldout_masked"] == 0 and len(report["groups"]["test"]) == 2
    stdout = capsys.readouterr().out
    assert "test: 30 users evaluated" in stdout and "recorded test metrics: match" in stdout
    assert f"{expected['ndcg@20']:.4f}" in stdout and f"{expected['ndcg@20']:.4f}" in (out / "eval_test.md").read_text()
    # only the two reports were written, the checkpoint is unchanged: nothing flows back into training
    assert sorted(p.name for p in out.iterdir()) == ["eval_test.json", "eval_test.md"]
    assert _sha(path) == before and sorted(p.name for p in path.parent.iterdir()) == ["best.pt"]


def test_validation_split_masks_train_only(tmp_path):
    path, kg_dir, _ = _checkpoint(tmp_path, seed=1)
    rc = evaluate.main(["--checkpoint", str(path), "--kg", str(kg_dir), "--split", "valid", "--ks", "5",
                        "--bootstrap", "0", "--groups", "0"])
    assert rc == 0
    report = json.loads((path.parent / "eval_valid.json").read_text())
    assert report["metrics"]["valid"]["recall@5"]["ci95"] is None and report["users_evaluated"]["valid"] == 30


def test_missing_checkpoint_is_one_line_naming_the_file(tmp_path, capsys):
    out = tmp_path / "out"
    assert evaluate.main(["--checkpoint", str(tmp_path / "nope.pt"), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'nope.pt'}: checkpoint not found\n"
    assert not out.exists()


def test_kg_mismatch_is_refused_before_writing(tmp_path, capsys):
    path, _, _ = _checkpoint(tmp_path)
    other = tmp_path / "other_kg"
    _kg(rename_user=3).save(other)
    out = tmp_path / "out"
    assert evaluate.main(["--checkpoint", str(path), "--kg", str(other), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {other}: user ids differ from those of checkpoint {path}") and err.count("\n") == 1
    assert not out.exists() and sorted(p.name for p in path.parent.iterdir()) == ["best.pt"]


def test_corrupt_checkpoint_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert evaluate.main(["--checkpoint", str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {bad}: not a loadable checkpoint")


def test_robustness_perturbs_inputs_not_weights(tmp_path, capsys):
    path, _, expected = _checkpoint(tmp_path)
    before = _sha(path)
    out = tmp_path / "res"
    rc = evaluate.main(["--checkpoint", str(path), "--robustness", "--levels", "0,0.5", "--ks", "20",
                        "--out-dir", str(out), "--quiet"])
    assert rc == 0
    table = json.loads((out / "robustness.json").read_text())
    assert table["clean"]["ndcg@20"] == pytest.approx(expected["ndcg@20"], abs=1e-12)
    rows = {(r["perturbation"], r["level"]): r for r in table["rows"]}
    # LightGCN ignores the KG: dropping / adding KG triples changes the inputs but not its scores
    assert rows[("drop_kg_edges", 0.5)]["kg_triples"] == 20 and rows[("add_kg_edges", 0.5)]["kg_triples"] == 60
    assert rows[("drop_kg_edges", 0.5)]["metrics"] == table["clean"]
    noisy = rows[("noisy_interactions", 0.5)]
    assert noisy["train_interactions"] == 375 + 188  # sum(8 + u % 10) + round(375 / 2)
    assert noisy["metrics"] != table["clean"]
    assert set(table["skipped"]) == {"no_image", "no_text"}
    assert "| noisy_interactions | 0.5 |" in (out / "robustness.md").read_text()
    assert "drop_kg_edges" in capsys.readouterr().out and _sha(path) == before


def test_robustness_refuses_a_fitted_baseline(tmp_path, capsys):
    path, _, _ = _checkpoint(tmp_path, model="mostpop")
    assert evaluate.main(["--checkpoint", str(path), "--robustness", "--quiet"]) == 2
    assert "robustness needs a trainable model" in capsys.readouterr().err
