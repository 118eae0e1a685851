"""An explanation path as plain data (external ids and names, no indices): what the Neo4j export stores on a
``RECOMMENDED`` relationship (:mod:`kg.neo4j.recommendation_sink`) and what :meth:`mmkgrec.Recommender.explain`
returns."""

from __future__ import annotations

from typing import Any

from explanations.text import ScoredPath
from kg.model.graph import INTERACTION_RELATION, KnowledgeGraph
from kg.neo4j.schema import INTERACTION_TYPE, LABELS


def relation_in_database(relation: str) -> str:
    """A KG relation as the Neo4j layout names it: the interaction relation ``rates`` is ``RATED``, every other
    relation keeps its name (its relationship type, or its ``relation`` property)."""
    return INTERACTION_TYPE if relation == INTERACTION_RELATION else relation


def path_record(kg: KnowledgeGraph, scored: ScoredPath | None) -> dict[str, Any]:
    """``{"path_nodes", "path_labels", "path_relations", "path_directions", "path_drop"}`` of ``scored``: the
    nodes' external ids from the user to the item, their labels (``User`` / ``Item`` / ``Entity``), each hop's
    relation (:func:`relation_in_database`) and direction (``out``: along the KG edge, ``in``: against it), and
    the score drop; ``None`` (no path) gives empty lists and no drop."""
    if scored is None:
        return {"path_nodes": [], "path_labels": [], "path_relations": [], "path_directions": [], "path_drop": None}
    path = scored.path
    return {"path_nodes": [kg.ids(t)[i] for t, i in path.nodes], "path_labels": [LABELS[t] for t, _ in path.nodes],
            "path_relations": [relation_in_database(r) for r, _ in path.steps],
            "path_directions": [d for _, d in path.steps], "path_drop": float(scored.drop)}
