import os
import subprocess
import sys
from pathlib import Path

import pytest

import kg.neo4j.sink
import kg.neo4j.source
from kg.__main__ import main
from kg.model.graph import KnowledgeGraph

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
EX = "http://example.org/"


def _ingest(tmp_path, *args: str) -> tuple[int, Path]:
    out = tmp_path / "out" / "kg"
    return main(["ingest", *args, "--out", str(out)]), out


def test_ingest_saves_and_prints_stats(tmp_path, capsys):
    rc, out = _ingest(tmp_path, str(FIXTURES / "small.ttl"))
    assert rc == 0
    kg = KnowledgeGraph.load(out)
    assert (kg.num_nodes("user"), kg.num_nodes("item"), kg.num_nodes("entity")) == (3, 4, 4)
    assert kg.num_triples() == 7 and kg.num_interactions() == 4
    text = capsys.readouterr().out
    assert "read 40 triples from 1 file(s)" in text
    assert "nodes: user 3, item 4, entity 4 (total 11)" in text
    assert "relation edges: 7 in 6 edge types" in text
    assert "interactions: 4 (with rating 3, with timestamp 2; 3 users, 4 items)" in text
    assert "items without text: 2; items without image: 2" in text  # i3, i4
    assert sorted(os.listdir(out.parent)) == ["kg"]  # no temporary directory left


