"""The rows of the "KG and modalities must earn their place" issue (benchmarks/quality.py runs them): the tuned
ID-only reference, one ablation of configs/ml100k.toml per part it uses (each item-item graph, KG propagation,
text, image), the sparse regime (each user's training pairs cut to ``SPARSE`` of them, seeded, at least one kept,
validation / test those of the full split), the users-by-activity table and the goals."""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from benchmarks.quality_runs import FULL, ROOT
from training.config import TrainConfig, load_toml

SPARSE = 0.2  # train_fraction of the sparse regime
DEFAULT = load_toml(ROOT / "configs" / "ml100k.toml")
GRAPHS = [g.strip() for g in str(DEFAULT.get("item_graphs", "")).split(",") if g.strip()]
CONTENT = ("use_kg", "use_text", "use_image", "use_clip_text", "use_profile")
# the ID-only model at its own tuned point (l2 1e-3, the previous default), item-graph fields at their defaults
ID_ONLY = {**FULL, **{k: False for k in CONTENT}, "use_item_item": False, "l2_weight": 1e-3, "content_refresh": 1,
           **{f.name: f.default for f in fields(TrainConfig) if f.name.startswith("item_graph")}}
ID_ROW = "Full model: ID only, tuned (configs/ml100k.toml, every KG / content / item-graph switch off)"
DEFAULT_ROW = "Full model (configs/ml100k.toml as is)"
NO_BLEND_ROW = "Default without the closed-form item-item branch (ease_blend false)"
EVERY_STEP_ROW = "Default with the content terms every step (content_refresh 1)"
LIFT_ID, LIFT_EASE, LIFT_SPARSE = 1.02, 1.03, 1.15  # default vs ID-only / EASE (warm), vs LightGCN (sparse)


def part_families() -> dict[str, tuple[str, dict, list[dict]]]:
    """``name -> (row, flags, grid)``: the tuned ID-only row and the default without each of its parts."""
    out = {"id_tuned": (ID_ROW, ID_ONLY, [{}])}
    for g in GRAPHS:
        out[f"no_{g}_graph"] = (f"Default without the {g} item graph",
                                {**FULL, "item_graphs": ",".join(x for x in GRAPHS if x != g)}, [{}])
    if GRAPHS:
        out["no_item_graphs"] = ("Default without any item graph", {**FULL, "item_graphs": ""}, [{}])
    for k in CONTENT:
        if DEFAULT.get(k):
            out[f"no_{k[4:]}"] = (f"Default without {k} (set false)", {**FULL, k: False}, [{}])
    if DEFAULT.get("ease_blend"):
        out["no_ease_blend"] = (NO_BLEND_ROW, {**FULL, "ease_blend": False}, [{}])
    if DEFAULT.get("content_refresh", 1) > 1:  # issue 14: the speed option against the exact every-step training
        out["every_step"] = (EVERY_STEP_ROW, {**FULL, "content_refresh": 1}, [{}])
    return out


def sparse_families(lightgcn: tuple, ease: tuple) -> dict[str, tuple[str, dict, list[dict]]]:
    """The sparse regime's rows: LightGCN and EASE with their grids (re-searched on the sparse validation),
    the tuned ID-only model and the default config, all with ``train_fraction = SPARSE``."""
    tf = {"train_fraction": SPARSE}
    long = {"epochs": 400}  # a fifth of the pairs: a fifth of the steps per epoch, so room for more epochs
    ease_grid = [{"baseline_options": {"reg_weight": r}} for r in (50, 100, 200, 300, 500, 1000, 2000)]
    return {"sparse_lightgcn": (f"Sparse {SPARSE:.0%}: LightGCN", {**lightgcn[1], **tf}, lightgcn[2]),
            "sparse_ease": (f"Sparse {SPARSE:.0%}: EASE", {**ease[1], **tf}, ease_grid),
            "sparse_id": (f"Sparse {SPARSE:.0%}: full model, ID only (tuned)", {**ID_ONLY, **tf, **long}, [{}]),
            "sparse_full": (f"Sparse {SPARSE:.0%}: full model (configs/ml100k.toml)", {**FULL, **tf, **long}, [{}])}


def activity_lines(models: dict, pairs: list[tuple[str, str]]) -> list[str]:
    """Markdown: test N@20 per user-activity quartile (training interactions of the split), mean over seeds,
    for each ``(reference row, model row)`` pair present with groups."""
    lines: list[str] = []
    for ref, row in pairs:
        if not all(r in models and all(s.get("test_groups") for s in models[r]["per_seed"].values())
                   for r in (ref, row)):
            continue
        seeds = sorted(set(models[ref]["per_seed"]) & set(models[row]["per_seed"]))
        first = models[ref]["per_seed"][seeds[0]]["test_groups"]
        lines += [f"### Test NDCG@20 by user activity: `{row}` vs `{ref}` ({len(seeds)} seeds; quartiles of the "
                  f"users' training interactions, ranges of seed {seeds[0]})", "",
                  "| group | users | " + ref + " | " + row + " | ratio |", "|---|---|---|---|---|"]
        for g, grp in enumerate(first):
            a, b = (float(np.mean([models[r]["per_seed"][s]["test_groups"][g]["metrics"]["ndcg@20"] for s in seeds]))
                    for r in (ref, row))
            lines.append(f"| {grp['label']} | {grp['users']} | {a:.4f} | {b:.4f} | {b / a:.3f}x |")
        lines.append("")
    return lines


def part_lines(models: dict) -> list[str]:
    """The goals of the issue: the default vs the tuned ID-only row and EASE (warm), vs LightGCN (sparse)."""
    if DEFAULT_ROW not in models:
        return []
    f = models[DEFAULT_ROW]["mean"]["test/ndcg@20"]
    uses = [f"{g} item graph" for g in GRAPHS] + [k for k in CONTENT if DEFAULT.get(k)]
    kg = "kg" in GRAPHS or bool(DEFAULT.get("use_kg"))
    content = bool({"text", "image", "clip_text"} & set(GRAPHS)) or any(DEFAULT.get(k) for k in CONTENT[1:4])
    lines = [f"- default config uses: {', '.join(uses) or 'no KG or content part'} (goal: KG and content: "
             f"{_met(kg and content)})"]
    for ref, lift in ((ID_ROW, LIFT_ID), ("EASE", LIFT_EASE)):
        if ref in models:
            r = f / models[ref]["mean"]["test/ndcg@20"]
            lines.append(f"- warm: default test NDCG@20 {f:.4f} / `{ref}` {models[ref]['mean']['test/ndcg@20']:.4f}"
                         f" = {r:.3f}x (goal >= {lift}x: {_met(r >= lift - 1e-9)})")
    sp, lg = (f"Sparse {SPARSE:.0%}: full model (configs/ml100k.toml)", f"Sparse {SPARSE:.0%}: LightGCN")
    if sp in models and lg in models:
        a, b = models[sp]["mean"]["test/ndcg@20"], models[lg]["mean"]["test/ndcg@20"]
        lines.append(f"- sparse {SPARSE:.0%}: default test NDCG@20 {a:.4f} / LightGCN {b:.4f} = {a / b:.3f}x "
                     f"(goal >= {LIFT_SPARSE}x: {_met(a / b >= LIFT_SPARSE - 1e-9)})")
    return lines


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"
