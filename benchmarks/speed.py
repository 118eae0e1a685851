"""Training speed side by side: our LightGCN, PyG's LightGCN and the full model part by part, same run, same data.

    python -m benchmarks.speed [--datasets ml100k,scale] [--variants lightgcn,lightgcn_pyg,id_only,kg,text,all]
        [--old-code /path/to/other/checkout --old-variants lightgcn,all]

Every variant is one epoch of train.py in its own subprocess (peak RSS of the whole process from ``os.wait4``:
training plus the validation and test passes), one CPU thread, in the order given, back to back, so the ratio
columns (epoch time and peak RSS over our LightGCN's, measured in the same invocation) are what to read on a
shared machine. Datasets: ``ml100k`` (``--kg``, the ingested ml-100k KG with its features) and ``scale`` (the
generated graph of ``benchmarks/quality.py``: 100k users, 50k items, 1M interactions, 1M KG triples, 384-d
random text), both at batch 8192 as quality.py's scale row. Variants: ``lightgcn`` (ours, 3 layers, BPR, as the
scale row), ``lightgcn_pyg`` (PyG's ``LightGCN`` as shipped, fed the fastest adjacency it takes without
torch-sparse), the full model (configs/ml100k.toml with quality.py's ablation overrides) with ``id_only``,
``kg`` (+ KG and profile), ``text`` (+ text), ``image`` (+ image), ``all`` (every part, the content terms every
step), ``all_refresh8`` (``all`` with ``--content_refresh 8``, as the default: content / KG / item-graph terms
computed every 8th step, training/epoch.py; the scale row's config), and ``default`` / ``default_every_step``
(configs/ml100k.toml as is / with ``--content_refresh 1``). The item-item graphs are those of the config whose
features the dataset has; their one-time build (``prepare``) is timed apart from the epoch.
``--old-code DIR`` also runs ``--old-variants`` with another checkout's train.py and code (``PYTHONPATH=DIR``),
rows marked with it and a column of this code's speed-up over it, same variant, same run. Each invocation
replaces the tables of the datasets it runs (every ratio from one run) in ``benchmarks/results/speed.json``;
``speed.md`` is regenerated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.quality import FAMILIES, write_scale_graph
from benchmarks.quality_runs import RESULTS, ROOT, WORK, available_item_graphs
from kg.errors import MMKGError

# ease_blend false: the closed-form item-item branch is fitted once after training (no part of an epoch) and is
# dense [I, I], refused at the scale graph's 50k items
COMMON = {"threads": 1, "progress": False, "tensorboard": False, "test_resamples": 0, "ks": "10,20", "epochs": 1,
          "eval_every": 1, "batch_size": 8192, "eval_batch_size": 2048, "seed": 0, "split_seed": 0, "ease_blend": False}
LIGHTGCN = {"num_layers": 3}  # quality.py's scale row: TrainConfig's defaults otherwise (BPR, d = 64)
VARIANTS = {"lightgcn": ("LightGCN (ours)", {"model": "lightgcn", **LIGHTGCN}),
            "lightgcn_pyg": ("LightGCN (PyG as shipped)", {"model": "lightgcn_pyg", **LIGHTGCN}),
            "id_only": ("Full model: ID only", FAMILIES["id_only"][1]),
            "kg": ("Full model: ID + KG", FAMILIES["kg"][1]),
            "text": ("Full model: ID + KG + text", FAMILIES["text"][1]),
            "image": ("Full model: ID + KG + text + image",
                      {**FAMILIES["image"][1], "use_clip_text": False}),
            "all": ("Full model: all parts, content terms every step", FAMILIES["image"][1]),
            "all_refresh8": ("Full model: all parts, content terms reused for 8 steps (the default; the scale row)",
                             {**FAMILIES["image"][1], "content_refresh": 8}),
            "default": ("Full model: configs/ml100k.toml as is", FAMILIES["full"][1]),
            "default_every_step": ("Full model: configs/ml100k.toml, content terms every step",
                                   FAMILIES["every_step"][1])}
DATASETS = ("ml100k", "scale")


def run_variant(kg: Path, variant: str, code: Path, out: Path, device: str = "auto", extra: dict | None = None) -> dict:
    """One epoch of ``variant`` on ``kg`` with the train.py of ``code``: epoch seconds, the one-time preparation
    before it (item-item graphs, KG slots), peak RSS (MB), wall."""
    flags = {**COMMON, **VARIANTS[variant][1], "device": device, **(extra or {})}
    if not variant.startswith("lightgcn") and (code / "gnn" / "item_item_graphs.py").is_file():
        flags.setdefault("item_graphs", available_item_graphs(kg))
    if variant == "lightgcn_pyg" and not (code / "gnn" / "lightgcn_baseline.py").read_text().count("PyGLightGCN"):
        raise MMKGError(f"{code} has no lightgcn_pyg baseline")
    args = [a for k, v in flags.items() for a in (f"--{k}", json.dumps(v) if isinstance(v, dict | bool) else str(v))]
    out.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, str(code / "train.py"), "--kg", str(kg), "--out", str(out), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(code)}
    print(f"[{variant} @ {code}] {' '.join(argv[2:])}", flush=True)
    t0 = time.perf_counter()
    with open(out / "train.log", "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=code, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise MMKGError(f"train.py failed ({variant} @ {code}); see {out / 'train.log'}")
    m = json.loads((out / "metrics.json").read_text())
    return {"epoch_time_s": m["epoch_seconds"][0], "prepare_s": m.get("prepare_seconds"),
            "peak_rss_mb": usage.ru_maxrss / 1024,
            "wall_s": time.perf_counter() - t0, "valid_ndcg@20": m["valid"][-1].get("ndcg@20")}


def render(data: dict) -> str:
    lines = ["# Training speed (one epoch, one CPU thread, batch 8192)", "",
             " ".join(__doc__.split("\n\n")[2].split()), ""]
    for ds, runs in data.get("runs", {}).items():
        rows = {k: v for k, v in runs.items() if not k.startswith("_")}
        ours = rows.get("lightgcn")
        lines += [f"## {ds} ({data.get('sizes', {}).get(ds, '')}), measured {runs.get('_when', '?')}", "",
                  "| variant | code | epoch (s) | vs our LightGCN | peak RSS (MB) | vs our LightGCN "
                  "| this code's speed-up | valid N@20 after 1 epoch | prepare (s) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        order = list(VARIANTS)  # this code's rows first, in variant order, then the other code's
        for key, r in sorted(rows.items(), key=lambda kv: (" @ " in kv[0], order.index(kv[0].partition(" @ ")[0]))):
            variant, _, code = key.partition(" @ ")
            rt = f"{r['epoch_time_s'] / ours['epoch_time_s']:.2f}x" if ours else ""
            rm = f"{r['peak_rss_mb'] / ours['peak_rss_mb']:.2f}x" if ours else ""
            new = rows.get(variant) if code else None
            up = f"{r['epoch_time_s'] / new['epoch_time_s']:.2f}x" if new else ""
            nd = f"{r['valid_ndcg@20']:.4f}" if r.get("valid_ndcg@20") is not None else ""
            secs = f"{r['epoch_time_s']:.2f}" if r["epoch_time_s"] < 10 else f"{r['epoch_time_s']:.1f}"
            lines.append(f"| {VARIANTS[variant][0]} | {code or 'this'} | {secs} | {rt} | "
                         f"{r['peak_rss_mb']:.0f} | {rm} | {up} | {nd} | "
                         f"{'' if r.get('prepare_s') is None else format(r['prepare_s'], '.1f')} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="ml100k,scale")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--kg", type=Path, default=WORK / "ml-kg", help="the ingested ml-100k KG with features")
    p.add_argument("--old-code", type=Path, help="another checkout to time too (e.g. the main branch)")
    p.add_argument("--old-variants", default="lightgcn,all")
    p.add_argument("--device", default="auto", help="train.py's --device (auto: CUDA when present)")
    p.add_argument("--json", type=Path, default=RESULTS / "speed.json")
    args = p.parse_args(argv)
    try:
        data = json.loads(args.json.read_text()) if args.json.exists() else {}
        for ds in [d for d in args.datasets.split(",") if d]:
            if ds not in DATASETS:
                raise MMKGError(f"unknown dataset {ds!r} (expected one of {', '.join(DATASETS)})")
            kg = write_scale_graph(WORK / "scale-kg", 0) if ds == "scale" else args.kg
            if not (kg / "schema.json").is_file():
                raise MMKGError(f"{kg}: no saved KG (build it as described in benchmarks/quality.py)")
            if not (kg / "features").is_dir():
                print(f"note: {kg} has no features: the text / image variants run without them", file=sys.stderr)
            todo = [(v, ROOT) for v in args.variants.split(",") if v]
            if args.old_code:
                todo += [(v, args.old_code.resolve()) for v in args.old_variants.split(",") if v]
            runs = {}  # this invocation's rows replace the dataset's table: every ratio from one run
            for variant, code in todo:
                if variant not in VARIANTS:
                    raise MMKGError(f"unknown variant {variant!r} (expected one of {', '.join(VARIANTS)})")
                key = variant if code == ROOT else f"{variant} @ {code}"
                runs[key] = r = run_variant(kg, variant, code, WORK / "speed" / ds / key.replace(" @ ", "@")
                                            .replace("/", "_"), args.device)
                print(f"{ds} {key}: {r}", flush=True)
                runs["_when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
                data.setdefault("runs", {})[ds] = runs  # saved after every variant
                data.setdefault("sizes", {})[ds] = "100k users, 50k items, 1M interactions, 1M KG triples" \
                    if ds == "scale" else "943 users, 1682 items, 100k ratings, the Freebase KG"
                save(args.json, data)
        print(render(data))
    except MMKGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def save(path: Path, data: dict) -> None:
    for target, text in ((path, json.dumps(data, indent=1, sort_keys=True)), (path.with_suffix(".md"), render(data))):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, target)


if __name__ == "__main__":
    sys.exit(main())
