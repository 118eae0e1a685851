"""Write a :class:`~kg.model.graph.KnowledgeGraph` into Neo4j (or any Bolt server speaking Cypher,
such as ArcadeDB) with the layout described in :mod:`kg.neo4j.schema`.

Every write is a ``MERGE`` keyed on node ids (and, for relationships, on both end nodes and
the type), sent in ``UNWIND $rows`` batches, so writing the same KG twice leaves the database
as it was after the first write. Before the nodes, a uniqueness constraint on ``id`` is
created per label (``CREATE CONSTRAINT ... IF NOT EXISTS``, accepted by Neo4j 5 and by
ArcadeDB's Bolt plugin); an engine that rejects it gets a plain ``CREATE INDEX ... IF NOT
EXISTS`` instead, so ``MERGE`` still finds nodes through an index.

A relationship that carries its ``relation`` name (see :func:`kg.neo4j.schema.relationship_type`)
is merged on that property too. A (user, item) pair that interacts more than once gets one
``RATED`` relationship per interaction, told apart by a ``seq`` property (0, 1, ...). Each batch
is its own transaction: a write that fails half-way leaves the batches before it, and running
it again completes it (the merges make that safe).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

from tqdm import tqdm

from kg.errors import MMKGError
from kg.model.graph import NODE_TYPES, KnowledgeGraph
from kg.neo4j.schema import (
    ID_PROPERTY,
    IMAGE_PROPERTY,
    INTERACTION_TYPE,
    LABELS,
    RATING_PROPERTY,
    RELATION_PROPERTY,
    SEQ_PROPERTY,
    TEXT_PREFIX,
    TIMESTAMP_PROPERTY,
    open_driver,
    quote_name,
    relationship_type,
)


def _batches(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _run_write(tx: Any, query: str, params: dict[str, Any]) -> None:
    tx.run(query, params).consume()


def _ensure_id_index(driver: Any, database: str | None, label: str) -> str:
    """Create a uniqueness constraint (else an index) on ``label.id``; returns which one."""
    from neo4j.exceptions import ClientError, DatabaseError

    name = quote_name(f"mmkgrec_{label.lower()}_{ID_PROPERTY}")
    target = f"(n:{quote_name(label)})"
    prop = f"n.{quote_name(ID_PROPERTY)}"
    constraint = f"CREATE CONSTRAINT {name} IF NOT EXISTS FOR {target} REQUIRE {prop} IS UNIQUE"
    index = f"CREATE INDEX {name} IF NOT EXISTS FOR {target} ON ({prop})"
    with driver.session(database=database) as session:
        try:
            session.run(constraint).consume()
            return "constraint"
        except (ClientError, DatabaseError) as first:
            try:
                session.run(index).consume()
                return "index"
            except (ClientError, DatabaseError) as second:
                raise MMKGError(
                    f"the database rejected both a uniqueness constraint ({first.message}) and an index "
                    f"({second.message}) on {label}.{ID_PROPERTY}"
                ) from None


def _node_rows(kg: KnowledgeGraph, ntype: str) -> list[dict[str, Any]]:
    rows = []
    text, images = kg.text[ntype], kg.images[ntype]
    for idx, ext_id in enumerate(kg.ids(ntype)):
        props: dict[str, Any] = {
            TEXT_PREFIX + field: list(values) for field, values in text.get(idx, {}).items() if values
        }
        if idx in images:
            props[IMAGE_PROPERTY] = images[idx]
        rows.append({"id": ext_id, "props": props})
    return rows


def _interaction_rows(kg: KnowledgeGraph) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of interactions whose (user, item) pair occurs once, and rows of repeated pairs (with ``seq``)."""
    inter = kg.interactions()
    users, items = kg.ids("user"), kg.ids("item")
    pairs = list(zip(inter.user.tolist(), inter.item.tolist(), strict=True))
    counts = Counter(pairs)
    seen: Counter = Counter()
    single, repeated = [], []
    for k, (u, i) in enumerate(pairs):
        props: dict[str, Any] = {}
        rating, ts = float(inter.rating[k]), float(inter.timestamp[k])
        if not math.isnan(rating):
            props[RATING_PROPERTY] = rating
        if not math.isnan(ts):
            props[TIMESTAMP_PROPERTY] = int(ts) if ts.is_integer() and abs(ts) < 2**53 else ts
        row = {"u": users[u], "i": items[i], "props": props}
        if counts[(u, i)] == 1:
            single.append(row)
        else:
            row["seq"] = seen[(u, i)]
            seen[(u, i)] += 1
            repeated.append(row)
    return single, repeated


