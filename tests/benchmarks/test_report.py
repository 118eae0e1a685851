"""benchmarks/report.py on small synthetic result files: REPORT.md and the PNGs carry the given numbers,
and a missing input leaves its section saying what is missing (never an invented number)."""

import json
import re

import pytest

from benchmarks import charts, report, training_curves

QUALITY = {
    "protocol": "synthetic protocol",
    "reference_recbole": {"EASE": {"test/recall@20": 0.4, "test/ndcg@20": 0.347}},
    "models": {
        "EASE": {"per_seed": {"0": {"hparams": {"reg_weight": 300.0},
                                    "test": {"recall@20": 0.3915, "ndcg@20": 0.3418}},
                              "1": {"hparams": {"reg_weight": 300.0},
                                    "test": {"recall@20": 0.3815, "ndcg@20": 0.3318}}}},
        "MostPop": {"mean": {"test/recall@20": 0.1234, "test/ndcg@20": 0.1111},
                    "std": {"test/recall@20": 0.0, "test/ndcg@20": 0.0}, "per_seed": {"0": {"hparams": {}}}},
        "Full model (+ contrastive)": {"mean": {"test/ndcg@20": 0.3512}, "std": {"test/ndcg@20": 0.002},
                                       "selected": {"lr": 0.002}, "per_seed": {"0": {"run": "RUN"}}},
        "Full model: ID only": {"mean": {"test/ndcg@20": 0.3301}, "std": {"test/ndcg@20": 0.004}},
    },
    "coldstart": {"0": {"cold_test_items": 84, "users": 301, "random": {"cold/recall@20": 0.2222}}},
}
ROBUSTNESS = {
    "schema_version": 1, "meta": {"checkpoint": "runs/x/best.pt", "split": "test", "seed": 0, "levels": [0, 0.1]},
    "clean": {"recall@20": 0.4, "ndcg@20": 0.3333},
    "rows": [{"perturbation": "none", "level": 0.0, "metrics": {"recall@20": 0.4, "ndcg@20": 0.3333},
              "kg_triples": 100, "train_interactions": 50},
             {"perturbation": "drop_kg_edges", "level": 0.1, "metrics": {"recall@20": 0.39, "ndcg@20": 0.3222},
              "kg_triples": 90, "train_interactions": 50},
             {"perturbation": "no_image", "level": 1.0, "metrics": {"recall@20": 0.35, "ndcg@20": 0.2999},
              "kg_triples": 100, "train_interactions": 50}],
    "skipped": {"no_text": "the model inputs hold no text feature"},
}


def _write(folder, name, obj):
    (folder / name).write_text(json.dumps(obj))


def _run_folder(root):
    """A train.py run folder: metrics.json with validations at epochs 5, 10, 15 and TensorBoard loss terms."""
    from torch.utils.tensorboard import SummaryWriter

    run = root / "runs" / "full-s0"
    run.mkdir(parents=True)
    _write(run, "metrics.json", {"model": "mmkg", "valid": [{"epoch": 5, "ndcg@20": 0.1}, {"epoch": 10, "ndcg@20":
                                 0.2468}, {"epoch": 15, "ndcg@20": 0.2401}], "test": {"ndcg@20": 0.3}})
    with SummaryWriter(str(run / "tb")) as w:
        for epoch, (rank, l2) in enumerate([(0.69, 0.0031), (0.45, 0.0067), (0.3, 0.0012)], 1):
            w.add_scalar("train/rank", rank, epoch)
            w.add_scalar("train/l2", l2, epoch)
            w.add_scalar("train/epoch_seconds", 12.0, epoch)
    return run


