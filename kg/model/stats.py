"""Summary statistics of a :class:`~kg.model.graph.KnowledgeGraph` (``python -m kg stats DIR``)."""

from __future__ import annotations

import numpy as np

from kg.model.graph import NODE_TYPES, KnowledgeGraph


def kg_stats(kg: KnowledgeGraph) -> dict:
    """Counts describing ``kg``.

    Keys: ``nodes`` (type -> count); ``relations`` (list of ``{relation, src, dst, edges}``, sorted
    by relation then types); ``relation_edges`` (total, deduplicated); ``interactions`` (``count``,
    ``with_rating``, ``with_timestamp``, ``users``, ``items``: distinct users / items that have one);
    ``degree`` (type -> ``{min, median, mean, max}`` over relation and interaction edges, both ends
    counted); ``isolated`` (type -> nodes of degree 0); ``items_without_text``; ``items_without_image``.
    """
    degree = {t: np.zeros(kg.num_nodes(t), dtype=np.int64) for t in NODE_TYPES}
    relations = []
    for src_t, rel, dst_t in kg.edge_types():
        s, d = kg.triples((src_t, rel, dst_t))
        relations.append({"relation": rel, "src": src_t, "dst": dst_t, "edges": int(s.shape[0])})
        degree[src_t] += np.bincount(s, minlength=degree[src_t].shape[0])
        degree[dst_t] += np.bincount(d, minlength=degree[dst_t].shape[0])
    relations.sort(key=lambda r: (r["relation"], r["src"], r["dst"]))
    inter = kg.interactions()
    degree["user"] += np.bincount(inter.user, minlength=degree["user"].shape[0])
    degree["item"] += np.bincount(inter.item, minlength=degree["item"].shape[0])
    summary = {}
    for t, deg in degree.items():
        if deg.shape[0]:
            summary[t] = {"min": int(deg.min()), "median": float(np.median(deg)), "mean": float(deg.mean()),
                          "max": int(deg.max())}
    n_items = kg.num_nodes("item")
    return {
        "nodes": {t: kg.num_nodes(t) for t in NODE_TYPES},
        "relations": relations,
        "relation_edges": sum(r["edges"] for r in relations),
        "relation_edges_by_namespace": _edges_by_namespace(kg, relations),
        "interactions": {
            "count": len(inter),
            "with_rating": int(np.count_nonzero(~np.isnan(inter.rating))),
            "with_timestamp": int(np.count_nonzero(~np.isnan(inter.timestamp))),
            "users": int(np.unique(inter.user).shape[0]),
            "items": int(np.unique(inter.item).shape[0]),
        },
        "degree": summary,
        "isolated": {t: int(np.count_nonzero(deg == 0)) for t, deg in degree.items()},
        "items_without_text": sum(1 for i in range(n_items) if not any(kg.node_text("item", i).values())),
        "items_without_image": n_items - sum(1 for i in kg.images["item"] if 0 <= i < n_items),
    }


def _namespace(iri: str) -> str:
    """The namespace of a predicate IRI: everything up to its last '#' or '/' ('' for a bare name)."""
    cut = max(iri.rfind("#"), iri.rfind("/"))
    return iri[: cut + 1] if cut >= 0 else ""


def _edges_by_namespace(kg: KnowledgeGraph, relations: list[dict]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for r in relations:
        ns = _namespace(kg.relation_iris.get(r["relation"], r["relation"])) or "(no namespace)"
        totals[ns] = totals.get(ns, 0) + r["edges"]
    return dict(sorted(totals.items()))


def format_stats(stats: dict) -> str:
    """A plain-text rendering of :func:`kg_stats`'s dict."""
    nodes = stats["nodes"]
    inter = stats["interactions"]
    lines = [
        "nodes: " + ", ".join(f"{t} {n:,}" for t, n in nodes.items()) + f" (total {sum(nodes.values()):,})",
        f"relation edges: {stats['relation_edges']:,} in {len(stats['relations'])} edge types",
    ]
    if stats["relations"]:
        width = max(len(r["relation"]) for r in stats["relations"])
        lines += [f"  {r['relation']:<{width}}  {r['src']:>6} -> {r['dst']:<6} {r['edges']:>12,}"
                  for r in stats["relations"]]
    for ns, n in stats.get("relation_edges_by_namespace", {}).items():
        lines.append(f"  namespace {ns}: {n:,} edges")
    lines.append(f"interactions: {inter['count']:,} (with rating {inter['with_rating']:,}, with timestamp "
                 f"{inter['with_timestamp']:,}; {inter['users']:,} users, {inter['items']:,} items)")
    lines.append("degree (relations + interactions):")
    for t, d in stats["degree"].items():
        lines.append(f"  {t:<6} min {d['min']:,}  median {d['median']:g}  mean {d['mean']:.2f}  max {d['max']:,}  "
                     f"isolated {stats['isolated'][t]:,}")
    lines.append(f"items without text: {stats['items_without_text']:,}; "
                 f"items without image: {stats['items_without_image']:,}")
    return "\n".join(lines)
