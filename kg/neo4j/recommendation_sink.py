"""Write a model's recommendations (and each one's explanation path) into Neo4j / any Bolt server.

Layout: ``(:User)-[:RECOMMENDED {model, rank, score, path_nodes, path_labels, path_relations, path_directions,
path_drop, explanation}]->(:Item)`` between the nodes :mod:`kg.neo4j.sink` wrote (matched on ``id``). The path
properties are parallel lists: ``path_nodes`` the external ids from the user to the item, ``path_labels`` their
labels (``User`` / ``Item`` / ``Entity``: ids of different types may coincide), ``path_relations`` the relation
of each hop (as the database names it: the relationship type, or its ``relation`` property where the type
differs; ``RATED`` for an interaction), ``path_directions`` ``out`` when the hop follows the relationship's
direction, else ``in``. No path found -> empty lists, no ``path_drop``.

This module receives plain rows (dicts of strings, numbers and lists) and knows nothing of models.

Consistency, the choice made here: **one transaction per batch of users**, and a user's whole list is always in
one batch. Each transaction first deletes the batch users' ``RECOMMENDED`` relationships *of this model* (other
models' stay), then creates the new ones, so the database holds, for every user, either the complete old list
or the complete new one, never a mix or a duplicate; re-running (after a crash, or with a new checkpoint)
replaces the lists instead of adding to them. Before the first write, everything that can be checked is: the
connection (:func:`kg.neo4j.schema.open_driver`), the rows' shape, and that every user and item the export
may touch exists in the database (else an error naming the first missing ids; run ``python -m kg
export-neo4j`` first). Batches, not one transaction, keep memory and the server's transaction log bounded
for millions of users.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kg.errors import MMKGError
from kg.neo4j.schema import ID_PROPERTY, LABELS, open_driver, quote_name

RECOMMENDED_TYPE = "RECOMMENDED"
MODEL_PROPERTY = "model"
ROW_KEYS = ("user", "item", "rank", "score")
"""Keys every row must have; ``path_*`` and ``explanation`` are optional (missing -> empty / unset)."""
PATH_KEYS = ("path_nodes", "path_labels", "path_relations", "path_directions")
CHECK_CHUNK = 10_000
SHOW_MISSING = 5

Batch = tuple[Sequence[str], Sequence[dict[str, Any]]]
"""``(user ids, rows)``: the users whose lists this batch replaces (a user with no row loses its list), and the
rows, each with ``user`` among those users."""


def _queries() -> tuple[str, str]:
    key, rec = quote_name(ID_PROPERTY), quote_name(RECOMMENDED_TYPE)
    user, item, model = quote_name(LABELS["user"]), quote_name(LABELS["item"]), quote_name(MODEL_PROPERTY)
    delete = (f"UNWIND $users AS uid MATCH (u:{user} {{{key}: uid}})-[r:{rec}]->(:{item}) "
              f"WHERE r.{model} = $model DELETE r")
    props = ", ".join(f"r.{quote_name(p)} = row.{p}" for p in (*ROW_KEYS[2:], *PATH_KEYS, "path_drop",
                                                                "explanation"))
    create = (f"UNWIND $rows AS row MATCH (u:{user} {{{key}: row.user}}) MATCH (i:{item} {{{key}: row.item}}) "
              f"CREATE (u)-[r:{rec}]->(i) SET r.{model} = $model, {props}")
    return delete, create


def clean_row(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every key the query sets (missing path lists -> ``[]``, missing drop / text -> ``None``);
    raises :class:`MMKGError` on a row without ``user`` / ``item`` / ``rank`` / ``score`` or with uneven path
    lists."""
    missing = [k for k in ROW_KEYS if row.get(k) is None]
    if missing:
        raise MMKGError(f"recommendation row {row!r} has no {', '.join(missing)}")
    out = {"user": str(row["user"]), "item": str(row["item"]), "rank": int(row["rank"]), "score": float(row["score"])}
    for key in PATH_KEYS:
        out[key] = [str(v) for v in row.get(key) or []]
    nodes = len(out["path_nodes"])
    if len(out["path_labels"]) != nodes or {len(out["path_relations"]), len(out["path_directions"])} != {
            max(nodes - 1, 0)}:
        raise MMKGError(f"recommendation row for user {out['user']!r}, item {out['item']!r}: path lists of uneven "
                        "length")
    drop = row.get("path_drop")
    out["path_drop"] = None if drop is None else float(drop)
    out["explanation"] = None if row.get("explanation") is None else str(row["explanation"])
    return out


