"""The benchmark report: every ``benchmarks/results/*.json`` gathered into ``REPORT.md`` with PNG charts.

``python benchmarks/report.py [--results benchmarks/results] [--curves RUN.json ...]`` reads

* ``quality.json`` (``python -m benchmarks.quality``): per model mean / std / per-seed test metrics, the RecBole
  reference numbers, ``ablations`` (same shape as ``models``) and training curves when present;
* ``robustness.json`` (``python evaluate.py --checkpoint CKPT --robustness --out-dir benchmarks/results``);
* ``eval_speed.json`` or ``eval_speed.md`` (``python benchmarks/eval_speed.py``); ``explain.json``;
* training curves: ``curves`` in quality.json, ``history`` in its per-seed entries, and ``--curves`` files
  (a train.py run folder: validation NDCG@20 from its ``metrics.json``, the per-epoch loss from its ``tb/``
  TensorBoard scalars; or a JSON ``{"history": [{"epoch", "loss", "valid": {"ndcg@20": ...}}]}``),

and writes ``REPORT.md`` plus ``quality_models.png``, ``ablations.png``, ``robustness.png`` and
``training_curves.png`` beside it. A missing input leaves its section saying what is missing and which
command makes it; no number is ever filled in.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import charts  # noqa: E402
from evaluation.report_tables import write_text_atomic  # noqa: E402
from evaluation.robustness import render_robustness  # noqa: E402
from kg.errors import MMKGError  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CMD = {
    "quality": "python -m benchmarks.quality --models mostpop,ease,bpr_mf,lightgcn --seeds 0,1,2",
    "robustness": "python evaluate.py --checkpoint <run>/best.pt --robustness --out-dir benchmarks/results",
    "eval_speed": "python benchmarks/eval_speed.py",
    "explain": "python -m benchmarks.explain",
}


def load_json(path: Path) -> Any | None:
    """The parsed file, ``None`` when it does not exist; a malformed file is an error naming it."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MMKGError(f"{path}: unreadable JSON ({e})") from e


def _missing(what: str, file: str, cmd: str) -> list[str]:
    return [f"_Missing: {what} — `benchmarks/results/{file}` was not found. Make it with `{cmd}`._", ""]


def _mean_std(entry: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, float], int | None]:
    """``(means, stds, n_seeds)`` of a model entry (``n_seeds`` None when unknown); computed from
    ``per_seed`` when no mean is stored."""
    seeds = entry.get("per_seed", {})
    if "mean" in entry:
        return dict(entry["mean"]), dict(entry.get("std", {})), len(seeds) or entry.get("n_seeds")
    keys = {f"{p}/{m}" for r in seeds.values() for p in ("valid", "test") for m in r.get(p, {})}
    vals = {k: np.array([r[k.split("/")[0]][k.split("/")[1]] for r in seeds.values()
                         if k.split("/")[1] in r.get(k.split("/")[0], {})]) for k in keys}
    return ({k: float(v.mean()) for k, v in vals.items()}, {k: float(v.std()) for k, v in vals.items()}, len(seeds))


def _test_metrics(rows: Mapping[str, tuple[dict, dict, int]]) -> list[str]:
    found = {k for means, _, _ in rows.values() for k in means if k.startswith("test/")}
    order = {"recall": 0, "ndcg": 1}
    return sorted(found, key=lambda k: (int(k.rpartition("@")[2]), order.get(k[5:].partition("@")[0], 9), k))


