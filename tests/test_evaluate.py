"""evaluate.py on a tiny checkpoint: the numbers equal an independent full ranking, bad input exits 2 writing
nothing, robustness acts on inputs only, and nothing the script does feeds back into training."""

import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import evaluate
import train
from evaluation.metrics import ranking_metrics
from evaluation.protocol import EarlyStopping, ProtocolError, TestEvaluator, ValidationEvaluator, select_best
from evaluation.ranking import build_user_item_sets, rank_all_items
from kg.model.graph import KnowledgeGraph
from kg.model.splits import make_split


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


def _train(root, model="lightgcn", seed=0, spy=None):
    """Train a tiny model with train.py (3 epochs, validation every epoch); returns ``(best.pt, kg_dir)``.
    ``spy`` (a list) records every validation / test evaluation train.py runs, in order."""
    kg_dir = root / "kg"
    if not kg_dir.exists():
        _kg().save(kg_dir)
    out = root / f"run-{model}"
    argv = ["--kg", str(kg_dir), "--out", str(out), "--model", model, "--embedding-dim", "8", "--num-layers", "2",
            "--epochs", "3", "--eval-every", "1", "--patience", "5", "--lr", "0.05", "--batch-size", "64",
            "--ks", "10,20", "--test-resamples", "0", "--split-seed", str(seed), "--seed", str(seed),
            "--device", "cpu", "--threads", "1", "--tensorboard", "false", "--progress", "false"]
    with pytest.MonkeyPatch.context() as mp:
        if spy is not None:
            for cls, role in ((ValidationEvaluator, "valid"), (TestEvaluator, "test")):
                original = cls.evaluate

                def wrapped(self, *a, _original=original, _role=role, **kw):
                    result = _original(self, *a, **kw)
                    spy.append((_role, a[1] if len(a) > 1 else None, result.mean("ndcg@20")))
                    return result

                mp.setattr(cls, "evaluate", wrapped)
        assert train.main(argv) == 0
    return out / "best.pt", kg_dir


def _independent_test_metrics(path, kg_dir):
    """Test metrics from the embeddings train.py exported, ranked here without evaluate.py."""
    kg = KnowledgeGraph.load(kg_dir)
    inter = kg.interactions()
    tr, va, te = make_split(inter, "random", (0.8, 0.1, 0.1), 0).parts(inter)
    nu, ni = kg.num_nodes("user"), kg.num_nodes("item")
    sets = [build_user_item_sets(p.user, p.item, nu, ni) for p in (tr, va, te)]
    emb = load_file(str(path.parent / "embeddings.safetensors"))
    users = torch.from_numpy(np.flatnonzero(sets[2].lengths() > 0))
    top = rank_all_items(lambda u: emb["user_emb"][u] @ emb["item_emb"].T, users, ni, sets[0].union(sets[1]), 20)
    return ranking_metrics(top, sets[2], (10, 20), users).means()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    spy: list = []
    path, kg_dir = _train(root, spy=spy)
    return path, kg_dir, spy


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_evaluate_reports_the_numbers_train_recorded(trained, tmp_path, capsys):
    path, kg_dir, _ = trained
    expected = _independent_test_metrics(path, kg_dir)
    recorded = torch.load(path, weights_only=True)["metrics"]["test"]
    before, listing = _sha(path), sorted(p.name for p in path.parent.iterdir())
    out = tmp_path / "out"
    rc = evaluate.main(["--checkpoint", str(path), "--ks", "10,20", "--out-dir", str(out), "--bootstrap", "50",
                        "--groups", "2", "--threads", "1"])
    assert rc == 0
    report = json.loads((out / "eval_test.json").read_text())
    for k in ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "hit@10", "precision@20"):
        assert report["metrics"]["test"][k]["mean"] == pytest.approx(expected[k], abs=1e-6)
        assert report["metrics"]["test"][k]["mean"] == pytest.approx(recorded[k], abs=1e-12)
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
    assert _sha(path) == before and sorted(p.name for p in path.parent.iterdir()) == listing


