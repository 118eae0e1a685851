"""The typed knowledge graph every source fills and every model reads.

Nodes have one of three types (``user``, ``item``, ``entity``) and an external id
(an IRI, a database id or a table key) mapped to a contiguous index per type.
Typed relations link nodes: ``(src_type, relation, dst_type)`` with ``relation``
named after its predicate / relationship type. Interactions (user -> item, with
optional rating and timestamp) are kept apart from the relations, since training
splits them. Nodes carry text fields (label, description, ...) and image references.
The data lives in :class:`~kg.model.core.GraphCore`; this class adds saving, loading and conversions.
"""

from __future__ import annotations

from kg.model.core import INTERACTION_RELATION, NODE_TYPES, EdgeType, GraphCore, Interactions

__all__ = ["INTERACTION_RELATION", "NODE_TYPES", "EdgeType", "Interactions", "KnowledgeGraph"]


class KnowledgeGraph(GraphCore):
    """A knowledge graph of users, items and entities with typed relations and interactions."""

    def to_hetero_data(self, interactions: Interactions | None = None):  # -> HeteroData
        """See :func:`kg.model.hetero.to_hetero_data`."""
        from kg.model.hetero import to_hetero_data

        return to_hetero_data(self, interactions)

    def to_networkx(self):  # -> networkx.MultiDiGraph
        """See :func:`kg.model.hetero.to_networkx`."""
        from kg.model.hetero import to_networkx

        return to_networkx(self)

    def save(self, directory: str) -> None:
        """See :func:`kg.model.storage.save_kg`."""
        from kg.model.storage import save_kg

        save_kg(self, directory)

    @staticmethod
    def load(directory: str) -> KnowledgeGraph:
        """See :func:`kg.model.storage.load_kg`."""
        from kg.model.storage import load_kg

        return load_kg(directory, KnowledgeGraph)
