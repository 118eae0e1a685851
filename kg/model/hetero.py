"""Conversions of a :class:`~kg.model.graph.KnowledgeGraph` to PyG ``HeteroData`` and networkx."""

from __future__ import annotations

import re
import warnings

import networkx as nx
import numpy as np
import torch

with warnings.catch_warnings():  # PyG 2.8 calls the deprecated torch.jit.script while it imports
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=FutureWarning)
    from torch_geometric.data import HeteroData

from kg.model.core import INTERACTION_RELATION, NODE_TYPES, GraphCore, Interactions

REVERSE_PREFIX = "rev_"


def relation_key(name: str) -> str:
    """A relation name usable as a PyG edge-type / ``ModuleDict`` key (``film.film.genre`` -> ``film_film_genre``)."""
    key = re.sub(r"\W", "_", name)
    return key if key and not key[0].isdigit() else f"r_{key}"


def to_hetero_data(kg: GraphCore, interactions: Interactions | None = None) -> HeteroData:
    """Build a PyG ``HeteroData``.

    Node types ``user``, ``item``, ``entity`` (``num_nodes`` set). Every relation
    ``(src, name, dst)`` becomes edge type ``(src, relation_key(name), dst)`` with
    ``edge_index`` ``[2, E]``, plus its explicit reverse ``(dst, 'rev_' + key, src)``.
    Interactions become ``('user', 'rates', 'item')`` with ``rating`` and ``timestamp``
    ``[E]`` (NaN where unknown) and the reverse ``('item', 'rev_rates', 'user')``.

    Args:
        kg: the knowledge graph.
        interactions: the interactions to include (e.g. only the training split);
            defaults to all of them.

    ``data.relation_names`` maps each edge-type key back to the relation's name.
    """
    data = HeteroData()
    for t in NODE_TYPES:
        data[t].num_nodes = kg.num_nodes(t)
    names: dict[str, str] = {}
    for src_t, rel, dst_t in kg.edge_types():
        src, dst = kg.triples((src_t, rel, dst_t))
        key = relation_key(rel)
        names[key] = rel
        names[REVERSE_PREFIX + key] = REVERSE_PREFIX + rel
        ei = torch.from_numpy(np.stack([src, dst]))
        data[src_t, key, dst_t].edge_index = ei
        data[dst_t, REVERSE_PREFIX + key, src_t].edge_index = ei.flip(0)
    inter = kg.interactions() if interactions is None else interactions
    ei = torch.from_numpy(np.stack([inter.user, inter.item]).astype(np.int64))
    store = data["user", INTERACTION_RELATION, "item"]
    store.edge_index = ei
    store.rating = torch.from_numpy(inter.rating.astype(np.float32))
    store.timestamp = torch.from_numpy(inter.timestamp.astype(np.float64))
    data["item", REVERSE_PREFIX + INTERACTION_RELATION, "user"].edge_index = ei.flip(0)
    names[INTERACTION_RELATION] = INTERACTION_RELATION
    names[REVERSE_PREFIX + INTERACTION_RELATION] = REVERSE_PREFIX + INTERACTION_RELATION
    data.relation_names = names
    return data


def to_networkx(kg: GraphCore) -> nx.MultiDiGraph:
    """A ``MultiDiGraph`` whose nodes are ``(node_type, index)`` with attributes ``id`` and
    ``name``, and whose edges carry ``relation`` (interactions: ``'rates'`` with ``rating``)."""
    g = nx.MultiDiGraph()
    for t in NODE_TYPES:
        ids = kg.ids(t)
        g.add_nodes_from(((t, i), {"id": ids[i], "name": kg.display_name(t, i)}) for i in range(len(ids)))
    for src_t, rel, dst_t in kg.edge_types():
        src, dst = kg.triples((src_t, rel, dst_t))
        pairs = zip(src.tolist(), dst.tolist(), strict=True)
        g.add_edges_from(((src_t, s), (dst_t, d), {"relation": rel}) for s, d in pairs)
    inter = kg.interactions()
    g.add_edges_from(
        (("user", u), ("item", i), {"relation": INTERACTION_RELATION, "rating": r})
        for u, i, r in zip(inter.user.tolist(), inter.item.tolist(), inter.rating.tolist(), strict=True)
    )
    return g