def missing_nodes(driver: Any, database: str | None, label: str, ids: Sequence[str]) -> list[str]:
    """The ``ids`` no ``label`` node of the database has (in the given order)."""
    query = (f"UNWIND $ids AS id OPTIONAL MATCH (n:{quote_name(label)} {{{quote_name(ID_PROPERTY)}: id}}) "
             "WITH id, n WHERE n IS NULL RETURN id")
    missing: list[str] = []
    with driver.session(database=database) as session:
        for start in range(0, len(ids), CHECK_CHUNK):
            chunk = list(ids[start : start + CHECK_CHUNK])
            found = {str(rec["id"]) for rec in session.run(query, {"ids": chunk})}
            missing += [i for i in chunk if i in found]
    return missing


def _check_present(driver: Any, database: str | None, uri: str, users: Sequence[str], items: Sequence[str]) -> None:
    for ntype, ids in (("user", users), ("item", items)):
        gone = missing_nodes(driver, database, LABELS[ntype], list(dict.fromkeys(ids)))
        if gone:
            shown = ", ".join(repr(i) for i in gone[:SHOW_MISSING]) + (", ..." if len(gone) > SHOW_MISSING else "")
            raise MMKGError(f"Neo4j at {uri} has no :{LABELS[ntype]} node with id {shown} ({len(gone)} missing); "
                            "write the KG first (python -m kg export-neo4j)")


def _replace(tx: Any, delete: str, create: str, users: list[str], rows: list[dict[str, Any]], model: str) -> int:
    tx.run(delete, {"users": users, "model": model}).consume()
    if rows:
        tx.run(create, {"rows": rows, "model": model}).consume()
    return len(rows)


def write_recommendations(uri: str, user: str, password: str, model: str, users: Sequence[str],
                          items: Sequence[str], batches: Iterable[Batch],
                          database: str | None = None) -> dict[str, int]:
    """Replace ``model``'s ``RECOMMENDED`` relationships of the batches' users with the batches' rows.

    Args:
        uri, user, password, database: the Bolt server (``database=None``: its default).
        model: the ``model`` property that tells this export's relationships from other models'.
        users, items: every user / item id the batches may name; checked to exist before the first write.
        batches: ``(user ids, rows)`` pairs (see :data:`Batch`), consumed lazily, one transaction each.

    Returns:
        ``{"users": ..., "recommendations": ...}`` written.

    Raises:
        SourceConnectionError: the server is unreachable or refuses the credentials / database (nothing written).
        MMKGError: a user or item is not in the database (nothing written), or a row is malformed (the batches
            before it are written, each complete).
    """
    if not model:
        raise MMKGError("the recommendations need a model name")
    delete, create = _queries()
    counts = {"users": 0, "recommendations": 0}
    user_set, item_set = set(users), set(items)
    with open_driver(uri, user, password, database) as driver:
        _check_present(driver, database, uri, users, items)
        with driver.session(database=database) as session:
            for batch_users, batch_rows in batches:
                ids = [str(u) for u in batch_users]
                rows = [clean_row(r) for r in batch_rows]
                mine = set(ids) & user_set
                stray = next((r for r in rows if r["user"] not in mine or r["item"] not in item_set), None)
                if stray is not None or len(mine) < len(set(ids)):
                    where = f"user {stray['user']!r}, item {stray['item']!r}" if stray else f"users {ids[:3]!r}"
                    raise MMKGError(f"recommendation batch ({where}) names ids outside the checked users / items")
                counts["recommendations"] += session.execute_write(_replace, delete, create, ids, rows, model)
                counts["users"] += len(ids)
    return counts
