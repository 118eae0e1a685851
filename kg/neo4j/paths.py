"""Explanation paths from a Neo4j (Bolt) database holding a KG written by :func:`kg.neo4j.sink.write_neo4j`.

One parameterised Cypher query per path length ``n`` (shortest first)::

    MATCH (u:`User` {`id`: $user}), (i:`Item` {`id`: $item})
    MATCH p = (u)-[*n]-(i)
    WHERE <no node repeats>
    RETURN <(labels, id, elementId) per node>, <(type, relation, elementId(start)) per relationship>
    LIMIT $limit

Ids and the limit travel as parameters; labels and property keys go through
:func:`kg.neo4j.schema.quote_name`; the hop count ``n`` is a validated integer (Cypher takes no parameter
in a variable-length pattern). The result has :func:`kg.paths.path_search.PathIndex.find_paths`'s structure: a
:class:`~kg.paths.path_search.KGPath` of ``(node_type, index)`` nodes and ``(relation, direction)`` steps, one per
node sequence (parallel relationships, which Cypher returns as separate paths, collapse to the
representative relation that :class:`~kg.paths.path_search.PathIndex` picks). ``RATED`` relationships read as the
interaction relation ``rates``. Pass ``index`` (a :class:`~kg.paths.path_search.PathIndex` on the TRAINING
interactions) to drop paths through interactions the index does not hold (held-out ratings, when the
database has all of them) and to rank paths by the same degree prior.
"""

from __future__ import annotations

from typing import Any

from kg.errors import MMKGError
from kg.model.graph import INTERACTION_RELATION, NODE_TYPES, KnowledgeGraph
from kg.neo4j.schema import (
    ID_PROPERTY,
    INTERACTION_TYPES,
    LABELS,
    RELATION_PROPERTY,
    open_driver,
    quote_name,
)
from kg.paths.path_search import KGPath, Node, PathIndex, Step, _relation_order

MAX_HOPS_LIMIT = 6
_TYPE_OF_LABEL = {label: ntype for ntype, label in LABELS.items()}


def path_query(hops: int) -> str:
    """The Cypher query for simple paths of exactly ``hops`` hops between ``$user`` and ``$item``."""
    if not isinstance(hops, int) or isinstance(hops, bool) or not 1 <= hops <= MAX_HOPS_LIMIT:
        raise MMKGError(f"path length must be an integer in 1..{MAX_HOPS_LIMIT}, got {hops!r}")
    key = quote_name(ID_PROPERTY)
    return (
        f"MATCH (u:{quote_name(LABELS['user'])} {{{key}: $user}}), (i:{quote_name(LABELS['item'])} {{{key}: $item}}) "
        f"MATCH p = (u)-[*{hops}]-(i) "
        "WHERE ALL(k IN range(0, length(p) - 1) WHERE NONE(j IN range(k + 1, length(p)) "
        "WHERE nodes(p)[k] = nodes(p)[j])) "
        f"RETURN [n IN nodes(p) | [labels(n), n.{key}, elementId(n)]] AS nodes, "
        f"[r IN relationships(p) | [type(r), r.{quote_name(RELATION_PROPERTY)}, elementId(startNode(r))]] AS rels "
        "LIMIT $limit"
    )


def _node(kg: KnowledgeGraph, labels: list[str], ext_id: Any) -> Node:
    types = [_TYPE_OF_LABEL[label] for label in labels if label in _TYPE_OF_LABEL]
    ntype = types[0] if types else "entity"
    return ntype, kg.index_of(ntype, str(ext_id))


def _relation(rtype: str, relation: Any) -> str:
    if relation is not None:
        return str(relation)
    return INTERACTION_RELATION if rtype in INTERACTION_TYPES else rtype


def _step_order(step: Step, a: Node, b: Node) -> tuple:
    """:class:`~kg.paths.path_search.PathIndex`'s preference among parallel edges between ``a`` and ``b``."""
    dotted, name = _relation_order(step[0])
    rank = {t: k for k, t in enumerate(NODE_TYPES)}
    src, dst = (a, b) if step[1] == "out" else (b, a)
    return dotted, name, (rank[src[0]], src[1]) > (rank[dst[0]], dst[1])


def _collapse(records: list[tuple[tuple[Node, ...], tuple[Step, ...]]]) -> list[tuple[tuple[Node, ...], tuple]]:
    """One path per node sequence, each hop labelled by its representative relation (first-seen order)."""
    best: dict[tuple[Node, ...], list[Step]] = {}
    for nodes, steps in records:
        current = best.setdefault(nodes, list(steps))
        for k, step in enumerate(steps):
            if _step_order(step, nodes[k], nodes[k + 1]) < _step_order(current[k], nodes[k], nodes[k + 1]):
                current[k] = step
    return [(nodes, tuple(steps)) for nodes, steps in best.items()]


def find_paths_neo4j(
    uri: str, user_name: str, password: str, kg: KnowledgeGraph, user: int, item: int, database: str | None = None,
    max_hops: int = 4, min_hops: int = 2, limit: int = 200, index: PathIndex | None = None,
) -> list[KGPath]:
    """Simple paths from user ``user`` to item ``item`` (KG indices) of ``min_hops..max_hops`` hops, read
    from the database at ``uri`` (login ``user_name`` / ``password``); at most ``limit`` rows per length.

    Raises:
        MMKGError: bad bounds, or the user / item is not in the database (one line naming it).
        SourceConnectionError: the server is unreachable or refuses the credentials / database.
    """
    if not 1 <= min_hops <= max_hops <= MAX_HOPS_LIMIT:
        raise MMKGError(f"need 1 <= min_hops <= max_hops <= {MAX_HOPS_LIMIT}, got {min_hops}..{max_hops}")
    params = {"user": kg.ids("user")[user], "item": kg.ids("item")[item], "limit": int(limit)}
    key = quote_name(ID_PROPERTY)
    records: list[tuple[tuple[Node, ...], tuple[Step, ...]]] = []
    with open_driver(uri, user_name, password, database) as driver, driver.session(database=database) as session:
        for ntype, value in (("user", params["user"]), ("item", params["item"])):
            found = session.run(f"MATCH (n:{quote_name(LABELS[ntype])} {{{key}: $id}}) RETURN count(n) AS c",
                                {"id": value}).single()
            if not found or not found["c"]:
                raise MMKGError(f"unknown {ntype} id {value!r} in the Neo4j database at {uri}")
        for hops in range(min_hops, max_hops + 1):
            for row in session.run(path_query(hops), params):
                nodes = tuple(_node(kg, labels, ext) for labels, ext, _ in row["nodes"])
                eids = [eid for _, _, eid in row["nodes"]]
                steps = tuple((_relation(rtype, rel), "out" if start == eids[k] else "in")
                              for k, (rtype, rel, start) in enumerate(row["rels"]))
                records.append((nodes, steps))
    paths = []
    for nodes, steps in _collapse(records):
        path = KGPath(nodes, steps)
        if index is not None:
            if not all(index.has_edge(s, r, d) for s, r, d in path.edges()):
                continue  # e.g. a held-out interaction: not evidence the model was trained on
            prior = 1.0
            for node in nodes[1:-1]:
                prior /= max(int(index.degree[index.gid(node)]), 1)
            path = KGPath(nodes, steps, prior)
        paths.append(path)
    return sorted(paths, key=lambda p: (len(p), -p.prior)) if index is not None else paths
