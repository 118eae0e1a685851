"""Exact masked scores with item-item graphs (:class:`explanations.scoring.MaskedScores`): how masking KG
item-entity pairs changes the item-graph term, through a rank-1 update of the co-entity weights per pair."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from gnn.adjacency import sparse_mm


def item_graph_deltas(ms, kgps: list[set]) -> list[tuple[Tensor, Tensor]]:
    """Per mask of ``ms`` (a MaskedScores): changed items and their item-graph term change when KG item-entity
    pairs are masked:
    the co-entity weights updated (``W - idf(e) 1_S 1_S^T + idf'(e) 1_S' 1_S'^T`` per masked pair), its top-k
    graph rebuilt and propagated; the feature graphs' views do not change, and only the items whose KG view
    changed are fused again."""
    from gnn.item_item_graphs import co_entity_weights, symmetric_normalized, top_k_edges

    out = [(torch.zeros(0, dtype=torch.long), ms.x[:0])] * len(kgps)
    prop, ni = ms.m.item_graphs, ms.inp.num_items
    if ms.ig is None or "kg" not in prop.names:
        return out
    if getattr(ms, "co_w", None) is None:  # the dense co-entity weights and each entity's items, once
        ms.co_w = torch.from_numpy(co_entity_weights(ms.inp.kg_head, ms.inp.kg_tail, ni).toarray())
        h, t = ms.inp.kg_head, ms.inp.kg_tail
        pair = torch.unique(h[(h < ni) & (t >= ni)] * ms.inp.num_kg_nodes + t[(h < ni) & (t >= ni)])
        ms.ent_items = {}
        for i, e in zip((pair // ms.inp.num_kg_nodes).tolist(), (pair % ms.inp.num_kg_nodes).tolist(),
                        strict=True):
            ms.ent_items.setdefault(e, set()).add(i)
    if getattr(ms, "ig_views", None) is None:  # each graph's unmasked view and has-edges mask, once
        with torch.no_grad():
            ms.ig_views = prop.views(ms.item_kg, ms.inp)
    if getattr(ms, "co_edges", None) is None:  # the unmasked top-k edges, each row's kept when it is unchanged
        ms.co_edges = top_k_edges(ms.co_w, prop.k)
    views, masks = ms.ig_views
    at = prop.names.index("kg")
    for c, kgp in enumerate(kgps):
        hits = [(a, b) for a, b in sorted(kgp) if a < ni <= b and a in ms.ent_items.get(b, ())]
        if not hits:
            continue
        # only the rows of the masked entities' items change: their weights, then their top-k
        changed = torch.tensor(sorted(set().union(*(ms.ent_items[e] for _, e in hits))), dtype=torch.long)
        w, members = ms.co_w[changed], {}
        for a, e in hits:  # rank-1 updates of the rows and columns of the entity's items
            s = members.setdefault(e, sorted(ms.ent_items[e]))
            rest = [i for i in s if i != a]
            for group, sign in ((s, -1.0), (rest, 1.0)):
                col = torch.zeros(ni, dtype=w.dtype).index_fill_(0, torch.tensor(group, dtype=torch.long), 1.0)
                w.addr_(col[changed], col, alpha=sign * math.log(ni / max(len(group), 1)))
            members[e] = rest
        new_r, new_c = top_k_edges(w, prop.k, rows=changed)
        keep = ~np.isin(ms.co_edges[0], changed.numpy())
        a_kg = symmetric_normalized(np.concatenate([ms.co_edges[0][keep], new_r]),
                                    np.concatenate([ms.co_edges[1][keep], new_c]), ni)
        with torch.no_grad():  # the KG graph's new view; the other graphs' views do not change
            h = ms.item_kg
            for _ in range(prop.layers):
                h = sparse_mm(a_kg, h)
            has = torch.diff(a_kg.crow_indices()) > 0
            rows = torch.nonzero((h != views[at]).any(1) | (has != masks[at])).flatten()
            vs, ms_ = [v[rows] for v in views], [m[rows] for m in masks]
            vs[at], ms_[at] = h[rows], has[rows]  # items fuse independently: only the rows that changed
            diff = prop.weight * prop.fuse(vs, ms_)[0] - ms.ig[rows]
        moved = diff.abs().sum(1) > 0
        out[c] = (rows[moved], diff[moved])
    return out
