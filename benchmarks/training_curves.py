"""Training curves for the report: per-epoch loss and validation NDCG@20 of train.py runs (``metrics.json``,
checkpoint ``history``, or the run's TensorBoard logs), and the JSON reader the report shares."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kg.errors import MMKGError

RUNS = Path(__file__).resolve().parent / "work" / "runs"  # quality.py's run folders in this checkout


def load_json(path: Path) -> Any | None:
    """The parsed file, ``None`` when it does not exist; a malformed file is an error naming it."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MMKGError(f"{path}: unreadable JSON ({e})") from e


def as_curve(obj: Any, metric: str = "ndcg@20") -> dict[str, list[float]] | None:
    """``{"epoch", "loss", "valid_epoch", "valid_<metric>"}`` lists from train.py's ``metrics.json`` / checkpoint
    ``history`` (``valid``: per-validation records) or a list of per-epoch ``{"epoch", "loss", "valid": {...}}``."""
    if isinstance(obj, Mapping) and "history" in obj:
        obj = obj["history"]
    train = obj.get("train") if isinstance(obj, Mapping) else None  # train.py's per-epoch {"epoch", "loss"}
    if isinstance(obj, Mapping) and isinstance(obj.get("valid"), list):
        obj = obj["valid"] + (train if isinstance(train, list) else [])
    if not (isinstance(obj, list) and obj and all(isinstance(r, Mapping) for r in obj)):
        return None
    c: dict[str, list[float]] = {"epoch": [], "loss": [], "valid_epoch": [], f"valid_{metric}": []}
    for n, r in enumerate(obj, 1):
        if r.get("loss") is not None:
            c["epoch"].append(r.get("epoch", n))
            c["loss"].append(float(r["loss"]))
        v = r["valid"].get(metric) if isinstance(r.get("valid"), Mapping) else r.get(metric)
        if v is not None:
            c["valid_epoch"].append(r.get("epoch", n))
            c[f"valid_{metric}"].append(float(v))
    return c if c["loss"] or c[f"valid_{metric}"] else None


def tensorboard_losses(tb_dir: Path) -> tuple[list[int], list[float]]:
    """Per-epoch total training loss (the sum of train.py's ``train/<term>`` scalars) from its TensorBoard logs."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tb_dir))
    ea.Reload()
    totals: dict[int, float] = {}
    for tag in ea.Tags().get("scalars", []):
        if tag.startswith("train/") and tag != "train/epoch_seconds":
            for e in ea.Scalars(tag):
                totals[e.step] = totals.get(e.step, 0.0) + e.value
    steps = sorted(totals)
    return steps, [totals[s] for s in steps]


def run_curve(path: Path) -> dict[str, list[float]]:
    """The curve of a train.py run (its folder or ``metrics.json``); losses come from ``tb/`` when logged there."""
    path = path / "metrics.json" if path.is_dir() else path
    obj = load_json(path)
    if obj is None:
        raise MMKGError(f"{path}: training-curve file not found")
    curve = as_curve(obj)
    if curve is None:
        raise MMKGError(f"{path}: no per-epoch loss / validation history found")
    if not curve.get("loss") and (path.parent / "tb").is_dir():
        curve["epoch"], curve["loss"] = tensorboard_losses(path.parent / "tb")
    return curve


def this_checkout(run: Path) -> Path:
    """A recorded run folder, or the one of that name under this checkout's ``benchmarks/work/runs`` when the
    record was written from another checkout's path."""
    return run if run.exists() or not (RUNS / run.name).exists() else RUNS / run.name


def collect_curves(quality: dict | None, extra: list[Path]) -> dict[str, dict[str, list[float]]]:
    """One curve per quality.json model (its first seed whose run has >= 2 points), then the ``--curves`` runs."""
    curves: dict[str, dict[str, list[float]]] = {}
    for name, e in ((quality or {}).get("models") or {}).items():
        for seed, r in e.get("per_seed", {}).items():
            run = this_checkout(Path(r["run"])) / "metrics.json" if r.get("run") else None
            norm = as_curve(r.get("history")) or (run_curve(run) if run is not None and run.is_file() else None)
            if norm is not None and max(len(norm.get("loss", [])), len(norm.get("valid_ndcg@20", []))) > 1:
                curves[f"{name} (seed {seed})"] = norm
                break
    for path in extra:
        run = path if path.is_dir() else path.parent
        obj = load_json(path / "metrics.json" if path.is_dir() else path)
        label = obj.get("name") or obj.get("model") if isinstance(obj, Mapping) else None
        curves[f"{label} ({run.name})" if label else run.name] = run_curve(path)
    return curves
