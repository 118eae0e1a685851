"""Evaluation results as a stdout table, Markdown and JSON, plus the meter filling the ``timing`` section.

JSON schema (``schema_version`` 1; every section is keyed by split name, e.g. ``"valid"``, ``"test"``)::

    {
      "schema_version": 1,
      "meta": {...},                                   # free: model, checkpoint, dataset, seed, ...
      "metrics": {"test": {"recall@20": {"mean": 0.21, "ci95": [0.20, 0.22]}, ...}},  # ci95 null if no bootstrap
      "users_evaluated": {"test": 943},
      "users_skipped": {"test": 0},                    # users with no held-out item
      "groups": {"test": [{"label": "G1: 5-20 train interactions", "min_train_interactions": 5,
                           "max_train_interactions": 20, "users": 236, "metrics": {"recall@20": 0.3, ...}}]},
      "beyond": {"test": {"coverage@20": 0.31, "avg_popularity@20": 210.4, "novelty@20": 8.9, "gini@20": 0.8}},
      "timing": {"test": {"seconds": 0.42, "peak_mem_mb": 35.1}}
    }

Non-finite numbers are written as ``null`` (strict JSON). ``peak_mem_mb`` is the peak growth of the
process resident memory during the evaluation on CPU, the peak CUDA allocation on a GPU.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from evaluation import EvaluationError
from kg.atomic_files import write_text_atomic as kg_write_text_atomic

SCHEMA_VERSION = 1
SECTIONS: tuple[str, ...] = ("metrics", "users_evaluated", "users_skipped", "groups", "beyond", "timing")
_MIB = 1024.0 * 1024.0


class ResourceMeter:
    """``with ResourceMeter(device) as m: ...`` then ``m.seconds`` and ``m.peak_mem_mb``."""

    def __init__(self, device: torch.device | str | None = None, interval_s: float = 0.002) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.interval_s = interval_s
        self.seconds = 0.0
        self.peak_mem_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak_rss = self._base = 0

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._peak_rss = max(self._peak_rss, self._rss())

    def __enter__(self) -> ResourceMeter:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._base = self._peak_rss = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.seconds = time.perf_counter() - self._t0
            self.peak_mem_mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / _MIB
            return
        self.seconds = time.perf_counter() - self._t0
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._peak_rss = max(self._peak_rss, self._rss())
        self.peak_mem_mb = max(0, self._peak_rss - self._base) / _MIB


def build_report(results: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON-ready report of split results (:class:`evaluation.protocol.SplitResult`, keyed by split)."""
    report: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "meta": dict(meta or {})}
    for section in SECTIONS:
        report[section] = {}
    for split, r in results.items():
        report["metrics"][split] = {name: {"mean": v["mean"], "ci95": list(v["ci95"]) if v["ci95"] else None}
                                    for name, v in r.metrics.items()}
        report["users_evaluated"][split] = int(r.users_evaluated)
        report["users_skipped"][split] = int(r.users_skipped)
        report["groups"][split] = [{**dict(g), "metrics": dict(g["metrics"])} for g in r.groups]
        report["beyond"][split] = dict(r.beyond)
        report["timing"][split] = {"seconds": float(r.seconds), "peak_mem_mb": float(r.peak_mem_mb)}
    return _finite(report)


