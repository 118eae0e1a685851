"""explain.py export: recommendations and their explanation paths written to a real Bolt server, read back with
the README's own Cypher; re-runs replace; bad input is one error line and writes nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import neo4j
import pytest

import explain
from kg.model.graph import NODE_TYPES
from kg.neo4j.bolt_server import BoltConnection, free_port
from kg.neo4j.sink import write_neo4j
from kg.paths.path_search import PathIndex

README = Path(__file__).resolve().parent.parent / "README.md"
TYPE_OF = {"User": "user", "Item": "item", "Entity": "entity"}


def readme_cypher() -> str:
    blocks = re.findall(r"```cypher\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1, "README.md holds one ```cypher block: a user's recommendations with their paths"
    return blocks[0]


def query(db: BoltConnection, cypher: str, **params) -> list[dict]:
    with neo4j.GraphDatabase.driver(db.uri, auth=(db.user, db.password)) as driver:
        with driver.session(database=db.database) as session:
            return [rec.data() for rec in session.run(cypher, params)]


def all_recommended(db: BoltConnection) -> list[tuple]:
    """(model, user, rank, item) of every RECOMMENDED relationship (scores are float32: batch-size dependent)."""
    rows = query(db, "MATCH (u:User)-[r:RECOMMENDED]->(i:Item) RETURN r.model AS m, u.id AS u, r.rank AS rank, "
                     "i.id AS i")
    return sorted(tuple(r.values()) for r in rows)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = explain.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def export_args(ck, db: BoltConnection, *extra: str) -> list[str]:
    return ["export", "--checkpoint", str(ck), "--neo4j", db.uri, "--user", db.user, "--password", db.password,
            "--database", db.database, *extra]


@pytest.mark.bolt
def test_export_then_the_readme_cypher_returns_the_recommendations_and_paths(tiny_checkpoint, neo4j_db, capsys,
                                                                             tmp_path) -> None:
    ck, kg = tiny_checkpoint()
    write_neo4j(kg, *neo4j_db[:3], database=neo4j_db.database, progress=False)
    code, out, err = run(export_args(ck, neo4j_db, "--k", "3", "--batch-size", "2"), capsys)
    assert code == 0, err
    assert "for 3 users" in out
    loaded, explainer = explain.load_explainer(ck)
    index = PathIndex(kg, loaded.split.parts(kg.interactions())[0])
    with_path = 0
    for user in kg.ids("user"):
        got = query(neo4j_db, readme_cypher(), user=user, model="lightgcn")
        code, _, err = run(["recommend", "--checkpoint", str(ck), "--user", user, "--k", "3", "--format", "json",
                            "--out", str(tmp_path / "rec.json")], capsys)
        assert code == 0, err
        want = json.loads((tmp_path / "rec.json").read_text())["recommendations"]
        assert [(g["rank"], g["item"]) for g in got] == [(w["rank"], w["item"]["id"]) for w in want]
        assert [g["score"] for g in got] == pytest.approx([w["score"] for w in want], abs=1e-5)
        for g in got:
            nodes, rels = g["path_nodes"], g["path_relations"]
            assert g["explanation"]
            if not nodes:
                continue
            with_path += 1
            assert nodes[0] == user and nodes[-1] == g["item"] and len(rels) == len(nodes) - 1
            detail = query(neo4j_db, "MATCH (u:User {id: $u})-[r:RECOMMENDED]->(i:Item {id: $i}) RETURN "
                           "r.path_labels AS labels, r.path_directions AS dirs, r.path_drop AS drop", u=user,
                           i=g["item"])[0]
            assert detail["drop"] > 0
            typed = [(TYPE_OF[lab], kg.index_of(TYPE_OF[lab], n)) for lab, n in zip(detail["labels"], nodes,
                                                                                   strict=True)]
            for a, b, rel, d in zip(typed[:-1], typed[1:], rels, detail["dirs"], strict=True):
                rel = "rates" if rel == "RATED" else rel
                assert index.has_edge(*((a, rel, b) if d == "out" else (b, rel, a))), (user, g)
    assert with_path >= 3
    # re-run: same relationships, none duplicated; a shorter list replaces the longer one; another model stays
    before = all_recommended(neo4j_db)
    assert run(export_args(ck, neo4j_db, "--k", "3"), capsys)[0] == 0
    assert all_recommended(neo4j_db) == before
    assert run(export_args(ck, neo4j_db, "--k", "2", "--model", "other", "--no-paths"), capsys)[0] == 0
    assert run(export_args(ck, neo4j_db, "--k", "1", "--users", "ann"), capsys)[0] == 0
    after = all_recommended(neo4j_db)
    assert [r for r in after if r[:2] == ("lightgcn", "ann")] == [r for r in before if r[:3] == ("lightgcn", "ann", 1)]
    assert [r for r in after if r[:2] == ("lightgcn", "bob")] == [r for r in before if r[:2] == ("lightgcn", "bob")]
    assert len([r for r in after if r[0] == "other"]) == 2 * len(kg.ids("user"))


def assert_one_error(code: int, out: str, err: str, *names: str) -> None:
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1, err
    for name in names:
        assert name in err, (name, err)


@pytest.mark.bolt
def test_bad_input_is_one_error_line_and_writes_nothing(tiny_checkpoint, neo4j_db, capsys, tmp_path) -> None:
    ck, kg = tiny_checkpoint()
    write_neo4j(kg, *neo4j_db[:3], database=neo4j_db.database, progress=False)
    assert run(export_args(ck, neo4j_db, "--k", "2"), capsys)[0] == 0
    before = all_recommended(neo4j_db)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    cases = [(export_args(ck, neo4j_db, "--users", "ann", "nobody"), ["unknown user id 'nobody'"]),
             (export_args(tmp_path / "missing.pt", neo4j_db), ["missing.pt", "not found"]),
             (export_args(corrupt, neo4j_db), [str(corrupt)]),
             (export_args(ck, neo4j_db, "--k", "0"), ["--k"]),
             (export_args(ck, neo4j_db._replace(password="wrong-password")), [neo4j_db.uri])]
    for argv, names in cases:
        assert_one_error(*run(argv, capsys), *names)
        assert all_recommended(neo4j_db) == before, argv
    query(neo4j_db, "MATCH (i:Item {id: 'heat'}) DETACH DELETE i")  # the KG in the database lacks an item
    before = all_recommended(neo4j_db)
    assert_one_error(*run(export_args(ck, neo4j_db), capsys), "no :Item node with id 'heat'", "export-neo4j")
    assert all_recommended(neo4j_db) == before


def test_unreachable_server_and_missing_credentials_are_one_line(tiny_checkpoint, capsys, monkeypatch) -> None:
    ck, _ = tiny_checkpoint()
    uri = f"bolt://127.0.0.1:{free_port()}"
    down = BoltConnection(uri, "root", "password1", "kg")
    assert_one_error(*run(export_args(ck, down), capsys), f"cannot reach Neo4j at {uri}")
    for var in ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    assert_one_error(*run(["export", "--checkpoint", str(ck), "--neo4j", uri], capsys), "--user", "--password")
    assert set(NODE_TYPES) == set(TYPE_OF.values())
