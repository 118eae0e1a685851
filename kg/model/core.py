"""The typed knowledge graph's data: nodes, relations, text, images, interactions (no conversions).

:class:`GraphCore` holds it; :class:`kg.model.graph.KnowledgeGraph` adds saving, loading and the PyG /
networkx conversions, which live in :mod:`kg.model.storage` and :mod:`kg.model.hetero` (both import this
module only, so the three form no import circle).

Nodes have one of three types (``user``, ``item``, ``entity``) and an external id
(an IRI, a database id or a table key) mapped to a contiguous index per type.
Typed relations link nodes: ``(src_type, relation, dst_type)`` with ``relation``
named after its predicate / relationship type. Interactions (user -> item, with
optional rating and timestamp) are kept apart from the relations, since training
splits them. Nodes carry text fields (label, description, ...) and image references.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from kg.errors import MMKGError

NODE_TYPES: tuple[str, ...] = ("user", "item", "entity")
INTERACTION_RELATION = "rates"
"""Name of the user -> item interaction edge type in ``KnowledgeGraph.to_hetero_data``."""

EdgeType = tuple[str, str, str]


@dataclass(frozen=True)
class Interactions:
    """Arrays of equal length ``[E]``: user / item indices, rating (NaN where unknown)
    and timestamp (NaN where unknown)."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray

    def __len__(self) -> int:
        return int(self.user.shape[0])

    def subset(self, index: np.ndarray) -> Interactions:
        """The interactions at ``index`` (an integer or boolean array)."""
        return Interactions(self.user[index], self.item[index], self.rating[index], self.timestamp[index])


