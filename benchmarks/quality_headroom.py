"""Headroom of a trained model: does any post-hoc item-item, KG, content or popularity term lift it? (issue 11)

    python -m benchmarks.quality_headroom [--rows ROW ...] [--kg W/ml-kg]

For every seed's checkpoint of each ``--rows`` row of ``benchmarks/results/quality.json`` (default: the default
config and the tuned ID-only model, warm and in the sparse regime), the checkpoint's scores (its closed-form
branch as selected) are blended with one term at a time (:mod:`benchmarks.headroom_terms`):

    s = model + w * (std(model) / std(T)) * T        (standard deviations over (user, unseen item) pairs)

A family's parameter and ``w`` (``WEIGHTS``) are chosen together on the validation split only (``w = 0``, the
model as is, wins ties); the test split is scored once, for the chosen blend. The table reports the means over
the seeds and the test ratio against the row itself and against the reference row (``LightGCN`` / ``Sparse 20%:
LightGCN``), so a goal's gap can be read next to what the best term closes of it. Writes
``benchmarks/results/headroom.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from benchmarks.headroom_terms import families
from benchmarks.quality_parts import DEFAULT_ROW, ID_ROW, SPARSE
from benchmarks.quality_runs import RESULTS, WORK
from benchmarks.training_curves import this_checkout
from evaluation.checkpoint_scoring import load_checkpoint
from evaluation.protocol import TestEvaluator, ValidationEvaluator
from gnn.ease import binary_history
from kg.errors import MMKGError

WEIGHTS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)
SPARSE_ROW = f"Sparse {SPARSE:.0%}: full model (configs/ml100k.toml)"
SPARSE_ID_ROW = f"Sparse {SPARSE:.0%}: full model, ID only (tuned)"
ROWS = (DEFAULT_ROW, ID_ROW, SPARSE_ROW, SPARSE_ID_ROW)  # the default config and the ID-only model, warm and sparse
REFERENCE = {DEFAULT_ROW: "LightGCN", ID_ROW: "LightGCN", SPARSE_ROW: f"Sparse {SPARSE:.0%}: LightGCN",
             SPARSE_ID_ROW: f"Sparse {SPARSE:.0%}: LightGCN"}
METRIC = "ndcg@20"
BEST = "best family on validation"  # per seed, the family whose chosen blend scored best on validation


def select_blend(base: np.ndarray, unseen: np.ndarray, terms: Iterable[tuple[str, np.ndarray]],
                 validator: ValidationEvaluator) -> dict:
    """The validation-best ``(parameter, w)`` of ``base + w * scale * T`` over ``terms`` and ``WEIGHTS``;
    ``w = 0`` (``base`` alone) wins ties. Returns ``{"param", "weight", "valid", "scores", "alone"}``, ``alone``
    the best validation score of a term ranking by itself."""
    best = {"param": None, "weight": 0.0, "valid": validator.score(dense_score_fn(base)), "scores": base}
    spread, alone = base[unseen].std(), float("-inf")
    for param, t in terms:
        sd = t[unseen].std()
        if not sd > 0:
            continue
        alone = max(alone, validator.score(dense_score_fn(t)))
        for w in WEIGHTS:
            blend = base + (w * spread / sd) * t
            v = validator.score(dense_score_fn(blend))
            if v > best["valid"]:
                best = {"param": param, "weight": w, "valid": v, "scores": blend}
    return {**best, "alone": alone if alone > float("-inf") else None}


def dense_score_fn(scores: np.ndarray):
    """``users [B] -> scores [B, I]`` over a precomputed dense ``[U, I]``."""
    table = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32))
    return lambda users: table[users.cpu()]


def headroom_of(run: Path, kg: Path | None) -> dict:
    """Every family's validation-chosen blend on one checkpoint: ``{"model": {...}, family: {...}, BEST: {...}}``
    (each ``{"param", "weight", "valid", "test"}``)."""
    ck = load_checkpoint(run / "best.pt", kg)
    inputs, (train, valid, test) = ck.inputs, ck.sets
    with torch.no_grad():
        base = ck.score_fn()(torch.arange(inputs.num_users)).double().cpu().numpy()
    x = binary_history(inputs.train_user, inputs.train_item, inputs.num_users, inputs.num_items)
    unseen = x.toarray() == 0
    validator = ValidationEvaluator(train, valid, ks=(20,), main_metric=METRIC)
    tester = TestEvaluator(train, valid, test, ks=(20,), n_resamples=0, n_groups=0, beyond=False)
    out = {"model": {"param": None, "weight": 0.0, "valid": validator.score(dense_score_fn(base)),
                     "test": tester.evaluate(dense_score_fn(base), f"{run}:model").mean(METRIC)}}
    for name, make in families(x, inputs).items():
        best = select_blend(base, unseen, make(), validator)
        scores = best.pop("scores")
        best["test"] = out["model"]["test"] if best["param"] is None else \
            tester.evaluate(dense_score_fn(scores), f"{run}:{name}").mean(METRIC)
        out[name] = best
    pick = max((f for f in out if f != "model"), key=lambda f: out[f]["valid"], default="model")
    out[BEST] = {**out[pick], "param": None if out[pick]["param"] is None else f"{pick}: {out[pick]['param']}",
                 "alone": None}
    return out


def row_runs(quality: dict, row: str) -> dict[str, Path]:
    """``seed -> run folder`` of a quality.json row (resolved in this checkout)."""
    entry = quality.get("models", {}).get(row)
    if not entry:
        raise MMKGError(f"quality.json has no row {row!r}; run benchmarks/quality.py for it first")
    runs = {s: this_checkout(Path(r["run"])) for s, r in entry["per_seed"].items() if r.get("run")}
    missing = [str(p) for p in runs.values() if not (p / "best.pt").is_file()]
    if missing or not runs:
        raise MMKGError(f"row {row!r}: no checkpoint at {missing[0] if missing else 'any seed'}")
    return runs


def summarize(quality: dict, row: str, per_seed: dict[str, dict]) -> list[dict]:
    """Per family: mean valid / test over the seeds, the chosen blends, test vs the row and vs its reference."""
    ref = REFERENCE.get(row)
    ref_test = quality["models"][ref]["mean"][f"test/{METRIC}"] if ref in quality.get("models", {}) else None
    model_test = float(np.mean([s["model"]["test"] for s in per_seed.values()]))
    out = []
    for fam in per_seed[next(iter(per_seed))]:
        cells = [s[fam] for s in per_seed.values() if fam in s]
        test = float(np.mean([c["test"] for c in cells]))
        alone = [c["alone"] for c in cells if c.get("alone") is not None]
        out.append({"family": fam, "seeds": len(cells), "valid": float(np.mean([c["valid"] for c in cells])),
                    "alone": float(np.mean(alone)) if len(alone) == len(cells) else None,
                    "test": test, "vs_model": test / model_test, "vs_reference": test / ref_test if ref_test else None,
                    "chosen": [None if c["param"] is None else f"{c['param']}, w {c['weight']:g}" for c in cells]})
    return out


def render(result: dict) -> str:
    lines = ["# Headroom: post-hoc terms on top of trained checkpoints (issue 11)", "",
             f"Each family's parameter and weight chosen on validation {METRIC} per seed (the model as is wins ties); "
             "test scored once for the chosen blend. Terms: benchmarks/headroom_terms.py.", ""]
    for row, r in result["rows"].items():
        ref = REFERENCE.get(row, "-")
        lines += [f"## {row}", "", f"| term | seeds | the term alone: valid {METRIC} | blend: valid {METRIC} | "
                  f"test {METRIC} | test vs the row | test vs {ref} | chosen per seed |", "|---" * 8 + "|"]
        for s in r["summary"]:
            vs_ref = "-" if s["vs_reference"] is None else f"{s['vs_reference']:.3f}x"
            alone = "-" if s.get("alone") is None else f"{s['alone']:.4f}"
            chosen = "; ".join(c or "w 0" for c in s["chosen"])
            lines.append(f"| {s['family']} | {s['seeds']} | {alone} | {s['valid']:.4f} | {s['test']:.4f} | "
                         f"{s['vs_model']:.3f}x | {vs_ref} | {chosen} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", default=list(ROWS), help="quality.json rows")
    p.add_argument("--kg", type=Path, default=WORK / "ml-kg", help="the ingested ml-100k KG directory")
    p.add_argument("--quality", type=Path, default=RESULTS / "quality.json")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        if not args.quality.is_file():
            raise MMKGError(f"{args.quality}: not found; run benchmarks/quality.py first")
        quality = json.loads(args.quality.read_text())
        runs = {row: row_runs(quality, row) for row in args.rows}  # every row checked before any work
        result: dict = {"rows": {}}
        for row, seeds in runs.items():
            per_seed = {s: headroom_of(run, args.kg) for s, run in seeds.items()}
            result["rows"][row] = {"per_seed": per_seed, "summary": summarize(quality, row, per_seed),
                                   "runs": {s: str(r) for s, r in seeds.items()}}
            print(render({"rows": {row: result["rows"][row]}}), flush=True)
    except MMKGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "headroom.json").write_text(json.dumps(result, indent=1, sort_keys=True))
    (args.out_dir / "headroom.md").write_text(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
