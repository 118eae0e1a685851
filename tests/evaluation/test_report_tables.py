"""Report rendering: the JSON schema, strict JSON, atomic writes, the text and Markdown tables."""

import json
import time
from types import MappingProxyType, SimpleNamespace

import pytest

from evaluation import EvaluationError
from evaluation.report_tables import (
    SCHEMA_VERSION,
    ResourceMeter,
    build_report,
    render_markdown,
    render_table,
    validate_report,
    write_report,
)


def _result(**over):
    base = dict(
        metrics=MappingProxyType({"recall@10": {"mean": 0.25, "ci95": (0.2, 0.3)},
                                  "ndcg@10": {"mean": 0.125, "ci95": (0.1, 0.15)},
                                  "recall@20": {"mean": 0.4, "ci95": (0.35, 0.45)},
                                  "ndcg@20": {"mean": 0.2, "ci95": (0.18, 0.22)}}),
        users_evaluated=940, users_skipped=3,
        groups=(MappingProxyType({"label": "G1: 20-35 train interactions", "min_train_interactions": 20,
                                  "max_train_interactions": 35, "users": 470,
                                  "metrics": MappingProxyType({"recall@20": 0.3, "ndcg@20": float("nan")})}),),
        beyond=MappingProxyType({"coverage@10": 0.5, "coverage@20": 0.625}),
        seconds=0.5, peak_mem_mb=12.0)
    base.update(over)
    return SimpleNamespace(**base)


def test_report_follows_the_schema():
    valid = _result(metrics={"recall@20": {"mean": 0.41, "ci95": None}}, groups=(), beyond={})
    report = build_report({"valid": valid, "test": _result()}, meta={"model": "mmkg", "seed": 0})
    validate_report(report)
    assert report["schema_version"] == SCHEMA_VERSION and report["meta"] == {"model": "mmkg", "seed": 0}
    assert report["metrics"]["test"]["recall@20"] == {"mean": 0.4, "ci95": [0.35, 0.45]}
    assert report["metrics"]["valid"]["recall@20"] == {"mean": 0.41, "ci95": None}
    assert report["users_evaluated"] == {"valid": 940, "test": 940}
    assert report["users_skipped"]["test"] == 3
    assert report["timing"]["test"] == {"seconds": 0.5, "peak_mem_mb": 12.0}
    assert report["beyond"]["test"]["coverage@20"] == 0.625
    group = report["groups"]["test"][0]
    assert group["users"] == 470 and group["metrics"] == {"recall@20": 0.3, "ndcg@20": None}  # NaN -> null


def test_write_report_is_strict_json_and_atomic(tmp_path):
    report = build_report({"test": _result()})
    write_report(report, tmp_path / "out" / "eval.json", tmp_path / "out" / "eval.md")
    assert json.loads((tmp_path / "out" / "eval.json").read_text()) == report
    assert (tmp_path / "out" / "eval.md").read_text().startswith("## test")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["eval.json", "eval.md"]
    bad = dict(report, metrics={"test": {"recall": {"mean": 0.1, "ci95": None}}})
    with pytest.raises(EvaluationError, match="name@K"):
        write_report(bad, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()
    with pytest.raises(EvaluationError, match="schema_version"):
        validate_report({"metrics": {}})


def test_text_table():
    text = render_table(build_report({"test": _result()}))
    lines = text.splitlines()
    assert lines[0] == "test: 940 users evaluated, 3 skipped (no held-out item); 0.50 s, peak +12.0 MB"
    assert lines[1].split() == ["metric", "@10", "@20"]
    assert lines[2].split() == ["recall", "0.2500", "[0.2000,", "0.3000]", "0.4000", "[0.3500,", "0.4500]"]
    assert lines[4].split() == ["coverage", "0.5000", "0.6250"]


def test_markdown_tables():
    md = render_markdown(build_report({"test": _result()}))
    assert "| metric | @10 | @20 |" in md
    assert "| ndcg | 0.1250 [0.1000, 0.1500] | 0.2000 [0.1800, 0.2200] |" in md
    assert "| measure | @10 | @20 |" in md and "| coverage | 0.5000 | 0.6250 |" in md
    assert "| group | users | recall@20 | ndcg@20 | hit@20 |" in md
    assert "| G1: 20-35 train interactions | 470 | 0.3000 | n/a | n/a |" in md


def test_resource_meter_sees_a_large_allocation():
    with ResourceMeter() as meter:
        block = bytearray(64 * 1024 * 1024)
        block[::4096] = b"\x01" * len(block[::4096])  # touch every page
        time.sleep(0.1)  # let the sampler see it
        del block
    assert meter.seconds > 0 and meter.peak_mem_mb > 32
