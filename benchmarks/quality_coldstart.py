"""The cold-start rows of benchmarks/quality.py: the full model's variants on the cold-item split (10 % of the
items held out with all their interactions) against content-kNN, random and an oracle ceiling, and each of the
full model's variants and content-kNN plus a content -> popularity prior (gnn/popularity_prior.py: a ridge fit
on the warm items' training counts), added as ``beta`` times the standardised prior to the per-user
standardised score, ``beta`` chosen on the validation cold items (:data:`BETAS`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.quality_runs import COMMON, FULL, ON, PREV, train_run

ITEM_ID_DROPOUT = 0.5  # the cold-start variant's DropoutNet rate (set once, not tuned)
COLD_VARIANTS = {  # the full model's cold-start variants (all components on), selected on cold validation
    "full model (all components)": {},
    f"full model (all components, item-ID dropout {ITEM_ID_DROPOUT})": {"item_id_dropout": ITEM_ID_DROPOUT},
    "full model, content only (use_id=false)": {"use_id": False},
}
BETAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # the prior's weight, selected on cold validation R@20
PRIOR = "content popularity prior"
ORACLE = "oracle: the cold items' own interaction counts (reads the answers; a ceiling, not a model)"
COLD_KEY = "cold items never negatives"  # runs before this sampler change drew cold items as negatives


def cold_start(kg_dir: Path, seed: int) -> dict:
    """Cold-item split: Recall/NDCG@20 of each model ranking only the cold items of one part, for the users
    who interacted with them: ``cold/...`` the test cold items, ``cold valid/...`` the validation cold items
    (what selects among the full model's variants), ``cold all/...`` every held-out item, relevance all
    their held-out pairs (validation and test: a second reading of the protocol, reported beside it)."""
    from safetensors.torch import load_file

    from encoders.features import load_features
    from evaluation.ranking import build_user_item_sets
    from gnn.content_knn import ContentKNN
    from gnn.popularity_features import item_entity_pairs, prior_features
    from gnn.popularity_prior import PopularityPrior, standardise
    from kg.model.graph import KnowledgeGraph
    from kg.model.splits import make_split

    kg = KnowledgeGraph.load(kg_dir)
    inter = kg.interactions()
    split = make_split(inter, "cold_item", seed=seed)
    train, valid, test = split.parts(inter)
    ni, nu = kg.num_nodes("item"), kg.num_nodes("user")
    feats = load_features(kg_dir / "features", kg)
    knn = ContentKNN(feats["item.text"], feats.get("item.text_mask"))
    knn.fit(torch.from_numpy(train.user), torch.from_numpy(train.item), nu, ni)
    gen = torch.Generator().manual_seed(seed)
    scorers = {"random": lambda u: torch.rand(u.numel(), ni, generator=gen), "content-kNN": knn.score}
    runs = {}
    for label, extra in COLD_VARIANTS.items():
        flags = {**COMMON, **FULL, **ON, **PREV, **extra, "split": "cold_item", "seed": seed, "split_seed": seed}
        runs[label] = m = train_run(kg_dir, flags, f"cold-s{seed}", key_extra=COLD_KEY)
        emb = load_file(str(Path(m["out"]) / "embeddings.safetensors"))
        scorers[label] = lambda u, e=emb: e["user_emb"][u] @ e["item_emb"].T
    out: dict = {"features": sorted(feats)}
    held_out = inter.subset(np.sort(np.concatenate([split.valid, split.test])))  # the other reading: every
    parts = {}  # held-out item a candidate
    for part, name in ((test, "cold"), (valid, "cold valid"), (held_out, "cold all")):
        cold = np.intersect1d(split.cold_items, part.item)
        keep = np.isin(part.item, cold)
        relevant = build_user_item_sets(part.user[keep], part.item[keep], nu, ni)
        users = torch.from_numpy(np.flatnonzero(relevant.lengths() > 0))
        not_cand = ~torch.isin(torch.arange(ni), torch.from_numpy(cold))
        parts[name] = (relevant, users, not_cand)
        if name == "cold":
            out |= {"cold_test_items": int(cold.size), "users": int(users.numel())}
        pop = torch.bincount(torch.from_numpy(part.item[keep]), minlength=ni).float()
        oracle = {ORACLE: lambda u, p=pop: p.expand(u.numel(), ni)}  # reads the part itself: a ceiling
        for label, fn in (scorers | oracle).items():
            out.setdefault(label, {}).update(_metrics(fn, name, *parts[name]))
    counts = torch.bincount(torch.from_numpy(train.item), minlength=ni)
    warm = counts > 0  # the cold items have no training interaction
    x, groups = prior_features(feats, item_entity_pairs(kg), counts, warm)
    fitted = PopularityPrior()
    prior = standardise(fitted.fit(x, counts, warm, groups))
    out[PRIOR] = {"features": x.shape[1], "l2 (leave-one-out on warm items)": fitted.l2}
    for part in parts:
        out[PRIOR] |= _metrics(lambda u: prior.expand(u.numel(), ni), part, *parts[part])
    for base in ["content-kNN", *COLD_VARIANTS]:
        grid = {b: _metrics(with_prior(scorers[base], prior, b), "cold valid", *parts["cold valid"]) for b in BETAS}
        beta = max(BETAS, key=lambda b: (grid[b]["cold valid/recall@20"], grid[b]["cold valid/ndcg@20"], -b))
        row = out[f"{base} + {PRIOR}"] = {"beta": beta, "cold valid/recall@20 by beta": {
            str(b): g["cold valid/recall@20"] for b, g in grid.items()}}
        for part in parts:
            row |= _metrics(with_prior(scorers[base], prior, beta), part, *parts[part])
    for label, m in runs.items():  # train.py's own test on the cold split: every item ranked, warm and cold pairs
        out[label] |= {"all-items test/recall@20": m["test"]["recall@20"], "run": m["out"]}
    best = out[ORACLE]["cold/recall@20"]
    for row in out.values():
        if isinstance(row, dict) and "cold/recall@20" in row:
            row["cold/recall@20 of oracle"] = row["cold/recall@20"] / best
    return out


def _metrics(fn, name: str, relevant, users: torch.Tensor, not_cand: torch.Tensor) -> dict[str, float]:
    """``{name/recall@20, name/ndcg@20}`` of ``fn`` ranking only the candidates (``not_cand`` False)."""
    from evaluation.metrics import ranking_metrics
    from evaluation.ranking import rank_all_items

    ni = not_cand.numel()
    top = rank_all_items(lambda u: fn(u).masked_fill(not_cand, float("-inf")), users, ni, None, 20)
    means = ranking_metrics(top, relevant, (20,), users=users.numpy()).means()
    return {f"{name}/recall@20": means["recall@20"], f"{name}/ndcg@20": means["ndcg@20"]}


def with_prior(score_fn, prior: torch.Tensor, beta: float):
    """``users -> [B, I]``: ``score_fn``'s scores standardised per user over the catalogue (a constant row
    becomes zeros) plus ``beta`` times the (standardised) ``prior`` ``[I]``."""
    def score(users: torch.Tensor) -> torch.Tensor:
        s = score_fn(users)
        z = (s - s.mean(1, keepdim=True)) / s.std(1, unbiased=False, keepdim=True).clamp(min=1e-9)
        return z + beta * prior

    return score