def validate_report(report: Mapping[str, Any]) -> None:
    """Raise :class:`EvaluationError` when ``report`` does not follow the schema above."""
    if report.get("schema_version") != SCHEMA_VERSION:
        raise EvaluationError(f"report schema_version {report.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    for section in SECTIONS:
        if not isinstance(report.get(section), Mapping):
            raise EvaluationError(f"report section {section!r} is missing or not an object")
    for split, metrics in report["metrics"].items():
        for name, value in metrics.items():
            if "@" not in name or set(value) != {"mean", "ci95"}:
                raise EvaluationError(f"report metrics[{split!r}][{name!r}] must be 'name@K': {{mean, ci95}}")
        for section in ("users_evaluated", "users_skipped", "timing"):
            if split not in report[section]:
                raise EvaluationError(f"report section {section!r} lacks split {split!r}")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _split_name(name: str) -> tuple[str, int]:
    base, _, k = name.rpartition("@")
    return base, int(k)


def _grid(values: Mapping[str, Any]) -> tuple[list[str], list[int]]:
    """Row names and K columns, in first-seen order, of ``{"name@K": ...}``."""
    names: list[str] = []
    ks: list[int] = []
    for key in values:
        base, k = _split_name(key)
        names += [base] if base not in names else []
        ks += [k] if k not in ks else []
    return names, sorted(ks)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _cell(v: Mapping[str, Any] | None) -> str:
    if v is None:
        return ""
    ci = v.get("ci95")
    return _fmt(v["mean"]) + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "")


def _header(report: Mapping[str, Any], split: str) -> str:
    t = report["timing"].get(split, {})
    return (f"{split}: {report['users_evaluated'][split]} users evaluated, {report['users_skipped'][split]} skipped"
            f" (no held-out item); {t.get('seconds', 0.0):.2f} s, peak +{t.get('peak_mem_mb', 0.0):.1f} MB")


def render_table(report: Mapping[str, Any]) -> str:
    """A fixed-width plain-text table per split (metrics with CI, then beyond-accuracy measures)."""
    lines: list[str] = []
    for split, metrics in report["metrics"].items():
        lines.append(_header(report, split))
        names, ks = _grid(metrics)
        rows = [["metric"] + [f"@{k}" for k in ks]]
        rows += [[n] + [_cell(metrics.get(f"{n}@{k}")) for k in ks] for n in names]
        beyond = report["beyond"].get(split, {})
        b_names, b_ks = _grid(beyond)
        rows += [[n] + [_fmt(beyond.get(f"{n}@{k}")) if k in b_ks else "" for k in ks] for n in b_names]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.append("")
    return "\n".join(lines)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def render_markdown(report: Mapping[str, Any], group_metrics: Sequence[str] | None = None) -> str:
    """Markdown: per split a metric x K table (mean [95% CI]), beyond-accuracy and activity-group tables.
    ``group_metrics`` picks the group-table columns (default recall, ndcg and hit at K=20 or the largest K)."""
    parts: list[str] = []
    for split, metrics in report["metrics"].items():
        names, ks = _grid(metrics)
        parts += [f"## {split}", "", _header(report, split), ""]
        parts += _md_table(["metric"] + [f"@{k}" for k in ks],
                           [[n] + [_cell(metrics.get(f"{n}@{k}")) for k in ks] for n in names])
        beyond = report["beyond"].get(split, {})
        if beyond:
            b_names, b_ks = _grid(beyond)
            parts += ["", *_md_table(["measure"] + [f"@{k}" for k in b_ks],
                                     [[n] + [_fmt(beyond.get(f"{n}@{k}")) for k in b_ks] for n in b_names])]
        groups = report["groups"].get(split, [])
        if groups:
            main_k = 20 if 20 in ks else max(ks)
            cols = list(group_metrics or [f"{n}@{main_k}" for n in ("recall", "ndcg", "hit")])
            parts += ["", *_md_table(["group", "users"] + cols,
                                     [[g["label"], str(g["users"])] + [_fmt(g["metrics"].get(c)) for c in cols]
                                      for g in groups])]
        parts.append("")
    return "\n".join(parts)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder (never a partial file)."""
    kg_write_text_atomic(path, text)


def write_report(report: Mapping[str, Any], json_path: str | Path, markdown_path: str | Path | None = None) -> None:
    """Validate ``report`` and write it as strict JSON (and Markdown when ``markdown_path`` is given)."""
    validate_report(report)
    write_text_atomic(json_path, json.dumps(_finite(report), indent=2, allow_nan=False) + "\n")
    if markdown_path is not None:
        write_text_atomic(markdown_path, render_markdown(report))
