"""Neo4j sink and source against a real Bolt server (ArcadeDB, see tests/conftest.py)."""

from __future__ import annotations

import math
import socket
from types import SimpleNamespace

import neo4j
import pytest
from neo4j.exceptions import ClientError

from kg.errors import MMKGError, SourceConnectionError
from kg.model.graph import NODE_TYPES, KnowledgeGraph
from kg.neo4j.bolt_server import BoltConnection, BoltServer, free_port
from kg.neo4j.schema import quote_name, relationship_type
from kg.neo4j.sink import _ensure_id_index, write_neo4j
from kg.neo4j.source import read_neo4j

bolt = pytest.mark.bolt
NASTY_ID = "o'brien\"`}) DETACH DELETE n //"


def small_kg() -> KnowledgeGraph:
    kg = KnowledgeGraph()
    kg.add_triple("item", "i1", "film.film.directed_by", "entity", "nolan")
    kg.add_triple("item", "i2", "film.film.directed_by", "entity", "nolan")
    kg.add_triple("item", "i1", "genre", "entity", "scifi")
    kg.add_triple("item", "i3", "genre", "entity", "scifi")
    kg.add_triple("item", "i3", "genre", "entity", "scifi")  # duplicate edge: kept once
    kg.add_triple("entity", "scifi", "has-part", "entity", NASTY_ID)
    kg.add_triple("user", "u1", "friend_of", "user", "u2")
    kg.add_triple("user", "u3", "rated", "item", "i1")  # a relation named like the interaction type
    kg.add_text("item", "i1", "label", "Inception")
    kg.add_text("item", "i1", "description", "A thief who steals secrets through dreams.")
    kg.add_text("entity", "nolan", "label", "Christopher Nolan")
    kg.add_text("entity", "nolan", "label", "C. Nolan")
    kg.add_text("entity", "lonely", "label", "No edges at all")
    kg.add_text("user", "u1", "name", "Ann")
    kg.set_image("item", "i1", "/data/posters/1.jpg")
    kg.set_image("item", "i2", "http://example.org/2.jpg")
    kg.add_interaction("u1", "i1", 4.0, 881250949)
    kg.add_interaction("u1", "i2", None, 881250950)  # no rating
    kg.add_interaction("u2", "i1", 3.5, None)  # no timestamp
    kg.add_interaction("u2", "i3", 2.0, 100.0)
    kg.add_interaction("u2", "i3", 5.0, 200.0)  # the same pair again, later
    return kg


def snapshot(kg: KnowledgeGraph) -> dict:
    """Everything a lossless round trip keeps, independent of node order."""

    def num(x: float) -> float | None:
        return None if math.isnan(x) else float(x)

    inter = kg.interactions()
    users, items = kg.ids("user"), kg.ids("item")
    return {
        "nodes": {t: sorted(kg.ids(t)) for t in NODE_TYPES},
        "triples": sorted((s, sid, r, d, did) for s, sid, r, d, did in kg.iter_triples()),
        "text": {(t, kg.ids(t)[i]): f for t in NODE_TYPES for i, f in kg.text[t].items()},
        "images": {(t, kg.ids(t)[i]): ref for t in NODE_TYPES for i, ref in kg.images[t].items()},
        "interactions": sorted(
            (users[u], items[i], num(r), num(ts))
            for u, i, r, ts in zip(inter.user, inter.item, inter.rating, inter.timestamp, strict=True)
        ),
    }


def cypher(conn: BoltConnection, query: str) -> list[dict]:
    with neo4j.GraphDatabase.driver(conn.uri, auth=(conn.user, conn.password)) as driver:
        with driver.session(database=conn.database) as session:
            return session.run(query).data()


def db_counts(conn: BoltConnection) -> tuple[int, int]:
    nodes = cypher(conn, "MATCH (n) RETURN count(n) AS c")[0]["c"]
    rels = cypher(conn, "MATCH ()-[r]->() RETURN count(r) AS c")[0]["c"]
    return nodes, rels


