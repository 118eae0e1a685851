"""Exact masked scores with item-item graphs (:class:`explanations.scoring.MaskedScores`): how masking KG
pairs changes the item-graph term, through the KG propagation's changed items and a rank-1 update of the
co-entity weights per masked item-entity pair."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from gnn.adjacency import sparse_mm


def item_graph_deltas(ms, kgps: list[set], kg_deltas: list[tuple[Tensor, Tensor]] | None = None
                      ) -> list[tuple[Tensor, Tensor]]:
    """Per mask of ``ms`` (a MaskedScores): changed items and the change of their propagation input rows
    (``item_kg`` plus the item-graph term) when KG pairs are masked. ``kg_deltas`` are the masks' changes of
    ``item_kg`` by the KG propagation (items, rows; none without it); masked item-entity pairs also change the
    co-entity weights (``W - idf(e) 1_S 1_S^T + idf'(e) 1_S' 1_S'^T`` per pair), whose top-k graph is rebuilt.
    Each graph whose input or edges changed is propagated again, and only the items whose view changed are
    fused again."""
    empty = (torch.zeros(0, dtype=torch.long), ms.x[:0])
    kg_deltas = kg_deltas or [empty] * len(kgps)
    prop = ms.m.item_graphs
    if ms.ig is None:
        return kg_deltas
    if getattr(ms, "ig_views", None) is None:  # each graph's unmasked view and has-edges mask, once
        with torch.no_grad():
            ms.ig_views = prop.views(ms.item_kg, ms.inp)
    out = []
    for kgp, (items, delta) in zip(kgps, kg_deltas, strict=True):
        a_kg = _masked_co_entity_graph(ms, kgp) if "kg" in prop.names else None
        if not items.numel() and a_kg is None:
            out.append(empty)
            continue
        with torch.no_grad():
            x = ms.item_kg.index_add(0, items, delta) if items.numel() else ms.item_kg
            views, masks = list(ms.ig_views[0]), list(ms.ig_views[1])
            moved = [items]
            for g, (name, (a, _, has)) in enumerate(prop.graphs(ms.inp).items()):
                if name == "kg" and a_kg is not None:
                    a, has = a_kg, torch.diff(a_kg.crow_indices()) > 0
                elif not items.numel():
                    continue  # neither its input nor its edges changed
                h = x
                for _ in range(prop.layers):
                    h = sparse_mm(a, h)
                moved.append(torch.nonzero((h != views[g]).any(1) | (has != masks[g])).flatten())
                views[g], masks[g] = h, has
            rows = torch.unique(torch.cat(moved))  # items fuse independently: only the rows that changed
            new = x[rows] + prop.weight * prop.fuse([v[rows] for v in views], [m[rows] for m in masks])[0]
            diff = new - (ms.item_kg[rows] + ms.ig[rows])
        hit = diff.abs().sum(1) > 0
        out.append((rows[hit], diff[hit]))
    return out


def _masked_co_entity_graph(ms, kgp: set) -> Tensor | None:
    """The co-entity graph with the item-entity pairs of ``kgp`` masked (``None``: none of them is one); only
    the rows of the masked entities' items change: their weights, then their top-k."""
    from gnn.item_item_graphs import co_entity_weights, symmetric_normalized, top_k_edges

    ni, k = ms.inp.num_items, ms.m.item_graphs.k
    if getattr(ms, "co_w", None) is None:  # the dense co-entity weights, each entity's items, the top-k edges
        ms.co_w = torch.from_numpy(co_entity_weights(ms.inp.kg_head, ms.inp.kg_tail, ni).toarray())
        h, t = ms.inp.kg_head, ms.inp.kg_tail
        pair = torch.unique(h[(h < ni) & (t >= ni)] * ms.inp.num_kg_nodes + t[(h < ni) & (t >= ni)])
        ms.ent_items = {}
        for i, e in zip((pair // ms.inp.num_kg_nodes).tolist(), (pair % ms.inp.num_kg_nodes).tolist(),
                        strict=True):
            ms.ent_items.setdefault(e, set()).add(i)
        ms.co_edges = top_k_edges(ms.co_w, k)
    hits = [(a, b) for a, b in sorted(kgp) if a < ni <= b and a in ms.ent_items.get(b, ())]
    if not hits:
        return None
    changed = torch.tensor(sorted(set().union(*(ms.ent_items[e] for _, e in hits))), dtype=torch.long)
    w, members = ms.co_w[changed], {}
    for a, e in hits:  # rank-1 updates of the rows and columns of the entity's items
        s = members.setdefault(e, sorted(ms.ent_items[e]))
        rest = [i for i in s if i != a]
        for group, sign in ((s, -1.0), (rest, 1.0)):
            col = torch.zeros(ni, dtype=w.dtype).index_fill_(0, torch.tensor(group, dtype=torch.long), 1.0)
            w.addr_(col[changed], col, alpha=sign * math.log(ni / max(len(group), 1)))
        members[e] = rest
    new_r, new_c = top_k_edges(w, k, rows=changed)
    keep = ~np.isin(ms.co_edges[0], changed.numpy())
    return symmetric_normalized(np.concatenate([ms.co_edges[0][keep], new_r]),
                                np.concatenate([ms.co_edges[1][keep], new_c]), ni)
