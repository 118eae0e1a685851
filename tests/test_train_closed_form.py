"""train.py --ease_blend: the closed-form item-item branch chosen on validation is stored in best.pt, and the
reloaded checkpoint scores exactly as train.py tested it."""

import json

import pytest
import torch
from test_train import FAST, tiny_kg  # noqa: F401  (the module-scoped KG fixture)

import train
from evaluation.protocol import TestEvaluator


def test_train_py_keeps_the_branch_in_best_pt(tiny_kg, tmp_path):  # noqa: F811
    from evaluation.checkpoint_scoring import load_checkpoint

    out = tmp_path / "run"
    assert train.main([*FAST, "--kg", str(tiny_kg), "--out", str(out), "--epochs", "2", "--eval_every", "1",
                       "--ease_blend", "true", "--ease_blend_regs", "1,10.5", "--ease_blend_weights", "0,1,3"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    chosen = metrics["closed_form"]
    assert len(chosen["grid"]) == 1 + 2 * 2 and chosen["reg"] in (1.0, 10.5) and chosen["weight"] > 0  # it helps here
    ck = torch.load(out / "best.pt", weights_only=True)
    assert ck["closed_form"]["weight"] == chosen["weight"]
    assert float(ck["model_state"]["closed_form.weight"]) == pytest.approx(chosen["factor"])
    assert ck["metrics"]["valid"]["ndcg@20"] == pytest.approx(chosen["valid"]["ndcg@20"])
    loaded = load_checkpoint(out / "best.pt")
    train_sets, valid_sets, test_sets = loaded.sets
    tester = TestEvaluator(train_sets, valid_sets, test_sets, (5, 20), n_resamples=0)
    again = tester.evaluate(loaded.score_fn(), "reloaded").metrics
    assert {k: v["mean"] for k, v in again.items() if k in metrics["test"]} == pytest.approx(
        {k: metrics["test"][k] for k in again if k in metrics["test"]})