@bolt
def test_write_then_read_is_lossless_and_idempotent(neo4j_db: BoltConnection) -> None:
    kg = small_kg()
    counts = write_neo4j(kg, *neo4j_db, batch_size=2, progress=False)
    assert counts == {"user": 3, "item": 3, "entity": 4, "relationships": 7, "interactions": 5}
    assert db_counts(neo4j_db) == (10, 12)
    back = read_neo4j(*neo4j_db[:3], database=neo4j_db.database, progress=False)
    assert snapshot(back) == snapshot(kg)
    assert back.text["entity"][back.index_of("entity", "nolan")]["label"] == ["Christopher Nolan", "C. Nolan"]

    again = write_neo4j(kg, *neo4j_db, batch_size=3, progress=False)
    assert again == counts
    assert db_counts(neo4j_db) == (10, 12)
    assert snapshot(read_neo4j(*neo4j_db[:3], database=neo4j_db.database, progress=False)) == snapshot(kg)


@bolt
def test_relation_names_are_relationship_types(neo4j_db: BoltConnection) -> None:
    write_neo4j(small_kg(), *neo4j_db, progress=False)
    rows = cypher(neo4j_db, "MATCH (a)-[r]->(b) RETURN DISTINCT type(r) AS t, r.relation AS rel")
    found = {(row["t"], row["rel"]) for row in rows}
    assert found == {
        ("film.film.directed_by", "film.film.directed_by"),
        ("has-part", "has-part"),
        ("genre", None),
        ("friend_of", None),
        ("RELATION", "rated"),
        ("RATED", None),
    }
    rated = cypher(neo4j_db, "MATCH (u:User {id: 'u1'})-[r:RATED]->(i:Item {id: 'i2'}) RETURN properties(r) AS p")
    assert rated == [{"p": {"timestamp": 881250950}}]  # the unknown rating is omitted, not NaN


HAND_MADE = """
CREATE (alice:User {id: 'alice', name: 'Alice'}), (bob:User {id: 'bob'}),
       (heat:Item {id: 1, title: 'Heat', image: 'posters/heat.jpg'}), (alien:Item {id: 2, text_label: ['Alien']}),
       (thriller:Genre {name: 'Thriller'}),
       (alice)-[:RATED {rating: 4, timestamp: 100}]->(heat),
       (alice)-[:RATED {rating: 5, timestamp: datetime('2020-01-01T00:00:00Z')}]->(alien),
       (bob)-[:INTERACTED]->(alien),
       (heat)-[:IN_GENRE]->(thriller), (alice)-[:FOLLOWS]->(bob)
"""


@bolt
def test_default_mapping_reads_a_hand_made_graph(neo4j_db: BoltConnection) -> None:
    cypher(neo4j_db, HAND_MADE)
    kg = read_neo4j(neo4j_db.uri, neo4j_db.user, neo4j_db.password, database=neo4j_db.database, progress=False)
    assert sorted(kg.ids("user")) == ["alice", "bob"]
    assert sorted(kg.ids("item")) == ["1", "2"]
    assert kg.num_nodes("entity") == 1  # the Genre node, known by its element id
    genre = kg.ids("entity")[0]
    assert kg.text["entity"][0] == {"name": ["Thriller"]}
    assert snapshot(kg)["triples"] == [
        ("item", "1", "IN_GENRE", "entity", genre),
        ("user", "alice", "FOLLOWS", "user", "bob"),
    ]
    assert snapshot(kg)["interactions"] == [("alice", "1", 4.0, 100.0), ("alice", "2", 5.0, 1577836800.0),
                                            ("bob", "2", None, None)]
    assert kg.node_text("item", kg.index_of("item", "2")) == {"label": ["Alien"]}
    assert kg.display_name("item", kg.index_of("item", "1")) == "Heat"
    assert kg.images["item"] == {kg.index_of("item", "1"): "posters/heat.jpg"}


