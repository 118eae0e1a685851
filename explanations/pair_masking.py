"""Explanation paths as graph edits: the inputs without every edge between two consecutive nodes of a path
(interactions, KG triples both ways, profile edges, parallel edges included); what :mod:`explanations.scoring`
scores a path by."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import torch
from torch import Tensor

from gnn.adjacency import normalized_bipartite_adjacency
from gnn.graph_inputs import GraphInputs, _user_content
from kg.paths.path_search import Node

Pairs = list[tuple[Node, Node]]


def split_pairs(pairs: Iterable[tuple[Node, Node]], n_items: int) -> tuple[set, set, set]:
    """``(interactions {(u, i)}, profile {(u, e)}, KG {(a, b)} in the knowledge index space [I+N])``."""
    inter, prof, kgp = set(), set(), set()
    for a, b in pairs:
        (ta, ia), (tb, ib) = sorted((a, b))  # "entity" < "item" < "user"
        if (ta, tb) == ("item", "user"):
            inter.add((ib, ia))
        elif (ta, tb) == ("entity", "user"):
            prof.add((ib, ia))
        elif tb != "user":
            x, y = ia + (n_items if ta == "entity" else 0), ib + (n_items if tb == "entity" else 0)
            kgp.add((min(x, y), max(x, y)))
    return inter, prof, kgp


def _keep(a: Tensor, b: Tensor, n: int, pairs: set, ordered: bool = True) -> Tensor:
    a, b = (a, b) if ordered else (torch.minimum(a, b), torch.maximum(a, b))
    return ~torch.isin((a * n + b).cpu(), torch.tensor([x * n + y for x, y in pairs], dtype=torch.long))


def mask_pairs(inputs: GraphInputs, pairs: Iterable[tuple[Node, Node]]) -> GraphInputs:
    """``inputs`` without any edge between the given node pairs: training interactions (``ui_adj`` and the
    user content aggregate rebuilt), KG triples in both directions and user-profile edges."""
    ni = inputs.num_items
    inter, prof, kgp = split_pairs(pairs, ni)
    changes: dict = {"train_user": inputs.train_user.clone()}  # a new object: model caches keyed on it refresh
    if inter:
        keep = _keep(inputs.train_user, inputs.train_item, ni, inter)
        tu, ti = inputs.train_user.cpu()[keep], inputs.train_item.cpu()[keep]
        changes.update(train_user=tu, train_item=ti,
                       ui_adj=normalized_bipartite_adjacency(tu.numpy(), ti.numpy(), inputs.num_users, ni))
        if inputs.user_content is not None:
            changes.update(zip(("user_content", "user_content_mask"),
                               _user_content(inputs.features, tu, ti, inputs.num_users), strict=True))
    if kgp:
        keep = _keep(inputs.kg_head, inputs.kg_tail, inputs.num_kg_nodes, kgp, ordered=False)
        changes.update({k: getattr(inputs, k)[keep] for k in ("kg_head", "kg_tail", "kg_rel")})
    if prof:
        keep = _keep(inputs.profile_user, inputs.profile_entity, max(inputs.num_entities, 1), prof)
        changes.update({k: getattr(inputs, k)[keep] for k in ("profile_user", "profile_entity", "profile_rel")})
    return replace(inputs, **changes)