def write_neo4j(
    kg: KnowledgeGraph,
    uri: str,
    user: str,
    password: str,
    database: str | None = None,
    batch_size: int = 5000,
    progress: bool = True,
) -> dict[str, int]:
    """Write ``kg`` (nodes, text, images, relations, interactions) to the database at ``uri``.

    Args:
        kg: the knowledge graph.
        uri, user, password: Bolt URI (``bolt://host:7687``) and credentials.
        database: database name; ``None`` for the server's default.
        batch_size: rows per ``UNWIND`` transaction.
        progress: show a tqdm progress bar.

    Returns:
        Counts written: ``user``, ``item``, ``entity`` (nodes), ``relationships`` (relation
        edges, deduplicated) and ``interactions``. Writing the same KG again returns, and
        leaves in the database, the same counts.

    Raises:
        SourceConnectionError: the server is unreachable or refuses the credentials / database.
    """
    if batch_size < 1:
        raise MMKGError(f"batch_size must be positive, got {batch_size}")
    # every query text and row is built (and every name checked) before the first write
    jobs = _write_jobs(kg)
    with open_driver(uri, user, password, database) as driver:
        for ntype in NODE_TYPES:
            if kg.num_nodes(ntype):
                _ensure_id_index(driver, database, LABELS[ntype])
        bar = tqdm(total=sum(len(rows) for _, _, rows, _ in jobs), desc="write neo4j", unit="row",
                   disable=not progress)
        with driver.session(database=database) as session:
            for _, query, rows, params in jobs:
                for batch in _batches(rows, batch_size):
                    session.execute_write(_run_write, query, {"rows": batch, **params})
                    bar.update(len(batch))
        bar.close()
    counts = dict.fromkeys([*NODE_TYPES, "relationships", "interactions"], 0)
    for kind, _, rows, _ in jobs:
        counts[kind] += len(rows)
    return counts


def _write_jobs(kg: KnowledgeGraph) -> list[tuple[str, str, list[dict[str, Any]], dict[str, Any]]]:
    """``(count key, query, rows, extra parameters)`` for every ``UNWIND`` statement, in write order."""
    key = quote_name(ID_PROPERTY)
    jobs = []
    for ntype in NODE_TYPES:
        label = quote_name(LABELS[ntype])
        query = f"UNWIND $rows AS row MERGE (n:{label} {{{key}: row.id}}) SET n += row.props"
        jobs.append((ntype, query, _node_rows(kg, ntype), {}))
    for src_t, rel, dst_t in kg.edge_types():
        s, d = kg.triples((src_t, rel, dst_t))
        s_ids, d_ids = kg.ids(src_t), kg.ids(dst_t)
        rows = [{"s": s_ids[a], "d": d_ids[b]} for a, b in zip(s.tolist(), d.tolist(), strict=True)]
        rtype, with_name = relationship_type(rel)
        rel_props = f" {{{quote_name(RELATION_PROPERTY)}: $relation}}" if with_name else ""
        query = (
            f"UNWIND $rows AS row MATCH (a:{quote_name(LABELS[src_t])} {{{key}: row.s}}) "
            f"MATCH (b:{quote_name(LABELS[dst_t])} {{{key}: row.d}}) MERGE (a)-[r:{quote_name(rtype)}{rel_props}]->(b)"
        )
        jobs.append(("relationships", query, rows, {"relation": rel} if with_name else {}))
    match = (
        f"UNWIND $rows AS row MATCH (a:{quote_name(LABELS['user'])} {{{key}: row.u}}) "
        f"MATCH (b:{quote_name(LABELS['item'])} {{{key}: row.i}}) "
    )
    rated = quote_name(INTERACTION_TYPE)
    single, repeated = _interaction_rows(kg)
    jobs.append(("interactions", match + f"MERGE (a)-[r:{rated}]->(b) SET r += row.props", single, {}))
    seq = quote_name(SEQ_PROPERTY)
    jobs.append(("interactions", match + f"MERGE (a)-[r:{rated} {{{seq}: row.seq}}]->(b) SET r += row.props",
                 repeated, {}))
    return jobs
