"""Where an explanation's score drop comes from: every path the search finds is scored (not only the candidates).

For each recommendation ``(u, i)`` of a sample, :func:`attribution_row` masks every found path and reports the
best path's drop, the best path through a KG relation, and the drop of the best path's first hop alone (the
user's own interaction or profile edge). :func:`summarize` turns the rows into shares and ratios:

* ``exhaustive_kg_top_share``: share of recommendations whose best path over ALL found paths goes through a KG
  relation (the candidate pick of the explainer cannot do better than this);
* ``exhaustive_kg_top3_share``: share whose 3 best paths over all found paths (positive drops) include one
  through a KG relation (an explanation returns 3 paths);
* ``first_hop_drop_share``: mean of (first hop alone / best path) drops: how much the rest of a path adds;
* ``kg_best_drop_ratio``: mean of (best KG path / best path) drops, over recommendations with a KG path;
* ``kg_within_90``: share of recommendations with a KG path of at least 0.9 x the best path's drop.

``benchmarks/explain.py`` runs it on the first ``--exhaustive`` recommendations.
"""

from __future__ import annotations

import numpy as np

from kg.model.graph import INTERACTION_RELATION
from kg.paths.path_search import path_pairs

TOP = 3  # paths an explanation returns (Explainer.explain's default)


def attribution_row(explainer, user: int, item: int, search: dict) -> dict | None:  # noqa: ANN001 (Explainer)
    """Drops of every path between ``user`` and ``item`` (None when no path lowers the score)."""
    paths = explainer.index.find_paths(user, item, **search).paths
    if not paths:
        return None
    drops = np.asarray(explainer.drops(user, item, paths))
    best = int(drops.argmax())
    if drops[best] <= 0:
        return None
    is_kg = np.array([any(r != INTERACTION_RELATION for r, _ in p.steps) for p in paths])
    top3 = np.argsort(-drops, kind="stable")[:TOP]
    base = float(explainer.scores(user)[item])
    first = base - explainer.masked(user, item, [[path_pairs(paths[best])[0]]])[0]
    return {"paths": len(paths), "kg_paths": int(is_kg.sum()), "best": float(drops[best]),
            "best_is_kg": bool(is_kg[best]), "kg_in_top3": bool(is_kg[top3[drops[top3] > 0]].any()),
            "best_kg": float(drops[is_kg].max()) if is_kg.any() else None,
            "first_hop": float(first)}


def summarize(rows: list[dict]) -> dict:
    """Shares and mean ratios over the rows of :func:`attribution_row` (see the module docstring)."""
    if not rows:
        return {"exhaustive_recommendations": 0}
    best = np.array([r["best"] for r in rows])
    kg = np.array([np.nan if r["best_kg"] is None else r["best_kg"] for r in rows])
    has = ~np.isnan(kg)
    return {"exhaustive_recommendations": len(rows),
            "exhaustive_kg_top_share": float(np.mean([r["best_is_kg"] for r in rows])),
            "exhaustive_kg_top3_share": float(np.mean([r["kg_in_top3"] for r in rows])),
            "first_hop_drop_share": float(np.mean([r["first_hop"] for r in rows] / best)),
            "kg_best_drop_ratio": float(np.mean(kg[has] / best[has])) if has.any() else None,
            "kg_within_90": float(np.mean(np.where(has, np.nan_to_num(kg) >= 0.9 * best, False))),
            "mean_paths_scored": float(np.mean([r["paths"] for r in rows])),
            "mean_kg_paths": float(np.mean([r["kg_paths"] for r in rows]))}


def render_lines(s: dict) -> list[str]:
    """Markdown lines for ``explain.md``."""
    if not s.get("exhaustive_recommendations"):
        return []
    ratio = s["kg_best_drop_ratio"]
    return ["## Every found path scored", "",
            f"The first {s['exhaustive_recommendations']} recommendations, each of its found paths masked "
            f"(on average {s['mean_paths_scored']:.0f}, {s['mean_kg_paths']:.0f} through a KG relation):", "",
            "| measure | value |", "|---|---|",
            f"| best of all paths goes through a KG relation | {s['exhaustive_kg_top_share']:.1%} |",
            f"| one of the {TOP} best of all paths goes through a KG relation | {s['exhaustive_kg_top3_share']:.1%} |",
            f"| a KG path within 0.9 x the best path's drop | {s['kg_within_90']:.1%} |",
            f"| best KG path's drop / best path's drop (mean) | {'-' if ratio is None else f'{ratio:.2f}'} |",
            f"| best path's first hop alone / the whole path (mean) | {s['first_hop_drop_share']:.2f} |", ""]
