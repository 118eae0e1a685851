"""kg/neo4j/recommendation_sink.py: plain rows in, RECOMMENDED relationships out; a re-run replaces a model's
lists, other models' stay; a missing node or a bad row writes nothing of its batch."""

from __future__ import annotations

import neo4j
import pytest

from kg.errors import MMKGError, SourceConnectionError
from kg.model.graph import KnowledgeGraph
from kg.neo4j.bolt_server import BoltConnection, free_port
from kg.neo4j.recommendation_sink import clean_row, write_recommendations
from kg.neo4j.sink import write_neo4j

NASTY = "o'brien\"`}) DETACH DELETE n //"


def small_kg() -> KnowledgeGraph:
    kg = KnowledgeGraph()
    kg.add_triple("item", "i1", "genre", "entity", "g")
    kg.add_triple("item", "i2", "genre", "entity", "g")
    for u, i in [("u1", "i1"), (NASTY, "i2"), ("u1", "i3")]:
        kg.add_interaction(u, i, 4.0, 0)
    return kg


def row(user: str, item: str, rank: int, score: float, path: bool = True) -> dict:
    extra = {"path_nodes": [user, "i1", "g", item], "path_labels": ["User", "Item", "Entity", "Item"],
             "path_relations": ["RATED", "genre", "genre"], "path_directions": ["out", "out", "in"],
             "path_drop": 0.5, "explanation": "because"} if path else {}
    return {"user": user, "item": item, "rank": rank, "score": score, **extra}


def stored(db: BoltConnection) -> list[tuple]:
    with neo4j.GraphDatabase.driver(db.uri, auth=(db.user, db.password)) as driver:
        with driver.session(database=db.database) as session:
            result = session.run("MATCH (u:User)-[r:RECOMMENDED]->(i:Item) RETURN r.model AS m, u.id AS u, "
                                 "r.rank AS rank, i.id AS i, r.score AS s, r.path_nodes AS p, r.path_drop AS d")
            return sorted(tuple(tuple(v) if isinstance(v, list) else v for v in rec.values()) for rec in result)


def write(db: BoltConnection, model: str, batches: list, users=("u1", NASTY), items=("i1", "i2", "i3")) -> dict:
    return write_recommendations(db.uri, db.user, db.password, model, list(users), list(items), iter(batches),
                                 database=db.database)


@pytest.mark.bolt
def test_rerun_replaces_a_models_lists_and_keeps_other_models(neo4j_db: BoltConnection) -> None:
    write_neo4j(small_kg(), *neo4j_db[:3], database=neo4j_db.database, progress=False)
    first = [(["u1"], [row("u1", "i2", 1, 0.9), row("u1", "i3", 2, 0.5, path=False)]), ([NASTY], [row(NASTY, "i1", 1,
                                                                                                        0.7)])]
    assert write(neo4j_db, "a", first) == {"users": 2, "recommendations": 3}
    assert write(neo4j_db, "b", [(["u1"], [row("u1", "i1", 1, 0.1)])]) == {"users": 1, "recommendations": 1}
    once = stored(neo4j_db)
    assert len(once) == 4 and ("a", "u1", 2, "i3", 0.5, (), None) in once
    assert ("a", NASTY, 1, "i1", 0.7, (NASTY, "i1", "g", "i1"), 0.5) in once
    assert write(neo4j_db, "a", first)["recommendations"] == 3
    assert stored(neo4j_db) == once  # idempotent: no duplicates
    write(neo4j_db, "a", [(["u1"], [row("u1", "i1", 1, 0.3)])])  # a shorter new list for u1 only
    assert [r for r in stored(neo4j_db) if r[:2] == ("a", "u1")] == [("a", "u1", 1, "i1", 0.3, ("u1", "i1", "g", "i1"),
                                                                      0.5)]
    assert [r for r in stored(neo4j_db) if r[0] == "b" or r[1] == NASTY] == [r for r in once if r[0] == "b" or
                                                                             r[1] == NASTY]


@pytest.mark.bolt
def test_missing_nodes_and_bad_rows_write_nothing_of_their_batch(neo4j_db: BoltConnection) -> None:
    write_neo4j(small_kg(), *neo4j_db[:3], database=neo4j_db.database, progress=False)
    write(neo4j_db, "a", [(["u1"], [row("u1", "i2", 1, 0.9)])])
    before = stored(neo4j_db)
    with pytest.raises(MMKGError, match=r"no :User node with id 'ghost' \(1 missing\)"):
        write(neo4j_db, "a", [(["u1"], [])], users=("u1", "ghost"))
    with pytest.raises(MMKGError, match=r"no :Item node with id 'i9'"):
        write(neo4j_db, "a", [(["u1"], [])], items=("i1", "i9"))
    assert stored(neo4j_db) == before
    bad = row(NASTY, "i1", 1, 0.7)
    bad["path_labels"] = ["User"]
    with pytest.raises(MMKGError, match="uneven"):
        write(neo4j_db, "a", [([NASTY], [row(NASTY, "i2", 1, 0.2)]), (["u1"], [row("u1", "i3", 1, 0.3), bad])])
    after = stored(neo4j_db)
    assert [r for r in after if r[1] == "u1"] == [r for r in before if r[1] == "u1"]  # the bad batch: untouched
    assert [r[1:4] for r in after if r[1] == NASTY] == [(NASTY, 1, "i2")]  # the batch before it: complete


def test_rows_are_checked_and_an_unreachable_server_is_one_line() -> None:
    assert clean_row({"user": "u", "item": "i", "rank": 1, "score": 2})["path_nodes"] == []
    with pytest.raises(MMKGError, match="has no score"):
        clean_row({"user": "u", "item": "i", "rank": 1})
    uri = f"bolt://127.0.0.1:{free_port()}"
    with pytest.raises(SourceConnectionError, match=f"cannot reach Neo4j at {uri}") as err:
        write_recommendations(uri, "root", "pw", "m", ["u"], ["i"], iter([]))
    assert "\n" not in str(err.value)
