import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import train
from kg.model.graph import KnowledgeGraph
from training.config import ConfigError, parse_config

REPO = Path(__file__).resolve().parent.parent
FAST = ["--threads", "1", "--progress", "false", "--tensorboard", "false", "--test_resamples", "0",
        "--embedding_dim", "8", "--ks", "5,20", "--batch_size", "64"]


@pytest.fixture(scope="module")
def tiny_kg(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    kg = KnowledgeGraph()
    for u in range(25):
        for i in rng.choice(30, size=int(rng.integers(8, 15)), replace=False):
            kg.add_interaction(f"u{u}", f"i{i}", 5.0, float(rng.integers(1000)))
    for i in range(30):
        kg.add_triple("item", f"i{i}", "genre", "entity", f"g{i % 4}")
    for u in range(25):
        kg.add_triple("user", f"u{u}", "gender", "entity", f"sex{u % 2}")
    path = tmp_path_factory.mktemp("kg") / "tiny"
    kg.save(str(path))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def test_config_toml_flags_and_errors(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[data]\nkg = "x"\n[optim]\nlr = 0.5\nepochs = 7\n[baseline_options]\nreg_weight = 3.0\n')
    cfg = parse_config(["--config", str(toml), "--epochs", "9", "--use-kg", "false", "--resume"])
    assert (cfg.kg, cfg.lr, cfg.epochs, cfg.use_kg, cfg.resume) == ("x", 0.5, 9, False, True)
    assert cfg.baseline_options == {"reg_weight": 3.0}
    (tmp_path / "bad.toml").write_text('kg = "x"\nlearning_rate = 1\n')
    with pytest.raises(ConfigError, match="unknown config key 'learning_rate'"):
        parse_config(["--config", str(tmp_path / "bad.toml")])
    with pytest.raises(ConfigError, match="unknown flag --nope"):
        parse_config(["--kg", "x", "--nope", "1"])
    with pytest.raises(ConfigError, match="'epochs'"):
        parse_config(["--kg", "x", "--epochs", "two"])
    assert parse_config(["--config", str(REPO / "configs" / "ml100k.toml")]).model == "mmkg"


def test_main_reports_errors_with_exit_2(capsys, tmp_path):
    assert train.main(["--kg", str(tmp_path / "missing"), "--bogus", "1"]) == 2
    assert "error: unknown flag --bogus" in capsys.readouterr().err
    assert train.main(["--kg", str(tmp_path / "missing")]) == 2
    assert "not a KG directory" in capsys.readouterr().err


def test_full_model_trains_tests_once_and_exports(tiny_kg, tmp_path, capsys, monkeypatch):
    import gnn.adjacency

    monkeypatch.setattr(gnn.adjacency, "neighbor_sampling_backend", lambda: None)
    out = tmp_path / "run"
    rc = train.main([*FAST, "--kg", str(tiny_kg), "--out", str(out), "--epochs", "3", "--eval_every", "1",
                     "--contrastive_weight", "0.1", "--kg_loss_weight", "0.1", "--loss", "softmax",
                     "--num_negatives", "4", "--neighbor_sampling", "true", "--tensorboard", "true"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "neither is importable, so training runs full-graph" in err
    ck = torch.load(out / "best.pt", weights_only=True)
    assert ck["config"]["model"] == "mmkg" and ck["split"]["seed"] == 2020
    assert ck["id_maps"]["user"][:2] == ["u0", "u1"] and "test" in ck["metrics"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"recall@20", "ndcg@20"} and len(metrics["valid"]) == 3
    assert [r["epoch"] for r in metrics["train"]] == [1, 2, 3] and all(r["loss"] > 0 for r in metrics["train"])
    emb = load_file(str(out / "embeddings.safetensors"))
    assert emb["user_emb"].shape == (25, 8) and emb["item_emb"].shape[0] == 30
    assert json.loads((out / "ids.json").read_text())["item"] == KnowledgeGraph.load(str(tiny_kg)).ids("item")
    assert list((out / "tb").iterdir())


def test_fitted_baseline_from_registry(tiny_kg, tmp_path):
    out = tmp_path / "pop"
    assert train.main(["--kg", str(tiny_kg), "--out", str(out), "--model", "mostpop", *FAST]) == 0
    assert json.loads((out / "metrics.json").read_text())["test"]["recall@20"] > 0
    assert train.main(["--kg", str(tiny_kg), "--out", str(out), "--model", "nope", *FAST]) == 2


def test_resume_after_kill_matches_uninterrupted_run(tiny_kg, tmp_path):
    args = ["--kg", str(tiny_kg), "--epochs", "12", "--eval_every", "1", "--patience", "100",
            "--batch_size", "8", *FAST[:-2]]
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), "--out", str(out), *args], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    saved = 0
    while time.time() < deadline and proc.poll() is None:
        if (out / "last.pt").is_file():
            try:
                saved = torch.load(out / "last.pt", weights_only=True)["history"]["epoch"]
            except (RuntimeError, EOFError, OSError):  # a rename in progress cannot happen; be safe anyway
                saved = 0
            if saved >= 2:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = torch.load(out / "last.pt", weights_only=True)["history"]["epoch"]
    assert at_kill >= 2 and not (out / "metrics.json").exists()
    done = subprocess.run([sys.executable, str(REPO / "train.py"), "--out", str(out), "--resume", *args],
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"resumed from {out / 'last.pt'} after epoch {at_kill}" in done.stderr
    resumed = json.loads((out / "metrics.json").read_text())
    assert [v["epoch"] for v in resumed["valid"]] == list(range(1, 13))  # nothing lost, nothing twice
    ref_out = tmp_path / "ref"
    assert train.main(["--out", str(ref_out), *args]) == 0
    ref = json.loads((ref_out / "metrics.json").read_text())
    assert resumed["test"] == pytest.approx(ref["test"]) and resumed["best_epoch"] == ref["best_epoch"]


def test_distributed_two_gloo_processes_agree(tiny_kg, tmp_path):
    out = tmp_path / "ddp"
    with socket.socket() as s:  # a free port: a fixed one collides with another run of the suite
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
           str(REPO / "train.py"), "--distributed", "true", "--device", "cpu", "--kg", str(tiny_kg),
           "--out", str(out), "--epochs", "2", "--eval_every", "1", *FAST]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    sums = metrics["rank_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    assert "recall@20" in metrics["test"]


def test_ema_weights_are_validated_kept_and_resumed(tiny_kg, tmp_path, capsys):
    args = ["--kg", str(tiny_kg), "--eval_every", "1", "--patience", "100", *FAST, "--batch_size", "16"]
    assert train.main([*args, "--out", str(tmp_path / "bad"), "--ema_decay", "1.0"]) == 2
    assert "ema_decay must be in [0, 1)" in capsys.readouterr().err
    assert train.main([*args, "--out", str(tmp_path / "plain"), "--epochs", "4"]) == 0
    assert train.main([*args, "--out", str(tmp_path / "ema"), "--epochs", "4", "--ema_decay", "0.5"]) == 0
    plain, ema = (torch.load(tmp_path / d / "last.pt", weights_only=True) for d in ("plain", "ema"))
    assert "ema_state" not in plain and int(ema["ema_state"]["n_averaged"]) > 1
    assert all(torch.equal(plain["model_state"][k], ema["model_state"][k]) for k in plain["model_state"])  # same run
    averaged = {k[len("module."):]: v for k, v in ema["ema_state"].items() if k.startswith("module.")}
    assert averaged.keys() == ema["model_state"].keys()
    assert any(not torch.equal(averaged[k], ema["model_state"][k]) for k in averaged)  # really an average
    # one epoch: its validation is the best, so best.pt must hold the averaged weights it scored, not the raw ones
    assert train.main([*args, "--out", str(tmp_path / "one"), "--epochs", "1", "--ema_decay", "0.5"]) == 0
    best, last = (torch.load(tmp_path / "one" / f, weights_only=True) for f in ("best.pt", "last.pt"))
    one = {k[len("module."):]: v for k, v in last["ema_state"].items() if k.startswith("module.")}
    assert all(torch.equal(best["model_state"][k], one[k]) for k in one)
    assert any(not torch.equal(best["model_state"][k], last["model_state"][k]) for k in one)
    # stop after 2 epochs, resume to 4: the average continues where it was, as in the uninterrupted run
    assert train.main([*args, "--out", str(tmp_path / "split"), "--epochs", "2", "--ema_decay", "0.5"]) == 0
    assert train.main([*args, "--out", str(tmp_path / "split"), "--epochs", "4", "--ema_decay", "0.5",
                       "--resume", "true"]) == 0
    split = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert all(torch.allclose(split["ema_state"][k].float(), ema["ema_state"][k].float()) for k in ema["ema_state"])
    assert json.loads((tmp_path / "split" / "metrics.json").read_text())["test"] == pytest.approx(
        json.loads((tmp_path / "ema" / "metrics.json").read_text())["test"])


def test_cold_split_keeps_cold_items_out_of_negatives_and_reloads(tiny_kg, tmp_path, monkeypatch, capsys):
    samplers = []
    real = train.NegativeSampler

    def spy(*args, **kwargs):
        samplers.append(real(*args, **kwargs))
        return samplers[-1]

    monkeypatch.setattr(train, "NegativeSampler", spy)
    out = tmp_path / "cold"
    args = ["--kg", str(tiny_kg), "--split", "cold_item", "--epochs", "2", "--eval_every", "1", *FAST]
    assert train.main([*args, "--out", str(out), "--item_id_dropout", "0.5"]) == 0
    cold = torch.load(out / "best.pt", weights_only=True)["split"]["cold_items"]
    n_items = KnowledgeGraph.load(tiny_kg).num_nodes("item")
    assert cold and set(samplers[0].candidates.tolist()) == set(range(n_items)) - set(cold)
    from evaluation.checkpoint_scoring import load_checkpoint

    loaded = load_checkpoint(out / "best.pt")  # rebuilt from the checkpoint: the cold items stay ID-less
    assert not bool(loaded.model.trained_items[cold].any()) and bool(loaded.model.trained_items.sum() > 0)
    emb = load_file(str(out / "embeddings.safetensors"))
    users = torch.arange(5)
    assert torch.allclose(loaded.score_fn()(users), emb["user_emb"][users] @ emb["item_emb"].T, atol=1e-5)
    assert train.main([*args, "--out", str(tmp_path / "bad"), "--item_id_dropout", "0.5", "--use_id", "false"]) == 2
    assert "item_id_dropout drops item ID embeddings: it needs use_id true" in capsys.readouterr().err
