"""Read a :class:`~kg.model.graph.KnowledgeGraph` from Neo4j (or any Bolt server speaking Cypher).

Nodes and relationships are streamed inside one read transaction with the driver's lazy
result iteration (``fetch_size = batch_size`` records per round trip), so memory holds the
KG being built plus one batch. Default reading (overridable by a mapping, see
:class:`kg.neo4j.schema.Neo4jNames`):

- a node labelled ``User`` is a user, ``Item`` an item, anything else an entity; its external
  id is its ``id`` property (as a string), else its element id;
- text: every ``text_<field>`` property (a string or a list of strings), plus the plain
  string properties ``name``, ``title``, ``label`` and ``description`` of hand-made graphs;
  image: the ``image`` property;
- ``(:User)-[:RATED|INTERACTED]->(:Item)`` relationships are interactions with optional
  ``rating`` and ``timestamp`` (a number of epoch seconds, or a Cypher date / datetime);
- every other relationship is a relation named by its ``relation`` property when present
  (how :mod:`kg.neo4j.sink` keeps names such as ``film.film.directed_by``), else its type.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tqdm import tqdm

from kg.errors import KGFormatError
from kg.model.graph import KnowledgeGraph
from kg.neo4j.schema import IMAGE_PROPERTY, RELATION_PROPERTY, TEXT_PREFIX, Neo4jNames, open_driver

PLAIN_TEXT_PROPERTIES: tuple[str, ...] = ("name", "title", "label", "description")

_NODES = "MATCH (n) RETURN elementId(n) AS eid, labels(n) AS labels, properties(n) AS props"
_RELATIONSHIPS = (
    "MATCH (a)-[r]->(b) RETURN elementId(a) AS src, type(r) AS type, r[$relation] AS relation, "
    "r[$rating] AS rating, r[$timestamp] AS timestamp, elementId(b) AS dst"
)


def _as_epoch_seconds(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise KGFormatError(f"{where}: timestamp {value!r} is not a number or a date")
    if isinstance(value, (int, float)):
        return float(value)
    to_native = getattr(value, "to_native", None)
    native = to_native() if callable(to_native) else value
    if isinstance(native, dt.datetime):
        if native.tzinfo is None:
            native = native.replace(tzinfo=dt.timezone.utc)
        return native.timestamp()
    if isinstance(native, dt.date):
        return dt.datetime(native.year, native.month, native.day, tzinfo=dt.timezone.utc).timestamp()
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise KGFormatError(f"{where}: timestamp {value!r} is not a number or a date")


def _as_rating(value: Any, where: str) -> float | None:
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise KGFormatError(f"{where}: rating {value!r} is not a number") from None


class _NodeReader:
    """Classifies streamed node records and remembers element id -> (type, index)."""

    def __init__(self, kg: KnowledgeGraph, names: Neo4jNames) -> None:
        self.kg, self.names = kg, names
        self.by_eid: dict[str, tuple[str, int]] = {}
        self._owner: dict[tuple[str, str], str] = {}

    def ntype(self, labels: list[str]) -> str:
        if self.names.user_label in labels:
            return "user"
        if self.names.item_label in labels:
            return "item"
        return "entity"

    def add(self, eid: str, labels: list[str], props: dict[str, Any]) -> None:
        ntype = self.ntype(labels)
        raw_id = props.get(self.names.id_property)
        ext_id = eid if raw_id is None else str(raw_id)
        other = self._owner.setdefault((ntype, ext_id), eid)
        if other != eid:
            raise KGFormatError(
                f"Neo4j nodes {other} and {eid} are both the {ntype} with "
                f"{self.names.id_property} {ext_id!r} (ids must be unique per node type)"
            )
        idx = self.kg.add_node(ntype, ext_id)
        self.by_eid[eid] = (ntype, idx)
        for key, value in props.items():
            if key.startswith(TEXT_PREFIX) and len(key) > len(TEXT_PREFIX):
                values = value if isinstance(value, list) else [value]
                for v in values:
                    self.kg.add_text(ntype, ext_id, key[len(TEXT_PREFIX) :], str(v))
            elif key in PLAIN_TEXT_PROPERTIES and isinstance(value, str):
                self.kg.add_text(ntype, ext_id, key, value)
        image = props.get(IMAGE_PROPERTY)
        if isinstance(image, str) and image:
            self.kg.set_image(ntype, ext_id, image)


def read_neo4j(
    uri: str,
    user: str,
    password: str,
    mapping: Any | None = None,
    database: str | None = None,
    batch_size: int = 10000,
    progress: bool = True,
) -> KnowledgeGraph:
    """Read the whole graph at ``uri`` into a :class:`KnowledgeGraph`.

    Args:
        uri, user, password: Bolt URI (``bolt://host:7687``) and credentials.
        mapping: any object with ``neo4j_user_label``, ``neo4j_item_label``,
            ``neo4j_interaction_types``, ``neo4j_rating_property``, ``neo4j_timestamp_property``
            and ``neo4j_id_property`` (e.g. ``kg.sources.mapping.Mapping``); ``None`` (or a ``None``
            attribute) keeps the defaults ``User``, ``Item``, ``(RATED, INTERACTED)``, ``rating``,
            ``timestamp``, ``id``.
        database: database name; ``None`` for the server's default.
        batch_size: records fetched per round trip.
        progress: show tqdm progress bars.

    Raises:
        SourceConnectionError: the server is unreachable or refuses the credentials / database.
        KGFormatError: two nodes of one type share an id, or a rating / timestamp is not a number.
    """
    if batch_size < 1:
        raise KGFormatError(f"batch_size must be positive, got {batch_size}")
    names = Neo4jNames.from_mapping(mapping)
    kg = KnowledgeGraph()
    nodes = _NodeReader(kg, names)
    interaction_types = set(names.interaction_types)
    params = {"relation": RELATION_PROPERTY, "rating": names.rating_property, "timestamp": names.timestamp_property}
    with open_driver(uri, user, password, database) as driver:
        with driver.session(database=database, fetch_size=batch_size) as session:
            with session.begin_transaction() as tx:
                for rec in tqdm(tx.run(_NODES), desc="read neo4j nodes", unit="node", disable=not progress):
                    nodes.add(rec["eid"], rec["labels"], rec["props"])
                edges: dict[tuple[str, str, str], tuple[list[int], list[int]]] = {}
                result = tx.run(_RELATIONSHIPS, params)
                for rec in tqdm(result, desc="read neo4j relationships", unit="rel", disable=not progress):
                    _add_relationship(kg, nodes, interaction_types, edges, rec)
    for etype in sorted(edges):
        kg.add_triples(etype, *edges[etype])
    return kg


def _add_relationship(
    kg: KnowledgeGraph,
    nodes: _NodeReader,
    interaction_types: set[str],
    edges: dict[tuple[str, str, str], tuple[list[int], list[int]]],
    rec: Any,
) -> None:
    try:
        src_t, src = nodes.by_eid[rec["src"]]
        dst_t, dst = nodes.by_eid[rec["dst"]]
    except KeyError as exc:
        raise KGFormatError(f"Neo4j relationship {rec['type']} ends at node {exc.args[0]} that was not read") from None
    relation = rec["relation"]
    if relation is None and rec["type"] in interaction_types and src_t == "user" and dst_t == "item":
        user_id, item_id = kg.ids("user")[src], kg.ids("item")[dst]
        where = f"Neo4j relationship {rec['type']} from user {user_id!r} to item {item_id!r}"
        kg.add_interaction(
            user_id, item_id, _as_rating(rec["rating"], where), _as_epoch_seconds(rec["timestamp"], where)
        )
        return
    name = str(relation) if relation is not None else rec["type"]
    lists = edges.get((src_t, name, dst_t))
    if lists is None:
        lists = edges[(src_t, name, dst_t)] = ([], [])
    lists[0].append(src)
    lists[1].append(dst)
