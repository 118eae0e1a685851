"""Write a :class:`~kg.graph.KnowledgeGraph` into Neo4j (or any Bolt server speaking Cypher,
such as ArcadeDB) with the layout described in :mod:`kg.neo4j_schema`.

Every write is a ``MERGE`` keyed on node ids (and, for relationships, on both end nodes and
the type), sent in ``UNWIND $rows`` batches, so writing the same KG twice leaves the database
as it was after the first write. Before the nodes, a uniqueness constraint on ``id`` is
created per label (``CREATE CONSTRAINT ... IF NOT EXISTS``, accepted by Neo4j 5 and by
ArcadeDB's Bolt plugin); an engine that rejects it gets a plain ``CREATE INDEX ... IF NOT
EXISTS`` instead, so ``MERGE`` still finds nodes through an index.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

from tqdm import tqdm

from kg.errors import MMKGError
from kg.graph import NODE_TYPES, KnowledgeGraph
from kg.neo4j_schema import (
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
    node_rows = {t: _node_rows(kg, t) for t in NODE_TYPES}
    edge_rows = []
    for src_t, rel, dst_t in kg.edge_types():
        s, d = kg.triples((src_t, rel, dst_t))
        s_ids, d_ids = kg.ids(src_t), kg.ids(dst_t)
        rows = [{"s": s_ids[a], "d": d_ids[b]} for a, b in zip(s.tolist(), d.tolist(), strict=True)]
        edge_rows.append(((src_t, rel, dst_t), rows))
    single, repeated = _interaction_rows(kg)
    total = sum(map(len, node_rows.values())) + sum(len(r) for _, r in edge_rows) + len(single) + len(repeated)

    with open_driver(uri, user, password, database) as driver:
        for ntype in NODE_TYPES:
            if node_rows[ntype]:
                _ensure_id_index(driver, database, LABELS[ntype])
        key = quote_name(ID_PROPERTY)
        bar = tqdm(total=total, desc="write neo4j", unit="row", disable=not progress)
        with driver.session(database=database) as session:

            def send(query: str, rows: list[dict[str, Any]], **params: Any) -> None:
                for batch in _batches(rows, batch_size):
                    session.execute_write(_run_write, query, {"rows": batch, **params})
                    bar.update(len(batch))

            for ntype in NODE_TYPES:
                label = quote_name(LABELS[ntype])
                send(f"UNWIND $rows AS row MERGE (n:{label} {{{key}: row.id}}) SET n += row.props", node_rows[ntype])
            for (src_t, rel, dst_t), rows in edge_rows:
                rtype, with_name = relationship_type(rel)
                query = (
                    f"UNWIND $rows AS row MATCH (a:{quote_name(LABELS[src_t])} {{{key}: row.s}}) "
                    f"MATCH (b:{quote_name(LABELS[dst_t])} {{{key}: row.d}}) "
                )
                if with_name:
                    query += f"MERGE (a)-[r:{quote_name(rtype)} {{{quote_name(RELATION_PROPERTY)}: $relation}}]->(b)"
                else:
                    query += f"MERGE (a)-[r:{quote_name(rtype)}]->(b)"
                send(query, rows, relation=rel)
            match = (
                f"UNWIND $rows AS row MATCH (a:{quote_name(LABELS['user'])} {{{key}: row.u}}) "
                f"MATCH (b:{quote_name(LABELS['item'])} {{{key}: row.i}}) "
            )
            rated = quote_name(INTERACTION_TYPE)
            send(match + f"MERGE (a)-[r:{rated}]->(b) SET r += row.props", single)
            send(match + f"MERGE (a)-[r:{rated} {{{quote_name(SEQ_PROPERTY)}: row.seq}}]->(b) SET r += row.props",
                 repeated)
        bar.close()
    counts = {t: len(node_rows[t]) for t in NODE_TYPES}
    counts["relationships"] = sum(len(r) for _, r in edge_rows)
    counts["interactions"] = len(single) + len(repeated)
    return counts

