"""Exact masked scores with item-item graphs (:class:`explanations.scoring.MaskedScores`): how masking KG
item-entity pairs changes the item-graph term, through a rank-1 update of the co-entity weights per pair."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from gnn.adjacency import transpose_csr


def item_graph_deltas(ms, kgps: list[set]) -> list[tuple[Tensor, Tensor]]:
    """Per mask of ``ms`` (a MaskedScores): changed items and their item-graph term change when KG item-entity
    pairs are masked:
    the co-entity weights updated (``W - idf(e) 1_S 1_S^T + idf'(e) 1_S' 1_S'^T`` per masked pair), its top-k
    graph rebuilt; the feature graphs do not change."""
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
    base = prop.graphs(ms.inp)
    if getattr(ms, "co_edges", None) is None:  # the unmasked top-k edges, each row's kept when it is unchanged
        ms.co_edges = top_k_edges(ms.co_w, prop.k)
    for c, kgp in enumerate(kgps):
        hits = [(a, b) for a, b in sorted(kgp) if a < ni <= b and a in ms.ent_items.get(b, ())]
        if not hits:
            continue
        # only the rows of the masked entities' items change: their weights, then their top-k
        changed = torch.tensor(sorted(set().union(*(ms.ent_items[e] for _, e in hits))), dtype=torch.long)
        w, members = ms.co_w[changed], {}
        for a, e in hits:
            s = members.setdefault(e, sorted(ms.ent_items[e]))
            rest = [i for i in s if i != a]
            idx, rest_t = torch.tensor(s, dtype=torch.long), torch.tensor(rest, dtype=torch.long)
            pos, rest_pos = torch.searchsorted(changed, idx), torch.searchsorted(changed, rest_t)
            w[pos.unsqueeze(1), idx] -= math.log(ni / max(len(s), 1))
            w[rest_pos.unsqueeze(1), rest_t] += math.log(ni / max(len(rest), 1))
            members[e] = rest
        new_r, new_c = top_k_edges(w, prop.k, rows=changed)
        keep = ~np.isin(ms.co_edges[0], changed.numpy())
        a_kg = symmetric_normalized(np.concatenate([ms.co_edges[0][keep], new_r]),
                                    np.concatenate([ms.co_edges[1][keep], new_c]), ni)
        graphs = {**base, "kg": (a_kg, transpose_csr(a_kg), torch.diff(a_kg.crow_indices()) > 0)}
        with torch.no_grad():
            diff = prop.weight * prop.propagate(ms.item_kg, ms.inp, graphs)[0] - ms.ig
        items = torch.nonzero(diff.abs().sum(1) > 0).flatten()
        out[c] = (items, diff[items])
    return out