def model_table(rows: Mapping[str, tuple[dict, dict, int]], metrics: list[str],
                reference: Mapping[str, Mapping[str, float]] | None = None) -> list[str]:
    ref_cols = [m for m in metrics if any(m in r for r in (reference or {}).values())]
    head = ["model", "seeds"] + [m.replace("test/", "test ") for m in metrics] + [f"RecBole {m[5:]}" for m in ref_cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, (means, stds, n) in rows.items():
        cells = [f"{means[m]:.4f} ± {stds.get(m, 0.0):.4f}" if m in means else "—" for m in metrics]
        refs = [f"{reference[row][m]:.3f}" if reference and m in reference.get(row, {}) else "—" for m in ref_cols]
        lines.append("| " + " | ".join([row, "—" if n is None else str(n)] + cells + refs) + " |")
    return lines + [""]


def quality_section(quality: dict | None, out: Path) -> list[str]:
    parts = ["## Recommendation quality by model", ""]
    if quality is None or not quality.get("models"):
        return parts + _missing("per-model quality results", "quality.json", CMD["quality"])
    parts += [quality.get("protocol", ""), ""] if quality.get("protocol") else []
    rows = {name: _mean_std(e) for name, e in quality["models"].items()}
    metrics = _test_metrics(rows)
    ref = quality.get("reference_recbole", {})
    parts += model_table(rows, metrics, ref)
    charts.bar_chart({k: (m, s) for k, (m, s, _) in rows.items()}, metrics, out / "quality_models.png",
                     "Test metrics by model, ml-100k\n(mean ± std over seeds; dashed line = RecBole reference)",
                     reference=ref, n_seeds={k: n for k, (_, _, n) in rows.items() if n is not None})
    parts += ["![metrics by model](quality_models.png)", ""]
    hp = [f"- {name}: " + "; ".join(f"seed {s}: {r.get('hparams')}" for s, r in e.get("per_seed", {}).items())
          for name, e in quality["models"].items() if e.get("per_seed")]
    return parts + (["Selected hyper-parameters (validation NDCG@20):", "", *hp, ""] if hp else [])


def ablation_section(quality: dict | None, out: Path) -> list[str]:
    parts = ["## Ablations", ""]
    if quality is None:
        return parts + _missing("ablation results", "quality.json", CMD["quality"])
    if not quality.get("ablations"):
        return parts + ["_Missing: `benchmarks/results/quality.json` holds no `ablations` section yet "
                        "(the full model's ablation runs write it)._", ""]
    rows = {name: _mean_std(e) for name, e in quality["ablations"].items()}
    metrics = _test_metrics(rows)
    parts += model_table(rows, metrics)
    charts.bar_chart({k: (m, s) for k, (m, s, _) in rows.items()}, metrics, out / "ablations.png",
                     "Ablations: the full model with one part removed\n(test metrics, mean ± std over seeds)",
                     n_seeds={k: n for k, (_, _, n) in rows.items() if n is not None})
    return parts + ["![ablations](ablations.png)", ""]


def robustness_section(table: dict | None, out: Path) -> list[str]:
    parts = ["## Robustness to perturbed inputs", ""]
    if table is None:
        return parts + _missing("the robustness table", "robustness.json", CMD["robustness"])
    meta = table.get("meta", {})
    parts += [f"Checkpoint `{meta.get('checkpoint', '?')}`, split `{meta.get('split', '?')}`, seed "
              f"{meta.get('seed', '?')}: the trained weights scored on perturbed inputs (no retraining).", ""]
    parts += [render_robustness(table, markdown=True), ""]
    names = list(table.get("clean", {}))
    metric = next((m for m in ("ndcg@20", "recall@20") if m in names), names[0] if names else None)
    if metric is not None:
        charts.robustness_chart(table, metric, out / "robustness.png", f"Robustness: test {metric} vs perturbation")
        parts += ["![robustness](robustness.png)", ""]
    return parts


def as_curve(obj: Any, metric: str = "ndcg@20") -> dict[str, list[float]] | None:
    """Normalise a training log to ``{"epoch", "loss", "valid_epoch", "valid_<metric>"}`` lists, or ``None``.
    Accepts ``{"history": [...]}``, a list of per-epoch records (``loss`` and ``valid: {metric}`` or a flat
    ``metric`` / ``valid_<metric>``), train.py's ``metrics.json`` (``valid``: per-validation records) and
    ``{"epoch": [...], "loss": [...], "valid_<metric>": [...]}``."""
    if isinstance(obj, Mapping) and "history" in obj:
        obj = obj["history"]
    if isinstance(obj, Mapping) and isinstance(obj.get("valid"), list):
        obj = [{"loss": None, **r} for r in obj["valid"]]
    if isinstance(obj, list) and obj and all(isinstance(r, Mapping) for r in obj):
        c: dict[str, list[float]] = {"epoch": [], "loss": [], "valid_epoch": [], f"valid_{metric}": []}
        for n, r in enumerate(obj, 1):
            if r.get("loss") is not None:
                c["epoch"].append(r.get("epoch", n))
                c["loss"].append(float(r["loss"]))
            v = r["valid"].get(metric) if isinstance(r.get("valid"), Mapping) else \
                r.get(f"valid_{metric}", r.get(metric))
            if v is not None:
                c["valid_epoch"].append(r.get("epoch", n))
                c[f"valid_{metric}"].append(float(v))
        return c if c["loss"] or c[f"valid_{metric}"] else None
    if isinstance(obj, Mapping) and ("loss" in obj or f"valid_{metric}" in obj):
        return {k: list(v) for k, v in obj.items() if isinstance(v, list)}
    return None


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


def collect_curves(quality: dict | None, extra: list[Path]) -> dict[str, dict[str, list[float]]]:
    curves: dict[str, dict[str, list[float]]] = {}
    for name, c in ((quality or {}).get("curves") or {}).items():
        if (norm := as_curve(c)) is not None:
            curves[name] = norm
    for name, e in ((quality or {}).get("models") or {}).items():
        for seed, r in e.get("per_seed", {}).items():
            if (norm := as_curve(r.get("history"))) is not None:
                curves[f"{name} seed {seed}"] = norm
    for path in extra:
        run = path if path.is_dir() else path.parent
        obj = load_json(path / "metrics.json" if path.is_dir() else path)
        label = obj.get("name") or obj.get("model") if isinstance(obj, Mapping) else None
        curves[f"{label} ({run.name})" if label else run.name] = run_curve(path)
    return curves


def curves_section(curves: dict, out: Path) -> list[str]:
    parts = ["## Training curves", ""]
    if not curves:
        return parts + ["_Missing: no per-epoch training history in `quality.json` and no `--curves` file. "
                        "Train with `python train.py --kg <kg> --out <run>` and pass the run: "
                        "`python benchmarks/report.py --curves <run>`._", ""]
    lines = ["| run | epochs | last loss | best valid NDCG@20 | at epoch |", "|---|---|---|---|---|"]
    for run, c in curves.items():
        val = c.get("valid_ndcg@20", [])
        best = max(range(len(val)), key=val.__getitem__) if val else None
        ve = c.get("valid_epoch", c.get("epoch", []))
        lines.append(f"| {run} | {len(c.get('loss', []))} | "
                     + (f"{c['loss'][-1]:.4f}" if c.get("loss") else "—") + " | "
                     + (f"{val[best]:.4f} | {ve[best] if best < len(ve) else best + 1}" if val else "— | —") + " |")
    charts.training_curves_chart(curves, out / "training_curves.png", "Training curves")
    return parts + lines + ["", "![training curves](training_curves.png)", ""]


def speed_section(results: Path) -> list[str]:
    parts = ["## Evaluation speed", ""]
    data = load_json(results / "eval_speed.json")
    if data is not None:
        return parts + ["```json", json.dumps(data, indent=1), "```", ""]
    md = results / "eval_speed.md"
    if md.is_file():
        body = md.read_text(encoding="utf-8").splitlines()
        return parts + [line.replace("# ", "### ", 1) if line.startswith("# ") else line for line in body] + [""]
    return parts + _missing("evaluation-speed measurements", "eval_speed.json / eval_speed.md", CMD["eval_speed"])


def explain_section(results: Path) -> list[str]:
    parts = ["## Explanations", ""]
    data = load_json(results / "explain.json")
    if data is None:
        return parts + _missing("explanation results", "explain.json", CMD["explain"])
    flat = [(k, v) for k, v in data.items() if isinstance(v, int | float | str)] if isinstance(data, dict) else []
    lines = ["| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in flat]
    return parts + (lines if flat else ["```json", json.dumps(data, indent=1)[:4000], "```"]) + [""]


def build(results: Path, out_md: Path, curve_files: list[Path] | None = None) -> str:
    """Write ``out_md`` (and its PNGs beside it) from the JSON files in ``results``; return the Markdown."""
    quality = load_json(results / "quality.json")
    robustness = load_json(results / "robustness.json")
    curves = collect_curves(quality, list(curve_files or []))
    out = out_md.parent
    sources = sorted(p.name for p in results.glob("*.json"))
    parts = ["# mmkgrec benchmark report", "",
             f"Generated by `python benchmarks/report.py` from {', '.join(sources) or 'no JSON file'} "
             "in `benchmarks/results/`. Numbers are copied from those files; a missing file leaves its section "
             "empty with the command that makes it.", ""]
    parts += quality_section(quality, out) + ablation_section(quality, out) + robustness_section(robustness, out)
    parts += curves_section(curves, out) + speed_section(results) + explain_section(results)
    text = "\n".join(parts)
    write_text_atomic(out_md, text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of the *.json results (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None, help="report path (default: RESULTS/REPORT.md)")
    p.add_argument("--curves", type=Path, nargs="*", default=[],
                   help="train.py run folders (or JSON files) with per-epoch history")
    args = p.parse_args(argv)
    try:
        out = args.out or args.results / "REPORT.md"
        build(args.results, out, args.curves)
    except MMKGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
