"""Recommendation quality of the baselines and the full model on ml-100k, every model trained by train.py.

    python -m benchmarks.quality --kg W/ml-kg [--models ease,lightgcn] [--seeds 0,1,2]

``W/ml-kg``: ``python -m kg.datasets.movielens --out W/ml.ttl && python -m kg ingest W/ml.ttl --out W/ml-kg &&
python -m encoders encode --kg W/ml-kg``. Each run is train.py in a subprocess (peak RSS from ``os.wait4``) on a
random 80/10/10 per-user split (``--split_seed`` = seed), full ranking with training items masked (validation
items too for test). Hyper-parameters are searched on the first seed's validation NDCG@20 and reused for the
other seeds; train.py tests every run, but only the selected run's test numbers are read. Families run alone
(``--models``) and merge into ``benchmarks/results/quality.json`` (``quality.md`` is regenerated), including
``coldstart`` (quality_coldstart.py; cold-item split: the full model's variants vs content-kNN vs random,
ranked among the test cold items, and among the validation cold items, which pick the variant the goals judge)
and ``scale``
(one epoch of the full model and LightGCN on a generated graph: 100k users, 50k items, 1M interactions, 1M triples).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.quality_parts import (
    DEFAULT,
    DEFAULT_ROW,
    ID_ROW,
    activity_lines,
    part_families,
    part_lines,
    sparse_families,
)
from benchmarks.quality_runs import COMMON, FULL, ON, PREV, RESULTS, WORK, available_item_graphs, train_run
from benchmarks.quality_targets import target_lines
from kg.errors import MMKGError

METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
BASE = {"eval_every": 5, "patience": 6, "epochs": 400}  # baselines; the full model keeps its config's schedule
OFF = {k: k == "use_id" for k in ON}
KG_ON = {"use_kg": True, "use_profile": True}
# row name -> (fixed train.py flags, grid searched on validation)
FAMILIES: dict[str, tuple[str, dict, list[dict]]] = {
    "mostpop": ("MostPop", {"model": "mostpop"}, [{}]),
    "ease": ("EASE", {"model": "ease"}, [{"baseline_options": {"reg_weight": r}} for r in (100, 200, 300, 500, 1000)]),
    "bpr_mf": ("BPR-MF", {"model": "bpr_mf", **BASE}, [{"lr": a, "l2_weight": w} for a in (5e-4, 1e-3)
                                                        for w in (1e-4, 1e-3)]),
    "lightgcn": ("LightGCN", {"model": "lightgcn", "num_layers": 3, **BASE},
                 [{"lr": lr, "batch_size": b} for lr in (1e-3, 2e-3, 5e-3) for b in (2048, 4096)]),
    "full": ("Full model (configs/ml100k.toml as is)", FULL, [{}]),
    "id_only": ("Full model: ID only", {**FULL, **OFF, **PREV}, [{}]),
    "kg": ("Full model: ID + KG", {**FULL, **OFF, **KG_ON, **PREV}, [{}]),
    "text": ("Full model: ID + KG + text", {**FULL, **OFF, **KG_ON, "use_text": True, **PREV}, [{}]),
    "image": ("Full model: ID + KG + text + image", {**FULL, **ON, **PREV}, [{}]),
    "contrastive": ("Full model: all + contrastive loss", {**FULL, **ON, "contrastive_weight": 0.1, **PREV}, [{}]),
    # issue 14: every part on, as the scale row, on today's config; content terms every step vs reused for 8 steps
    "all_every_step": ("Full model: every part, content terms every step", {**FULL, **ON, **PREV}, [{}]),
    "all_refresh": ("Full model: every part, content terms reused for 8 steps (the scale row)",
                    {**FULL, **ON, **PREV, "content_refresh": 8}, [{}]),
}
FAMILIES |= part_families()  # issue 11: the tuned ID-only row, the default without each part, the sparse regime
FAMILIES |= sparse_families(FAMILIES["lightgcn"], FAMILIES["ease"])
SPECIAL = ("coldstart", "scale")
REFERENCE = {"LightGCN": (0.380, 0.326), "BPR-MF": (0.372, 0.317), "EASE": (0.400, 0.347)}  # RecBole 1.2.1 test R/N@20


def run_family(name: str, kg: Path, seed: int, data: dict) -> dict:
    """One seed of one row: the grid on validation (or the row's stored selection), then the selected run's
    valid metrics at its best epoch, test metrics, mean epoch time (fit time for fitted models), peak RSS."""
    row, fixed, grid = FAMILIES[name]
    have = sorted(json.loads((kg / "features" / "features.json").read_text())["counts"])
    if fixed.get("use_image") and "item.image" not in have:
        raise MMKGError(f"{row} needs item.image features in {kg}/features (mmkgrec-encode pretrain-clip, encode)")
    chosen = data.get("models", {}).get(row, {}).get("selected")
    candidates = [chosen] if chosen is not None else grid
    seen = []
    for hp in candidates:
        flags = {**COMMON, **fixed, **hp, "seed": seed, "split_seed": seed}
        m = train_run(kg, flags, f"{name}-s{seed}")
        seen.append((_valid(m)["ndcg@20"], hp, m))
        print(f"{row} seed {seed} {hp}: valid ndcg@20 {seen[-1][0]:.4f}", flush=True)
    score, hp, m = max(seen, key=lambda t: t[0])
    best = _valid(m)
    result = {"hparams": hp, "valid": {k: best[k] for k in METRICS}, "test": {k: m["test"][k] for k in METRICS},
              "epoch_time_s": float(np.mean(m.get("epoch_seconds") or [m.get("fit_seconds", 0.0)])),
              "epochs": int(m.get("epoch", 0)), "best_epoch": int(m.get("best_epoch") or 0),
              "peak_rss_mb": m["peak_rss_mb"], "run": m["out"], "config": m.get("config")}
    result["grid"], result["features"] = [{"hparams": h, "valid_ndcg@20": s} for s, h, _ in seen], have
    result["test_groups"] = m.get("test_groups")  # test metrics by user-activity quartile
    print(f"{row} seed {seed} selected {hp}: test {result['test']}", flush=True)
    return result


def _valid(m: dict) -> dict:
    """The validation metrics of what a run kept: the blend with its closed-form branch when train.py fitted
    one (``--ease_blend``), else the best epoch's."""
    if m.get("closed_form"):
        return m["closed_form"]["valid"]
    return next(v for v in m["valid"] if v["epoch"] == (m.get("best_epoch") or 0))


def summarize(per_seed: dict[str, dict]) -> dict:
    """Mean and (population) std over seeds of valid/test metrics, epoch time and peak memory."""
    out: dict[str, dict] = {"mean": {}, "std": {}}
    keys = [(p, m) for p in ("valid", "test") for m in METRICS] + [(None, "epoch_time_s"), (None, "peak_rss_mb")]
    for part, m in keys:
        vals = np.array([r[part][m] if part else r[m] for r in per_seed.values()], dtype=np.float64)
        name = f"{part}/{m}" if part else m
        out["mean"][name], out["std"][name] = float(vals.mean()), float(vals.std())
    return out


def scale(seed: int) -> dict:
    """One epoch of the full model (every part on, the item-item graphs whose features the graph has; with the
    default's ``content_refresh`` and with the content terms every step) and of LightGCN on the generated graph
    (same batch size), in one run. ``prepare_s``: the one-time item-graph / KG-slot build before the first epoch."""
    kg_dir = write_scale_graph(WORK / "scale-kg", seed)
    full = {**FULL, **ON, **PREV, "item_graphs": available_item_graphs(kg_dir)}
    out = {}
    for label, extra in (("LightGCN", {"model": "lightgcn", "num_layers": 3}),
                         ("full model", {**full, "content_refresh": DEFAULT.get("content_refresh", 1)}),
                         ("full model, content terms every step", full)):
        m = train_run(kg_dir, {**COMMON, **extra, "epochs": 1, "eval_every": 1, "batch_size": 8192,
                               "eval_batch_size": 2048, "seed": seed, "split_seed": seed}, f"scale-s{seed}")
        out[label] = {"epoch_time_s": m["epoch_seconds"][0], "peak_rss_mb": m["peak_rss_mb"],
                      "prepare_s": m.get("prepare_seconds", 0.0)}
    out["ratio_full_over_lightgcn"] = out["full model"]["epoch_time_s"] / out["LightGCN"]["epoch_time_s"]
    return out


def write_scale_graph(out: Path, seed: int, users: int = 100_000, items: int = 50_000, entities: int = 100_000,
                      n_inter: int = 1_000_000, n_triples: int = 1_000_000, relations: int = 20) -> Path:
    """A saved KG with Zipf-like item / entity popularity and random unit-norm 384-d item / entity text."""
    from encoders.features import save_features
    from kg.model.graph import KnowledgeGraph

    if (out / "features").is_dir():
        return out
    rng = np.random.default_rng(seed)
    kg = KnowledgeGraph()
    for ntype, n in (("user", users), ("item", items), ("entity", entities)):
        for i in range(n):
            kg.add_node(ntype, f"{ntype[0]}{i}")
    zipf = (lambda n: (p := 1.0 / (np.arange(n) + 10.0) ** 0.8) / p.sum())  # noqa: E731
    key = np.unique(rng.integers(users, size=2 * n_inter) * items + rng.choice(items, 2 * n_inter, p=zipf(items)))
    for k in rng.permutation(key)[:n_inter].tolist():
        kg.add_interaction(f"u{k // items}", f"i{k % items}", 1.0)
    rel = rng.integers(relations, size=n_triples)
    head, tail = rng.integers(items, size=n_triples), rng.choice(entities, n_triples, p=zipf(entities))
    for r in range(relations):
        kg.add_triples(("item", f"rel{r}", "entity"), head[rel == r], tail[rel == r])
    kg.save(out)
    feats = {f"{t}.text": torch.nn.functional.normalize(torch.randn(n, 384), dim=1)
             for t, n in (("item", items), ("entity", entities))}
    feats |= {f"{k}_mask": torch.ones(v.shape[0], dtype=torch.bool) for k, v in feats.items()}
    save_features(out / "features", feats, {k: "random-normal-384" for k in feats})
    return out


def render(data: dict) -> str:
    """The markdown report of the merged JSON."""
    lines = ["# Recommendation quality (ml-100k)", "", " ".join(__doc__.split("\n\n")[2].split()), "",
             "| model | seeds | valid R@20 | valid N@20 | test R@10 | test N@10 | test R@20 | test N@20 | epoch (s) "
             "| peak RSS (MB) | test R@20 vs RecBole |", "|" + "---|" * 11]
    models = {r: data["models"][r] for r in [f[0] for f in FAMILIES.values()] if r in data.get("models", {})}
    for row, e in models.items():
        mean, std = e["mean"], e["std"]
        cells = [f"{mean[k]:.4f} ± {std[k]:.4f}" for k in ("valid/recall@20", "valid/ndcg@20", "test/recall@10",
                                                             "test/ndcg@10", "test/recall@20", "test/ndcg@20")]
        vs = f"{mean['test/recall@20'] / REFERENCE[row][0] - 1:+.1%}" if row in REFERENCE else ""
        lines.append(f"| {row} | {len(e['per_seed'])} | " + " | ".join(cells)
                     + f" | {mean['epoch_time_s']:.2f} | {mean['peak_rss_mb']:.0f} | {vs} |")
    lines += ["", "Epoch time: mean wall seconds of a training epoch (fit time for MostPop / EASE), one CPU thread on "
              "a shared machine; peak RSS of the whole train.py process. Selected hyper-parameters "
              "(searched on the validation split of the first seed, reused for the others):", ""]
    lines += [f"- {row}: {e.get('selected')}" for row, e in models.items()]
    lines += ["", f"The `Full model: ...` ablation rows, cold start and scale override the config with {PREV} (the "
              "tuning point before weight averaging was selected), so they compare parts, not tuning; the rows "
              "from `ID only` to `all + contrastive loss` were measured on the config before the item-item graphs "
              "(l2 1e-3; each run's effective config is in quality.json), the `every part` rows on today's. "
              "The `Default without ...` rows are configs/ml100k.toml with one part off, at its own tuning; "
              "the tuned ID-only row keeps the ID "
              "model's own tuned l2 1e-3; `Sparse 20%` rows train on a seeded 20 % of each user's training pairs (at "
              "least one), validation / test those of the full split, the baselines' grids searched again on it."]
    lines += ["", "RecBole 1.2.1 reference, same protocol (test R@20 / N@20): "
              + ", ".join(f"{k} {r:.3f} / {n:.3f}" for k, (r, n) in REFERENCE.items()), ""]
    for seed, c in data.get("coldstart", {}).items():
        lines += _table(f"Cold-start items (cold_item split, seed {seed}: {c['cold_test_items']} test cold items, "
                        f"{c['users']} users; ranked among the cold items of the part only)", c,
                        ("cold valid/recall@20", "cold valid/ndcg@20", "cold/recall@20", "cold/ndcg@20",
                         "cold all/recall@20"))
    for seed, c in data.get("scale", {}).items():
        lines += _table(f"Scale (generated: 100k users, 50k items, 1M interactions, 1M KG triples; seed {seed}; batch "
                        "8192, one epoch, one CPU thread)", c, ("epoch_time_s", "peak_rss_mb", "prepare_s"))
        lines += [f"CPU epoch time, full model / LightGCN: {c['ratio_full_over_lightgcn']:.1f}x", ""]
    full = next((r for r in (FAMILIES[k][0] for k in ("full", "contrastive", "image", "text")) if r in models), None)
    sparse = [r for r in models if r.startswith("Sparse")]
    lines += activity_lines(models, [(ID_ROW, DEFAULT_ROW), *[(a, b) for a in sparse for b in sparse
                                                             if "ID only" in a and "ml100k" in b]])
    goals = target_lines(models, full, data.get("coldstart", {}), data.get("scale", {}))
    return "\n".join(lines + goals[:-1] + part_lines(models) + [""])


def _table(title: str, section: dict, cols: tuple[str, ...]) -> list[str]:
    rows = [f"| {k} | " + " | ".join(f"{v[c]:.4g}" if c in v else "" for c in cols) + " |" for k, v in section.items()
            if isinstance(v, dict)]
    return [f"## {title}", "", "| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|", *rows, ""]


def save(path: Path, data: dict, touched: list[tuple[str, ...]] | None = None) -> None:
    """Write ``data`` (JSON + markdown); with ``touched`` (``(section, key[, seed])`` entries this process
    changed), merge them into the file as it is now, under a lock, so parallel runs of other rows / seeds are kept."""
    if touched is not None:
        import fcntl

        with open(path.with_name(f".{path.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            disk = json.loads(path.read_text()) if path.exists() else {}
            for section, key, *seed in touched:
                if not seed:
                    disk.setdefault(section, {})[key] = data[section][key]
                    continue
                mine = data[section][key]  # one seed of a row: other processes may run its other seeds
                row = disk.setdefault(section, {}).setdefault(key, {"per_seed": {}})
                row["per_seed"][seed[0]] = mine["per_seed"][seed[0]]
                row.setdefault("selected", mine.get("selected"))
                row.update(summarize(row["per_seed"]))
            data.clear()
            data.update(disk)
            save(path, data)
        return
    data["reference_recbole"] = {k: {"test/recall@20": r, "test/ndcg@20": n} for k, (r, n) in REFERENCE.items()}
    data["ablation_overrides"] = PREV
    for path_, text in ((path, json.dumps(data, indent=1, sort_keys=True)), (path.with_suffix(".md"), render(data))):
        path_.parent.mkdir(parents=True, exist_ok=True)
        tmp = path_.with_name(f".{path_.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path_)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = list(FAMILIES) + list(SPECIAL)
    p.add_argument("--models", default=",".join(FAMILIES), help=f"comma list of {', '.join(names)}")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--kg", type=Path, default=WORK / "ml-kg", help="the ingested ml-100k KG directory")
    p.add_argument("--retune", action="store_true", help="search the grid on every seed, not only the first")
    p.add_argument("--json", type=Path, default=RESULTS / "quality.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from benchmarks.quality_coldstart import cold_start

    try:
        models = [m for m in args.models.split(",") if m]
        unknown = [m for m in models if m not in names]
        if unknown:
            raise MMKGError(f"unknown model family {unknown[0]!r} (expected one of {', '.join(names)})")
        if not (args.kg / "features").is_dir() and set(models) - {"scale"}:
            raise MMKGError(f"{args.kg}: no KG with features; build it as described in benchmarks/quality.py")
        data = json.loads(args.json.read_text()) if args.json.exists() else {}
        for name in models:
            for seed in (int(s) for s in args.seeds.split(",")):
                if name in SPECIAL:
                    data.setdefault(name, {})[str(seed)] = cold_start(args.kg, seed) if name == "coldstart" \
                        else scale(seed)
                    touched = [(name, str(seed))]
                else:
                    row = FAMILIES[name][0]
                    entry = data.setdefault("models", {}).setdefault(row, {"per_seed": {}})
                    if args.retune:
                        entry.pop("selected", None)
                    entry["per_seed"][str(seed)] = res = run_family(name, args.kg, seed, data)
                    entry.setdefault("selected", res["hparams"])
                    entry.update(summarize(entry["per_seed"]))
                    touched = [("models", row, str(seed))]
                save(args.json, data, touched)
    except MMKGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