def test_validation_split_reproduces_the_selected_epoch(trained, tmp_path):
    path, kg_dir, _ = trained
    copy = tmp_path / "best.pt"
    copy.write_bytes(path.read_bytes())
    rc = evaluate.main(["--checkpoint", str(copy), "--kg", str(kg_dir), "--split", "valid", "--ks", "10,20",
                        "--bootstrap", "0", "--groups", "0"])
    assert rc == 0  # default --out-dir: beside the checkpoint
    report = json.loads((tmp_path / "eval_valid.json").read_text())
    assert report["metrics"]["valid"]["recall@10"]["ci95"] is None and report["users_evaluated"]["valid"] == 30
    history = torch.load(path, weights_only=True)["history"]
    assert report["metrics"]["valid"]["ndcg@20"]["mean"] == pytest.approx(history["best_score"], abs=1e-12)


def test_missing_checkpoint_is_one_line_naming_the_file(tmp_path, capsys):
    out = tmp_path / "out"
    assert evaluate.main(["--checkpoint", str(tmp_path / "nope.pt"), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'nope.pt'}: checkpoint not found\n"
    assert not out.exists()


def test_kg_mismatch_is_refused_before_writing(trained, tmp_path, capsys):
    path, _, _ = trained
    listing = sorted(p.name for p in path.parent.iterdir())
    other = tmp_path / "other_kg"
    _kg(rename_user=3).save(other)
    out = tmp_path / "out"
    assert evaluate.main(["--checkpoint", str(path), "--kg", str(other), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {other}: user ids differ from those of checkpoint {path}") and err.count("\n") == 1
    assert not out.exists() and sorted(p.name for p in path.parent.iterdir()) == listing


def test_corrupt_checkpoint_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert evaluate.main(["--checkpoint", str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {bad}: not a loadable checkpoint")


def test_robustness_perturbs_inputs_not_weights(trained, tmp_path, capsys):
    path, _, _ = trained
    expected = torch.load(path, weights_only=True)["metrics"]["test"]
    before = _sha(path)
    out = tmp_path / "res"
    rc = evaluate.main(["--checkpoint", str(path), "--robustness", "--levels", "0,0.5", "--ks", "20",
                        "--out-dir", str(out), "--quiet"])
    assert rc == 0
    table = json.loads((out / "robustness.json").read_text())
    assert table["clean"]["ndcg@20"] == pytest.approx(expected["ndcg@20"], abs=1e-12)  # level 0 = the model
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


def test_fitted_baseline_is_refitted_and_refused_for_robustness(tmp_path, capsys):
    path, _ = _train(tmp_path, model="mostpop")
    assert torch.load(path, weights_only=True)["model_state"] == {}
    assert evaluate.main(["--checkpoint", str(path), "--ks", "10,20", "--bootstrap", "0", "--groups", "0",
                          "--out-dir", str(tmp_path / "o")]) == 0
    report = json.loads((tmp_path / "o" / "eval_test.json").read_text())
    assert report["meta"]["recorded_by_train"]["matches"] is True
    assert evaluate.main(["--checkpoint", str(path), "--robustness", "--quiet"]) == 2
    assert "robustness needs a trainable model" in capsys.readouterr().err


def test_model_selection_never_sees_test_data(trained):
    """train.py validates every epoch and selects on validation only; the test evaluator runs once, last, on
    the selected checkpoint; handing a TestEvaluator to selection / early stopping is a ProtocolError."""
    path, _, spy = trained
    roles = [r for r, _, _ in spy]
    assert roles == ["valid", "valid", "valid", "test"]
    assert spy[-1][1] == str(path.resolve())
    ck = torch.load(path, weights_only=True)
    valid = [s for r, _, s in spy if r == "valid"]
    assert ck["history"]["best_epoch"] == 1 + max(range(3), key=lambda e: (valid[e], -e))
    assert ck["metrics"]["test"]["ndcg@20"] == pytest.approx(spy[-1][2])
    sets = _independent_sets()
    tester = TestEvaluator(*sets, ks=(20,), n_resamples=0)
    with pytest.raises(ProtocolError, match="TestEvaluator"):
        select_best({"a": lambda u: torch.zeros(len(u), 40)}, tester)
    with pytest.raises(ProtocolError, match="TestEvaluator"):
        EarlyStopping(tester)
    # evaluate.py holds no selection / training entry point its results could reach
    assert not {"select_best", "EarlyStopping", "train_epoch", "run"} & set(vars(evaluate))


def _independent_sets():
    kg = _kg(seed=7)
    inter = kg.interactions()
    parts = make_split(inter, "random", (0.8, 0.1, 0.1), 7).parts(inter)
    return [build_user_item_sets(p.user, p.item, kg.num_nodes("user"), kg.num_nodes("item")) for p in parts]
