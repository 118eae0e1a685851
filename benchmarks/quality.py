"""Recommendation quality of the baselines and the full model on ml-100k, trained and scored by the same code.

``python -m benchmarks.quality [--models ease,lightgcn] [--seeds 0,1,2]`` runs the named model families on
random 80/10/10 per-user splits (RecBole's protocol), picks hyper-parameters on validation NDCG@20 only,
scores the test split once per model and seed (full ranking, training items masked; validation items
masked too for test) and merges the results into ``benchmarks/results/quality.json``, from which
``quality.md`` is regenerated. Families run alone and merge, so the table fills in over several runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evaluation.protocol import EarlyStopping, SplitResult, TestEvaluator, ValidationEvaluator
from evaluation.ranking import build_user_item_sets
from evaluation.report_tables import ResourceMeter
from gnn.baselines import BASELINES
from gnn.graph_inputs import GraphInputs, build_graph_inputs
from gnn.recommender import Batch, FittedRecommender, TrainableRecommender, make_score_fn
from kg.data_dir import find_data_dir
from kg.errors import MMKGError
from kg.graph import KnowledgeGraph
from kg.recbole_source import read_recbole
from kg.splits import make_split

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
SELECT = "ndcg@20"
REFERENCE = {"LightGCN": (0.380, 0.326), "BPR-MF": (0.372, 0.317), "EASE": (0.400, 0.347)}
"""RecBole 1.2.1 on this machine, same protocol: test (Recall@20, NDCG@20)."""


@dataclass
class Fold:
    """One seed's split: model inputs and the project's evaluators (valid: train masked; test: train+valid)."""

    seed: int
    inputs: GraphInputs
    valid: ValidationEvaluator
    test: TestEvaluator


def make_fold(kg: KnowledgeGraph, seed: int, method: str = "random") -> Fold:
    inter = kg.interactions()
    train, valid, test = make_split(inter, method, seed=seed).parts(inter)
    nu, ni = kg.num_nodes("user"), kg.num_nodes("item")
    sets = [build_user_item_sets(p.user, p.item, nu, ni) for p in (train, valid, test)]
    return Fold(seed, build_graph_inputs(kg, train),
                ValidationEvaluator(sets[0], sets[1], ks=(10, 20), main_metric=SELECT, batch_size=4096),
                TestEvaluator(*sets, ks=(10, 20), batch_size=4096, n_resamples=0, n_groups=0, beyond=False))


def metrics(result: SplitResult) -> dict[str, float]:
    return {m: result.mean(m) for m in METRICS}


def train_bpr(model: TrainableRecommender, fold: Fold, lr: float, batch_size: int, l2: float, max_epochs: int,
              patience: int, log: Callable[[str], None]) -> dict:
    """BPR with one uniform negative (not in the user's training set) per training pair, Adam, early
    stopping on validation NDCG@20; the best epoch's weights are restored. Returns timing and history."""
    inp = fold.inputs
    users, items = inp.train_user, inp.train_item
    known = torch.unique(users * inp.num_items + items)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    stopper, best_state, times = EarlyStopping(fold.valid, patience), None, []
    gen = torch.Generator().manual_seed(fold.seed)
    for epoch in range(max_epochs):
        t0 = time.perf_counter()
        model.train()
        neg = _sample_negatives(users, inp.num_items, known, gen)
        for idx in torch.randperm(users.numel(), generator=gen).split(batch_size):
            b = Batch(users[idx], items[idx], neg[idx])
            u_emb, i_emb = model(inp)
            u = u_emb[b.users]
            loss = -F.logsigmoid((u * i_emb[b.pos]).sum(1) - (u * i_emb[b.neg]).sum(1)).mean()
            loss = loss + l2 * sum(e.pow(2).sum() for e in model.ego_embeddings(b)) / (2 * idx.numel())
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
        stop = stopper.step(make_score_fn(model, inp), epoch)
        log(f"  epoch {epoch} loss {loss.item():.4f} valid {SELECT} {stopper.history[-1][1]:.4f} ({times[-1]:.2f}s)")
        if stopper.improved:
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if stop:
            break
    model.load_state_dict(best_state)
    return {"epoch_time_s": float(np.mean(times)), "epochs": len(times), "best_epoch": stopper.best_epoch}


def _sample_negatives(users: torch.Tensor, num_items: int, known: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One item per entry of ``users`` ``[E]``, uniform over the items not in ``known`` (sorted user*I+item keys)."""
    neg = torch.randint(num_items, users.shape, generator=gen)
    redo = torch.arange(users.numel())
    while redo.numel():
        keys = users[redo] * num_items + neg[redo]
        pos = torch.searchsorted(known, keys).clamp(max=known.numel() - 1)
        redo = redo[known[pos] == keys]
        neg[redo] = torch.randint(num_items, redo.shape, generator=gen)
    return neg


@dataclass
class Family:
    """A model row: its baseline name and the hyper-parameter grid searched on validation."""

    row: str
    baseline: str
    grid: list[dict]
    trainable: bool


FAMILIES = {
    "mostpop": Family("MostPop", "mostpop", [{}], False),
    "ease": Family("EASE", "ease", [{"reg_weight": r} for r in (50.0, 100.0, 200.0, 300.0, 500.0, 1000.0)], False),
    "bpr_mf": Family("BPR-MF", "bpr_mf", [{"lr": lr, "batch_size": 2048, "l2": 1e-4} for lr in (1e-3, 2e-3, 5e-3)],
                     True),
    "lightgcn": Family("LightGCN", "lightgcn", [{"lr": lr, "batch_size": bs, "l2": 1e-4}
                                                for lr in (1e-3, 2e-3, 5e-3) for bs in (2048, 4096)], True),
}


def run_family(fam: Family, fold: Fold, args: argparse.Namespace, log: Callable[[str], None],
               grid: list[dict] | None = None) -> dict:
    """Search ``grid`` (default ``fam.grid``) on validation, then score the selected model on test once."""
    best = None
    for hp in grid or fam.grid:
        torch.manual_seed(fold.seed)
        train_hp = {k: hp[k] for k in ("lr", "batch_size", "l2") if k in hp}
        opts = {k: v for k, v in hp.items() if k not in train_hp}
        model = BASELINES[fam.baseline](fold.inputs, embedding_dim=64, num_layers=3, **opts)
        with ResourceMeter() as mem:
            t0 = time.perf_counter()
            if isinstance(model, FittedRecommender):
                model.fit(fold.inputs.train_user, fold.inputs.train_item, fold.inputs.num_users, fold.inputs.num_items)
                info = {"epoch_time_s": time.perf_counter() - t0, "epochs": 0}
            else:
                info = train_bpr(model, fold, max_epochs=args.max_epochs, patience=args.patience, log=log, **train_hp)
        valid = metrics(fold.valid.evaluate(make_score_fn(model, fold.inputs)))
        log(f"{fam.row} seed {fold.seed} {hp}: valid {SELECT} {valid[SELECT]:.4f} ({info})")
        if best is None or valid[SELECT] > best[0]["valid"][SELECT]:
            best = ({"hparams": hp, "valid": valid, **info, "peak_mem_mb": mem.peak_mem_mb}, model)
    result, model = best
    result["test"] = metrics(fold.test.evaluate(make_score_fn(model, fold.inputs), f"{fam.row}/seed{fold.seed}"))
    log(f"{fam.row} seed {fold.seed} selected {result['hparams']}: test {result['test']}")
    return result


def summarize(per_seed: dict[str, dict]) -> dict:
    """Mean and (population) std over seeds of every valid/test metric, epoch time and peak memory."""
    out: dict[str, dict] = {"mean": {}, "std": {}}
    runs = list(per_seed.values())
    keys = [(p, m) for p in ("valid", "test") for m in METRICS] + [(None, "epoch_time_s"), (None, "peak_mem_mb")]
    for part, m in keys:
        vals = np.array([r[part][m] if part else r[m] for r in runs], dtype=np.float64)
        name = f"{part}/{m}" if part else m
        out["mean"][name], out["std"][name] = float(vals.mean()), float(vals.std())
    return out


def merge(path: Path, rows: dict[str, dict[str, dict]]) -> dict:
    """Merge per-seed results ``{row: {seed: result}}`` into the JSON at ``path`` (atomically)."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault("protocol", PROTOCOL)
    data["reference_recbole"] = {k: {"test/recall@20": r, "test/ndcg@20": n} for k, (r, n) in REFERENCE.items()}
    models = data.setdefault("models", {})
    for row, seeds in rows.items():
        entry = models.setdefault(row, {"per_seed": {}})
        entry["per_seed"].update(seeds)
        entry.update(summarize(entry["per_seed"]))
    _write(path, json.dumps(data, indent=1, sort_keys=True))
    return data


PROTOCOL = ("ml-100k (RecBole atomic files via kg.recbole_source), random 80/10/10 per-user split (kg.splits), "
            "full ranking over all items with training items masked (and validation items for test), "
            "hyper-parameters selected on validation NDCG@20, test scored once per model and seed.")


def render(data: dict) -> str:
    """The markdown report of the merged JSON."""
    lines = ["# Recommendation quality (ml-100k)", "", data["protocol"], "",
             "| model | seeds | valid R@20 | valid N@20 | test R@10 | test N@10 | test R@20 | test N@20 "
             "| epoch (s) | peak mem (MB) | vs RecBole R@20 |", "|" + "---|" * 11]
    for row, e in data["models"].items():
        mean, std = e["mean"], e["std"]
        cells = [f"{mean[k]:.4f} ± {std[k]:.4f}" for k in ("valid/recall@20", "valid/ndcg@20", "test/recall@10",
                                                             "test/ndcg@10", "test/recall@20", "test/ndcg@20")]
        ref = REFERENCE.get(row)
        vs = f"{mean['test/recall@20'] / ref[0] - 1:+.1%}" if ref else ""
        lines.append(f"| {row} | {len(e['per_seed'])} | " + " | ".join(cells)
                     + f" | {mean['epoch_time_s']:.2f} | {mean['peak_mem_mb']:.0f} | {vs} |")
    lines += ["", "Selected hyper-parameters per seed:", ""]
    for row, e in data["models"].items():
        lines.append(f"- {row}: " + "; ".join(f"seed {s}: {r['hparams']}" for s, r in e["per_seed"].items()))
    lines += ["", "RecBole 1.2.1 reference (test R@20 / N@20): "
              + ", ".join(f"{k} {r:.3f} / {n:.3f}" for k, (r, n) in REFERENCE.items()), ""]
    return "\n".join(lines)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(FAMILIES), help=f"comma list of {', '.join(FAMILIES)}")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--max-epochs", type=int, default=400)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--tune-seed-only", action="store_true",
                   help="search the grid on the first seed only and reuse its selection for the others")
    p.add_argument("--json", type=Path, default=RESULTS / "quality.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        names = [m for m in args.models.split(",") if m]
        unknown = [m for m in names if m not in FAMILIES]
        if unknown:
            raise MMKGError(f"unknown model family {unknown[0]!r} (expected one of {', '.join(FAMILIES)})")
        kg = read_recbole(find_data_dir(args.data_dir), "ml-100k")
        rows: dict[str, dict[str, dict]] = {}
        for seed in (int(s) for s in args.seeds.split(",")):
            fold = make_fold(kg, seed)
            for name in names:
                fam = FAMILIES[name]
                chosen = rows.get(fam.row)
                grid = [next(iter(chosen.values()))["hparams"]] if chosen and args.tune_seed_only else None
                rows.setdefault(fam.row, {})[str(seed)] = run_family(fam, fold, args, print, grid)
                data = merge(args.json, {fam.row: rows[fam.row]})
                _write(args.json.with_suffix(".md"), render(data))
    except MMKGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