def test_report_with_every_input(tmp_path):
    quality = json.loads(json.dumps(QUALITY))
    quality["models"]["Full model (+ contrastive)"]["per_seed"]["0"]["run"] = str(_run_folder(tmp_path))
    _write(tmp_path, "quality.json", quality)
    _write(tmp_path, "robustness.json", ROBUSTNESS)
    (tmp_path / "eval_speed.md").write_text("# Evaluation speed\n\n| step | seconds |\n|---|---|\n| rank | 0.0838 |\n")
    assert report.main(["--results", str(tmp_path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    for png in ("quality_models.png", "ablations.png", "robustness.png", "training_curves.png"):
        assert (tmp_path / png).stat().st_size > 5000 and f"]({png})" in text
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # EASE has no stored mean: mean / population std of its two seeds
    assert "| EASE | 2 | 0.3865 ± 0.0050 | 0.3368 ± 0.0050 | 0.400 | 0.347 |" in text
    assert "| MostPop | 1 | 0.1234 ± 0.0000 | 0.1111 ± 0.0000 | — | — |" in text
    ablations = text.split("## Ablations")[1].split("##")[0]
    assert "| Full model (+ contrastive) | 1 | 0.3512 ± 0.0020 |" in ablations
    assert "| Full model: ID only | — | 0.3301 ± 0.0040 |" in ablations
    assert "Full model: ID only" not in text.split("## Ablations")[0]  # not in the main chart / table
    assert "- Full model (+ contrastive): {'lr': 0.002}" in text
    assert "cold_test_items = 84, users = 301" in text and "| random | 0.2222 |" in text
    assert "| drop_kg_edges | 0.1 | 90 | 50 | 0.3900 (-2.5%) | 0.3222 (-3.3%) |" in text
    assert "no_text: skipped" in text
    assert "| Full model (+ contrastive) (seed 0) | 3 | 0.3012 | 0.2468 | 10 |" in text  # 0.3 + 0.0012 from tb
    assert "| rank | 0.0838 |" in text and "## Evaluation speed" in text
    assert "Missing: explanation results" in text and "Missing" not in text.split("## Explanations")[0]


def test_chart_labels_are_the_given_numbers(tmp_path):
    labels = charts.bar_chart({"A": ({"m@1": 0.25, "m@2": 0.5}, {"m@1": 0.01}), "B": ({"m@1": 0.125}, {})},
                              ["m@1", "m@2"], tmp_path / "bars.png", "t", reference={"A": {"m@1": 0.3}})
    assert labels[:2] == ["0.250", "0.500"] and "0.125" in labels and "0.300" in labels
    labels = charts.robustness_chart(ROBUSTNESS, "ndcg@20", tmp_path / "rob.png", "t")
    assert {"0.322", "0.333", "0.300"} <= set(labels)
    curve = training_curves.as_curve({"history": [{"epoch": 1, "loss": 0.6931, "valid": {"ndcg@20": 0.1}},
                                         {"epoch": 2, "loss": 0.4567}, {"epoch": 3, "loss": 0.3012,
                                                                        "valid": {"ndcg@20": 0.2468}}]})
    assert curve == {"epoch": [1, 2, 3], "loss": [0.6931, 0.4567, 0.3012], "valid_epoch": [1, 3],
                     "valid_ndcg@20": [0.1, 0.2468]}
    labels = charts.training_curves_chart({"run": curve}, tmp_path / "curves.png", "t")
    assert labels == ["0.3012", "0.2468"]
    assert all((tmp_path / f).is_file() for f in ("bars.png", "rob.png", "curves.png"))


def test_missing_inputs_name_the_file_and_command(tmp_path):
    assert report.main(["--results", str(tmp_path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "`benchmarks/results/quality.json` was not found" in text and "python -m benchmarks.quality" in text
    assert "robustness.json` was not found" in text and "python evaluate.py --checkpoint" in text
    assert "python benchmarks/eval_speed.py" in text and "Missing: no train.py run with per-epoch history" in text
    assert not list(tmp_path.glob("*.png"))
    assert not re.search(r"\d\.\d{3}", text)  # no number at all
    assert "Missing: ablation results" in text


def test_malformed_json_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "quality.json").write_text("{not json")
    assert report.main(["--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "quality.json" in err and err.count("\n") == 1
    assert not (tmp_path / "REPORT.md").exists()


@pytest.mark.parametrize("bad", [{"history": []}, {"nothing": 1}])
def test_curve_file_without_history_is_rejected(tmp_path, bad):
    _write(tmp_path, "run.json", bad)
    assert report.main(["--results", str(tmp_path), "--curves", str(tmp_path / "run.json")]) == 2


def test_explanations_table_has_one_row_per_file(tmp_path) -> None:
    assert "Missing" in "\n".join(report.explain_section(tmp_path))
    shares = {"kg_relation_top_share": 0.186, "kg_relation_any_share": 0.938}
    for name, faith, extra in (("explain.json", 2.1043, shares), ("explain_all_components.json", 6.6312, {})):
        (tmp_path / name).write_text(json.dumps({"checkpoint": f"runs/{name}/best.pt", "recommendations": 500,
                                                 "coverage": 0.996, "faithfulness_ratio": faith,
                                                 "latency_ms_p50": 31.8, "latency_ms_p95": 65.6, **extra}))
    rows = [line for line in report.explain_section(tmp_path) if line.startswith("| explain")]
    assert rows == [
        "| explain.json | `runs/explain.json/best.pt` | 500 | 99.6% | 2.10 | 18.6% | 93.8% | 32 | 66 |",
        "| explain_all_components.json | `runs/explain_all_components.json/best.pt` | 500 | 99.6% | 6.63 | - | - "
        "| 32 | 66 |"]


def test_curve_takes_the_per_epoch_loss_train_py_records() -> None:
    history = {"valid": [{"epoch": 2, "ndcg@20": 0.25}, {"epoch": 4, "ndcg@20": 0.3}],
               "train": [{"epoch": e, "loss": 5.0 - e} for e in (1, 2, 3, 4)]}
    assert training_curves.as_curve(history) == {"epoch": [1, 2, 3, 4], "loss": [4.0, 3.0, 2.0, 1.0],
                                                 "valid_epoch": [2, 4], "valid_ndcg@20": [0.25, 0.3]}


def test_curves_find_a_run_recorded_under_another_checkout(tmp_path, monkeypatch) -> None:
    runs = tmp_path / "runs"
    (runs / "mmkg-abc").mkdir(parents=True)
    history = {"train": [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.5}],
               "valid": [{"epoch": 1, "ndcg@20": 0.1}, {"epoch": 2, "ndcg@20": 0.2}]}
    (runs / "mmkg-abc" / "metrics.json").write_text(json.dumps(history))
    monkeypatch.setattr(training_curves, "RUNS", runs)
    quality = {"models": {"A": {"per_seed": {"0": {"run": "/elsewhere/benchmarks/work/runs/mmkg-abc"}}},
                          "B": {"per_seed": {"0": {"run": "/elsewhere/benchmarks/work/runs/mmkg-gone"}}}}}
    curves = training_curves.collect_curves(quality, [])
    assert list(curves) == ["A (seed 0)"] and curves["A (seed 0)"]["loss"] == [2.0, 1.5]
    assert curves["A (seed 0)"]["valid_ndcg@20"] == [0.1, 0.2]
