"""The benchmark report: every ``benchmarks/results/*.json`` gathered into ``REPORT.md`` with PNG charts.

``python benchmarks/report.py [--results benchmarks/results] [--curves RUN ...]`` reads ``quality.json``
(``python -m benchmarks.quality``: per-model mean / std / per-seed metrics, RecBole references, the ``Full model``
ablation rows, cold-start and scale runs, each run's folder), ``robustness.json`` (``evaluate.py --robustness``),
``eval_speed.md`` and ``explain.json``. Training curves come from the train.py run folders (quality.json's runs
and ``--curves``): validation NDCG@20 from ``metrics.json``, the per-epoch loss from ``tb/`` when TensorBoard was
on. Writes ``REPORT.md`` and ``quality_models.png``, ``ablations.png``, ``robustness.png``,
``training_curves.png`` beside it. A missing input leaves its section naming what is missing and the command
that makes it; no number is ever filled in.
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
from benchmarks.training_curves import collect_curves, load_json  # noqa: E402
from evaluation.report_tables import write_text_atomic  # noqa: E402
from evaluation.robustness import render_robustness  # noqa: E402
from kg.errors import MMKGError  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CMD = {"quality": "python -m benchmarks.quality --kg <kg> --seeds 0,1,2",
       "robustness": "python evaluate.py --checkpoint <run>/best.pt --robustness --out-dir benchmarks/results",
       "eval_speed": "python benchmarks/eval_speed.py", "explain": "python -m benchmarks.explain"}


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


ABLATION_PREFIX = "Full model"


def _split_rows(quality: dict) -> tuple[dict, dict]:
    """``(main rows, ablation rows)``: ``ablations`` when present, else the ``Full model...`` variants of ``models``
    (the main chart keeps the baselines and the complete full model, the row without a ``:`` variant suffix)."""
    models = quality.get("models") or {}
    if quality.get("ablations"):
        return models, quality["ablations"]
    abl = {k: v for k, v in models.items() if k.startswith(ABLATION_PREFIX)}
    main = {k: v for k, v in models.items() if not k.startswith(f"{ABLATION_PREFIX}:")}
    return main, abl if len(abl) > 1 else {}


def _chart_rows(entries: dict, path: Path, title: str, ref: dict | None = None) -> list[str]:
    rows = {name: _mean_std(e) for name, e in entries.items()}
    metrics = _test_metrics(rows)
    charts.bar_chart({k: (m, s) for k, (m, s, _) in rows.items()}, metrics, path, title, reference=ref,
                     n_seeds={k: n for k, (_, _, n) in rows.items() if n is not None})
    return model_table(rows, metrics, ref) + [f"![{title.splitlines()[0]}]({path.name})", ""]


def quality_section(quality: dict | None, out: Path) -> list[str]:
    parts = ["## Recommendation quality by model", ""]
    if quality is None or not quality.get("models"):
        return parts + _missing("per-model quality results", "quality.json", CMD["quality"])
    parts += [quality.get("protocol", ""), ""] if quality.get("protocol") else []
    main, _ = _split_rows(quality)
    parts += _chart_rows(main, out / "quality_models.png", "Test metrics by model, ml-100k\n(mean ± std over "
                         "seeds; dashed line = RecBole reference)", quality.get("reference_recbole", {}))
    hp = [f"- {name}: {e['selected']}" if "selected" in e else f"- {name}: " + "; ".join(
        f"seed {s}: {r.get('hparams')}" for s, r in e.get("per_seed", {}).items())
        for name, e in quality["models"].items() if e.get("per_seed") or "selected" in e]
    return parts + (["Selected hyper-parameters (validation NDCG@20):", "", *hp, ""] if hp else [])


def ablation_section(quality: dict | None, out: Path) -> list[str]:
    parts = ["## Ablations", ""]
    if quality is None:
        return parts + _missing("ablation results", "quality.json", CMD["quality"])
    _, abl = _split_rows(quality)
    if not abl:
        return parts + ["_Missing: `benchmarks/results/quality.json` holds no ablation rows yet (`Full model: ...` "
                        "variants); make them with `python -m benchmarks.quality --kg <kg> --models "
                        "id_only,kg,text,image,full`._", ""]
    if quality.get("ablation_overrides"):
        parts += [f"The `Full model: ...` rows override the config with {quality['ablation_overrides']} (the "
                  "benchmark's record): they compare parts at one tuning point.", ""]
    return parts + _chart_rows(abl, out / "ablations.png", "Ablations: the full model built up part by part\n"
                               "(test metrics, mean ± std over seeds)")


def extra_section(quality: dict | None) -> list[str]:
    """Cold-start and scale results of quality.json, as stored (one table per seed)."""
    parts: list[str] = []
    for key, title in (("coldstart", "Cold-start items"), ("scale", "Scale (generated graph)")):
        for seed, c in ((quality or {}).get(key) or {}).items():
            rows = {k: v for k, v in c.items() if isinstance(v, Mapping)}
            cols = list(dict.fromkeys(m for v in rows.values() for m in v))
            notes = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in c.items()
                              if not isinstance(v, Mapping))
            parts += [f"## {title}, seed {seed}", "", notes, "", "| model | " + " | ".join(cols) + " |",
                      "|" + "---|" * (len(cols) + 1)]
            parts += ["| " + " | ".join([k] + [f"{v[m]:.4f}" if isinstance(v.get(m), float) else str(v.get(m, "—"))
                                               for m in cols]) + " |" for k, v in rows.items()] + [""]
    return parts


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


def curves_section(curves: dict, out: Path) -> list[str]:
    parts = ["## Training curves", ""]
    if not curves:
        return parts + ["_Missing: no train.py run with per-epoch history (quality.json's runs, `--curves`). Train "
                        "with `python train.py --kg <kg> --out <run>`, then `python benchmarks/report.py --curves "
                        "<run>`._", ""]
    lines = ["| run | epochs with loss | last loss | best valid NDCG@20 | at epoch |", "|---|---|---|---|---|"]
    for run, c in curves.items():
        val, loss = c.get("valid_ndcg@20", []), c.get("loss", [])
        b = max(range(len(val)), key=val.__getitem__) if val else None
        lines.append(f"| {run} | {len(loss)} | {f'{loss[-1]:.4f}' if loss else '—'} | "
                     + (f"{val[b]:.4f} | {c['valid_epoch'][b]} |" if val else "— | — |"))
    if any(not c.get("loss") for c in curves.values()):
        lines += ["", "A run without a loss curve was trained with `--tensorboard false`: train.py writes the "
                  "per-epoch loss only to its TensorBoard logs."]
    charts.training_curves_chart(curves, out / "training_curves.png", "Training curves")
    return parts + lines + ["", "![training curves](training_curves.png)", ""]


def speed_section(results: Path) -> list[str]:
    md = results / "eval_speed.md"
    if not md.is_file():
        return ["## Evaluation speed", ""] + _missing("evaluation-speed measurements", "eval_speed.md",
                                                      CMD["eval_speed"])
    return [line.replace("# ", "## ", 1) if line.startswith("# ") else line
            for line in md.read_text(encoding="utf-8").splitlines()] + [""]


def explain_section(results: Path) -> list[str]:
    """One row per ``explain*.json`` (``benchmarks/explain.py`` on a checkpoint) against the issue's goals."""
    files = sorted(results.glob("explain*.json"))
    if not files:
        return ["## Explanations", ""] + _missing("explanation results", "explain.json", CMD["explain"])
    rows = ["| file | checkpoint | recommendations | coverage (>= 95%) | faithfulness (>= 2) | top path via KG "
            "(>= 50%) | a returned path via KG | p50 ms | p95 ms (< 200) |", "|---" * 9 + "|"]
    share = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731 (results from before the measure: -)
    for f in files:
        d = json.loads(f.read_text(encoding="utf-8"))
        rows.append(f"| {f.name} | `{d.get('checkpoint')}` | {d.get('recommendations')} | {d['coverage']:.1%} | "
                    f"{d['faithfulness_ratio']:.2f} | {share(d.get('kg_relation_top_share'))} | "
                    f"{share(d.get('kg_relation_any_share'))} | {d['latency_ms_p50']:.0f} | "
                    f"{d['latency_ms_p95']:.0f} |")
    return ["## Explanations", "", "Coverage: share of top-10 recommendations with a path whose removal lowers "
            "the score; faithfulness: score drop of the top path / of a random path of the same length; via KG: "
            "through a relation other than the interactions (the top path; any of the up to 3 returned paths).", "",
            *rows, ""]


def build(results: Path, out_md: Path, curve_files: list[Path] | None = None) -> str:
    """Write ``out_md`` (and its PNGs beside it) from the JSON files in ``results``; return the Markdown."""
    quality = load_json(results / "quality.json")
    robustness = load_json(results / "robustness.json")
    curves = collect_curves(quality, list(curve_files or []))
    out = out_md.parent
    sources = sorted(p.name for p in results.glob("*.json"))
    parts = ["# mmkgrec benchmark report", "",
             f"Generated by `python benchmarks/report.py{''.join(f' --curves {c}' for c in curve_files or [])}` from "
             f"{', '.join(sources) or 'no JSON file'} "
             "in `benchmarks/results/`. Numbers are copied from those files; a missing file leaves its section "
             "empty with the command that makes it.", ""]
    parts += quality_section(quality, out) + ablation_section(quality, out) + extra_section(quality)
    parts += robustness_section(robustness, out)
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