@bolt
def test_mapping_overrides_labels_types_and_properties(neo4j_db: BoltConnection) -> None:
    cypher(neo4j_db, "CREATE (:Person {key: 'p1'})-[:WATCHED {stars: 3, at: 7}]->(:Movie {key: 'm1'})"
                     "-[:RATED]->(:Person {key: 'p2'})")
    mapping = SimpleNamespace(neo4j_user_label="Person", neo4j_item_label="Movie", neo4j_interaction_types=["WATCHED"],
                              neo4j_rating_property="stars", neo4j_timestamp_property="at", neo4j_id_property="key")
    kg = read_neo4j(*neo4j_db[:3], mapping=mapping, database=neo4j_db.database, progress=False)
    assert snapshot(kg)["interactions"] == [("p1", "m1", 3.0, 7.0)]
    assert snapshot(kg)["triples"] == [("item", "m1", "RATED", "user", "p2")]


@bolt
def test_wrong_password_and_unknown_database_are_one_line_errors(bolt_server: BoltConnection) -> None:
    with pytest.raises(SourceConnectionError) as err:
        read_neo4j(bolt_server.uri, bolt_server.user, "not-the-password", database=bolt_server.database)
    assert str(err.value) == f"Neo4j at {bolt_server.uri} refused the credentials for user {bolt_server.user!r}"
    assert err.value.__suppress_context__
    with pytest.raises(SourceConnectionError, match=r"has no database 'no_such_db'\Z"):
        write_neo4j(small_kg(), *bolt_server[:3], database="no_such_db")


def test_unreachable_server_is_a_one_line_error() -> None:
    uri = f"bolt://127.0.0.1:{free_port()}"
    with pytest.raises(SourceConnectionError) as err:
        read_neo4j(uri, "neo4j", "secret")
    assert str(err.value) == f"cannot reach Neo4j at {uri}: connection refused"
    assert err.value.__cause__ is None and err.value.__suppress_context__
    with pytest.raises(SourceConnectionError, match="^cannot reach Neo4j at"):
        write_neo4j(small_kg(), uri, "neo4j", "secret")
    with pytest.raises(SourceConnectionError, match="invalid Neo4j URI 'http://x:1'"):
        read_neo4j("http://x:1", "neo4j", "secret")


def test_names_are_quoted_and_relation_types_chosen() -> None:
    assert quote_name("film.film.directed_by") == "`film.film.directed_by`"
    assert quote_name("a`b") == "`a``b`"
    with pytest.raises(MMKGError):
        quote_name("")
    assert relationship_type("genre") == ("genre", False)
    assert relationship_type("film.film.genre") == ("film.film.genre", True)
    assert relationship_type("interacted") == ("RELATION", True)


class _SchemaSession:
    """A session whose engine rejects ``CREATE`` statements starting with the given words."""

    def __init__(self, rejected: tuple[str, ...], seen: list[str]) -> None:
        self.rejected, self.seen = rejected, seen

    def __enter__(self) -> _SchemaSession:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(self, query: str) -> SimpleNamespace:
        self.seen.append(query)
        if query.startswith(self.rejected):
            raise ClientError("unsupported")
        return SimpleNamespace(consume=lambda: None)


def test_id_index_falls_back_from_constraint_to_index() -> None:
    seen: list[str] = []
    driver = SimpleNamespace(session=lambda database: _SchemaSession(("CREATE CONSTRAINT",), seen))
    assert _ensure_id_index(driver, None, "User") == "index"
    assert seen == [
        "CREATE CONSTRAINT `mmkgrec_user_id` IF NOT EXISTS FOR (n:`User`) REQUIRE n.`id` IS UNIQUE",
        "CREATE INDEX `mmkgrec_user_id` IF NOT EXISTS FOR (n:`User`) ON (n.`id`)",
    ]
    driver = SimpleNamespace(session=lambda database: _SchemaSession(("CREATE",), []))
    with pytest.raises(MMKGError, match="rejected both a uniqueness constraint"):
        _ensure_id_index(driver, None, "Item")


def test_bolt_server_refuses_bad_settings() -> None:
    with pytest.raises(MMKGError, match="at least 8 characters"):
        BoltServer(password="short")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(MMKGError, match="already in use"):
            BoltServer(port=busy.getsockname()[1]).start()