class GraphCore:
    """A knowledge graph of users, items and entities with typed relations and interactions."""

    def __init__(self) -> None:
        self._ids: dict[str, list[str]] = {t: [] for t in NODE_TYPES}
        self._index: dict[str, dict[str, int]] = {t: {} for t in NODE_TYPES}
        # text[ntype][index][field] -> list of values, in insertion order
        self.text: dict[str, dict[int, dict[str, list[str]]]] = {t: {} for t in NODE_TYPES}
        # images[ntype][index] -> path or IRI of the node's image
        self.images: dict[str, dict[int, str]] = {t: {} for t in NODE_TYPES}
        # relation name -> its full identifier (predicate IRI, relationship type)
        self.relation_iris: dict[str, str] = {}
        self._triples: dict[EdgeType, tuple[list[int], list[int]]] = {}
        self._unique: dict[EdgeType, tuple[np.ndarray, np.ndarray]] = {}  # deduplicated arrays, per edge type
        self._inter: tuple[list[int], list[int], list[float], list[float]] = ([], [], [], [])

    # ----------------------------------------------------------------- nodes
    def add_node(self, ntype: str, ext_id: str) -> int:
        """Index of node ``ext_id`` of type ``ntype``, creating it when new."""
        index = self._index[ntype]
        i = index.get(ext_id)
        if i is None:
            i = len(index)
            index[ext_id] = i
            self._ids[ntype].append(ext_id)
        return i

    def index_of(self, ntype: str, ext_id: str) -> int:
        """Index of an existing node; raises :class:`MMKGError` naming an unknown id."""
        self._check_type(ntype)
        try:
            return self._index[ntype][ext_id]
        except KeyError:
            raise MMKGError(f"unknown {ntype} id {ext_id!r}") from None

    def has_node(self, ntype: str, ext_id: str) -> bool:
        return ext_id in self._index[ntype]

    def ids(self, ntype: str) -> list[str]:
        """External ids of ``ntype`` in index order (do not mutate)."""
        return self._ids[ntype]

    def num_nodes(self, ntype: str) -> int:
        return len(self._ids[ntype])

    def node_type_of(self, ext_id: str) -> str | None:
        """The type of a node known by its external id, or ``None``."""
        for t in NODE_TYPES:
            if ext_id in self._index[t]:
                return t
        return None

    def add_text(self, ntype: str, ext_id: str, field: str, value: str) -> None:
        """Attach a text value (label, description, ...) to a node; repeated values accumulate."""
        i = self.add_node(ntype, ext_id)
        values = self.text[ntype].setdefault(i, {}).setdefault(field, [])
        if value not in values:
            values.append(value)

    def set_image(self, ntype: str, ext_id: str, ref: str) -> None:
        """Set the image (file path or IRI) of a node."""
        self.images[ntype][self.add_node(ntype, ext_id)] = ref

    def node_text(self, ntype: str, index: int) -> dict[str, list[str]]:
        return self.text[ntype].get(index, {})

    def display_name(self, ntype: str, index: int) -> str:
        """A human-readable name: the first label-like text field, else the external id."""
        fields = self.node_text(ntype, index)
        for key in ("label", "name", "title"):
            if fields.get(key):
                return fields[key][0]
        return self._ids[ntype][index]

    # -------------------------------------------------------------- relations
    def add_triple(self, src_type: str, src_id: str, relation: str, dst_type: str, dst_id: str) -> None:
        """Add the edge ``src -relation-> dst``, creating both nodes when new."""
        s = self.add_node(src_type, src_id)
        d = self.add_node(dst_type, dst_id)
        lists = self._triples.get((src_type, relation, dst_type))
        if lists is None:
            lists = self._triples[(src_type, relation, dst_type)] = ([], [])
            self.relation_iris.setdefault(relation, relation)
        lists[0].append(s)
        lists[1].append(d)
        self._unique.pop((src_type, relation, dst_type), None)

    def add_triples(self, etype: EdgeType, src: Iterable[int], dst: Iterable[int]) -> None:
        """Add edges of one type by node index (nodes must exist)."""
        lists = self._triples.setdefault(etype, ([], []))
        self.relation_iris.setdefault(etype[1], etype[1])
        lists[0].extend(np.asarray(src, dtype=np.int64).tolist())
        lists[1].extend(np.asarray(dst, dtype=np.int64).tolist())
        self._unique.pop(etype, None)

    def edge_types(self) -> list[EdgeType]:
        """Relation edge types (not interactions), sorted."""
        return sorted(k for k, v in self._triples.items() if v[0])

    def triples(self, etype: EdgeType) -> tuple[np.ndarray, np.ndarray]:
        """``(src, dst)`` index arrays ``[E]`` of one relation edge type, deduplicated."""
        cached = self._unique.get(etype)
        if cached is None:
            src, dst = self._triples[etype]
            n = max(self.num_nodes(etype[2]), 1)
            key = np.unique(np.asarray(src, dtype=np.int64) * n + np.asarray(dst, dtype=np.int64))
            cached = self._unique[etype] = (key // n, key % n)
        return cached

    def iter_triples(self) -> Iterator[tuple[str, str, str, str, str]]:
        """Every relation edge as ``(src_type, src_id, relation, dst_type, dst_id)``."""
        for etype in self.edge_types():
            s_ids, d_ids = self._ids[etype[0]], self._ids[etype[2]]
            src, dst = self.triples(etype)
            for s, d in zip(src.tolist(), dst.tolist(), strict=True):
                yield etype[0], s_ids[s], etype[1], etype[2], d_ids[d]

    def num_triples(self) -> int:
        return sum(int(self.triples(e)[0].shape[0]) for e in self.edge_types())

    # ----------------------------------------------------------- interactions
    def add_interaction(
        self, user_id: str, item_id: str, rating: float | None = None, timestamp: float | None = None
    ) -> None:
        """Record that ``user_id`` interacted with ``item_id`` (nodes are created when new)."""
        u = self.add_node("user", user_id)
        i = self.add_node("item", item_id)
        self._inter[0].append(u)
        self._inter[1].append(i)
        self._inter[2].append(np.nan if rating is None else float(rating))
        self._inter[3].append(np.nan if timestamp is None else float(timestamp))

    def interactions(self) -> Interactions:
        u, i, r, t = self._inter
        return Interactions(
            np.asarray(u, dtype=np.int64),
            np.asarray(i, dtype=np.int64),
            np.asarray(r, dtype=np.float32),
            np.asarray(t, dtype=np.float64),
        )

    def num_interactions(self) -> int:
        return len(self._inter[0])

    def _check_type(self, ntype: str) -> None:
        if ntype not in self._index:
            raise MMKGError(f"unknown node type {ntype!r} (expected one of {', '.join(NODE_TYPES)})")