def test_stats_of_a_saved_kg(tmp_path, capsys):
    rc, out = _ingest(tmp_path, str(FIXTURES / "small.nt"))
    capsys.readouterr()
    assert main(["stats", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split() == ["genre", "item", "->", "entity", "2"] for line in lines)
    # user degrees: u1 = gender + 2 interactions, u2 = 1, u3 = 1
    assert any(line.split()[:9] == ["user", "min", "1", "median", "1", "mean", "1.67", "max", "3"] for line in lines)
    assert main(["stats", str(out), "--json"]) == 0
    assert '"relation_edges": 7' in capsys.readouterr().out


def test_mapping_and_interactions_table(tmp_path, capsys):
    table = tmp_path / "extra.csv"
    table.write_text("user,item,stars\nc1,p2,4\n")
    rc, out = _ingest(tmp_path, str(FIXTURES / "shop.ttl"), "--mapping", str(FIXTURES / "shop_mapping.toml"),
                      "--interactions", str(table), "--user-col", "user", "--item-col", "item", "--rating-col",
                      "stars", "--user-prefix", "http://shop.example.org/", "--item-prefix", "http://shop.example.org/")
    assert rc == 0, capsys.readouterr().err
    kg = KnowledgeGraph.load(out)
    assert kg.num_interactions() == 4  # 2 orders + 1 view + 1 table row
    inter = kg.interactions()
    assert (kg.ids("user")[inter.user[-1]], kg.ids("item")[inter.item[-1]], float(inter.rating[-1])) == (
        "http://shop.example.org/c1", "http://shop.example.org/p2", 4.0)


BAD_INPUTS = [
    (["{F}/malformed.ttl"], r"malformed.ttl:5: malformed turtle"),
    (["{F}/small.ttl", "--format", "nt"], "small.ttl:2: malformed ntriples"),
    (["{F}/small.ttl", "--format", "bogus"], "unknown RDF format 'bogus'; known formats: turtle (.ttl/.turtle), "),
    (["{F}/small.ttl", "--mapping", "{F}/mapping_typo.toml"], "unknown mapping key 'item_clases' (did you mean "
                                                              "'item_classes'?)"),
    (["{F}/small.ttl", "--mapping", "{F}/mapping_bad_toml.toml"], "mapping_bad_toml.toml:2: invalid TOML"),
    (["{F}/bad_interactions.ttl", "--strict"], "2 interaction(s) with an unknown user or item"),
    (["{F}/empty.ttl"], "empty.ttl: no users, items or entities found"),
    (["{T}/data.foo"], "data.foo: cannot tell the RDF format from extension '.foo'"),
    (["{F}/small.ttl", "--neo4j", "bolt://localhost:1"], "Neo4j needs --user (or NEO4J_USER)"),
    ([], "ingest: give RDF files and/or --neo4j"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, monkeypatch, args, message):
    for var in ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "data.foo").write_text("<a> <b> <c> .\n")
    rc, out = _ingest(tmp_path, *(a.format(F=FIXTURES, T=tmp_path) for a in args))
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.parent.exists()


def test_bad_input_via_python_m_kg(tmp_path):
    out = tmp_path / "kg"
    proc = subprocess.run([sys.executable, "-m", "kg", "ingest", str(FIXTURES / "malformed.ttl"), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "malformed.ttl:5: malformed turtle" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists() and os.listdir(tmp_path) == []


def test_neo4j_wiring_with_credentials_from_env(tmp_path, monkeypatch, capsys):
    calls = {}

    def fake_read(uri, user, password, mapping, database=None):
        calls["read"] = (uri, user, password, mapping.neo4j_user_label, database)
        kg = KnowledgeGraph()
        kg.add_node("user", EX + "user/u9")
        return kg

    def fake_write(kg, uri, user, password, database=None, batch_size=5000):
        calls["write"] = (kg.num_nodes("user"), uri, user, password, database, batch_size)
        return {"user": kg.num_nodes("user"), "item": kg.num_nodes("item")}

    monkeypatch.setattr(kg.neo4j.source, "read_neo4j", fake_read)
    monkeypatch.setattr(kg.neo4j.sink, "write_neo4j", fake_write)
    monkeypatch.setenv("NEO4J_URI", "bolt://db:7687")
    monkeypatch.setenv("NEO4J_USER", "neo")
    monkeypatch.setenv("NEO4J_PASSWORD", "secret")
    rc, out = _ingest(tmp_path, str(FIXTURES / "small.ttl"), "--neo4j", "--database", "movies")
    assert rc == 0
    assert calls["read"] == ("bolt://db:7687", "neo", "secret", "User", "movies")
    assert KnowledgeGraph.load(out).num_nodes("user") == 4  # u9 from Neo4j + 3 from the Turtle
    assert main(["export-neo4j", str(out), "--neo4j", "bolt://other:7687", "--batch-size", "10"]) == 0
    assert calls["write"] == (4, "bolt://other:7687", "neo", "secret", None, 10)
    assert "wrote bolt://other:7687: user 4, item 4" in capsys.readouterr().out


def test_kg_stats_by_hand():
    from kg.model.stats import format_stats, kg_stats

    g = KnowledgeGraph()
    g.add_triple("item", "i1", "genre", "entity", "g1")
    g.add_triple("item", "i2", "genre", "entity", "g1")
    g.add_triple("item", "i1", "genre", "entity", "g1")  # duplicate, counted once
    g.add_node("entity", "lonely")
    g.add_interaction("u1", "i1", 5.0, None)
    g.add_interaction("u1", "i2", None, 10.0)
    g.add_text("item", "i1", "name", "One")
    g.set_image("item", "i2", "/p/2.jpg")
    s = kg_stats(g)
    assert s["nodes"] == {"user": 1, "item": 2, "entity": 2}
    assert s["relations"] == [{"relation": "genre", "src": "item", "dst": "entity", "edges": 2}]
    assert s["relation_edges"] == 2
    assert s["interactions"] == {"count": 2, "with_rating": 1, "with_timestamp": 1, "users": 1, "items": 2}
    assert s["degree"]["item"] == {"min": 2, "median": 2.0, "mean": 2.0, "max": 2}
    assert s["degree"]["entity"] == {"min": 0, "median": 1.0, "mean": 1.0, "max": 2}
    assert s["isolated"] == {"user": 0, "item": 0, "entity": 1}
    assert (s["items_without_text"], s["items_without_image"]) == (1, 1)
    assert "entity min 0  median 1  mean 1.00  max 2  isolated 1" in format_stats(s)
    assert s["relation_edges_by_namespace"] == {"(no namespace)": 2}
    g.add_triple("item", "i1", "film.film.genre", "entity", "g1")
    g.relation_iris["film.film.genre"] = "http://rdf.freebase.com/ns/film.film.genre"
    by_ns = kg_stats(g)["relation_edges_by_namespace"]
    assert by_ns == {"(no namespace)": 2, "http://rdf.freebase.com/ns/": 1}
    assert "namespace http://rdf.freebase.com/ns/: 1 edges" in format_stats(kg_stats(g))
