"""Explanation paths read from a Bolt server (kg/neo4j/paths.py) match the in-memory search
(kg/paths/path_search.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kg.errors import MMKGError
from kg.model.graph import NODE_TYPES, KnowledgeGraph
from kg.neo4j.bolt_server import BoltConnection
from kg.neo4j.paths import find_paths_neo4j, path_query
from kg.neo4j.sink import write_neo4j
from kg.paths.path_search import PathIndex

pytestmark = pytest.mark.bolt
NASTY_ID = "o'brien\"`}) DETACH DELETE n //"
UNBOUNDED = {"max_paths": 10**6, "max_branch": 10**6, "per_meeting": 10**6, "time_budget_s": 60.0}


def small_kg() -> KnowledgeGraph:
    kg = KnowledgeGraph()
    kg.add_triple("item", "toy", "director", "entity", "lasseter")
    kg.add_triple("item", "bug", "director", "entity", "lasseter")
    kg.add_triple("item", "toy", "genre", "entity", "comedy")
    kg.add_triple("item", "heat", "genre", "entity", "comedy")
    kg.add_triple("item", "heat", "film.film.directed_by", "entity", "m.x")
    kg.add_triple("entity", "m.x", "film.director.film", "item", "heat")  # parallel inverse edge
    kg.add_triple("item", "ronin", "film.film.directed_by", "entity", "m.x")
    kg.add_triple("item", "toy", "film.film.sequel", "item", "toy2")
    kg.add_triple("user", NASTY_ID, "ageGroup", "entity", "age25")
    kg.add_triple("user", "u2", "ageGroup", "entity", "age25")
    for u, i, r in [(NASTY_ID, "toy", 5), (NASTY_ID, "ronin", 2), ("u2", "toy", 4), ("u2", "bug", 5),
                    ("u3", "heat", 2), ("u3", "bug", 4), ("u2", "toy2", 3), (NASTY_ID, "heat", 1)]:
        kg.add_interaction(u, i, r, 0)
    return kg


def test_same_paths_as_the_in_memory_search(neo4j_db: BoltConnection) -> None:
    kg = small_kg()
    write_neo4j(kg, *neo4j_db[:3], database=neo4j_db.database, progress=False)
    inter = kg.interactions()
    train = inter.subset(np.arange(len(inter) - 1))  # (NASTY_ID, heat) is held out but in the database
    index = PathIndex(kg, train)
    total = 0
    for user in range(kg.num_nodes("user")):
        for item in range(kg.num_nodes("item")):
            found = find_paths_neo4j(*neo4j_db[:3], kg, user, item, database=neo4j_db.database, index=index)
            expected = index.find_paths(user, item, **UNBOUNDED).paths
            # compare the path structures (node sequences + representative relations), not engine row counts
            assert {(p.nodes, p.steps) for p in found} == {(p.nodes, p.steps) for p in expected}, (user, item)
            for p in found:
                assert len(set(p.nodes)) == len(p.nodes)
                assert all(index.has_edge(s, r, d) for s, r, d in p.edges())
            total += len(found)
    assert total > 10
    nasty, heat = kg.index_of("user", NASTY_ID), kg.index_of("item", "heat")
    through_held_out = find_paths_neo4j(*neo4j_db[:3], kg, nasty, kg.index_of("item", "bug"),
                                        database=neo4j_db.database)
    assert any(("item", heat) in p.nodes[1:2] for p in through_held_out)  # without the index: every RATED edge
    assert not index.has_edge(("user", nasty), "rates", ("item", heat))


def test_unknown_ids_and_bounds(neo4j_db: BoltConnection) -> None:
    kg = small_kg()
    write_neo4j(kg, *neo4j_db[:3], database=neo4j_db.database, progress=False)
    other = small_kg()
    other.add_interaction("nobody", "toy", 1, 0)
    with pytest.raises(MMKGError, match="unknown user id 'nobody'"):
        find_paths_neo4j(*neo4j_db[:3], other, other.index_of("user", "nobody"), 0, database=neo4j_db.database)
    with pytest.raises(MMKGError, match="min_hops"):
        find_paths_neo4j(*neo4j_db[:3], kg, 0, 0, database=neo4j_db.database, min_hops=3, max_hops=2)
    with pytest.raises(MMKGError, match="integer in 1..6"):
        path_query("2]-() DETACH DELETE n //")  # type: ignore[arg-type]
    assert "$user" in path_query(3) and "[*3]" in path_query(3) and "$limit" in path_query(3)
    assert len(find_paths_neo4j(*neo4j_db[:3], kg, 0, 0, database=neo4j_db.database, limit=1, max_hops=3)) <= 2


def write_checkpoint(tmp_path) -> tuple[str, KnowledgeGraph]:
    """``small_kg()`` saved with a LightGCN checkpoint in train.py's format (random weights)."""
    from gnn.lightgcn_baseline import LightGCNBaseline

    kg = small_kg()
    kg.save(str(tmp_path / "kg"))
    torch.manual_seed(0)
    model = LightGCNBaseline(kg.num_nodes("user"), kg.num_nodes("item"), 8, 2)
    torch.save({"model_state": model.state_dict(), "config": {"model": "lightgcn", "embedding_dim": 8,
                "num_layers": 2}, "kg_dir": str(tmp_path / "kg"), "id_maps": {t: kg.ids(t) for t in NODE_TYPES},
                "split": {"method": "random", "seed": 0, "ratios": [0.8, 0.1, 0.1]}}, tmp_path / "best.pt")
    return str(tmp_path / "best.pt"), kg


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    import explain

    code = explain.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_reads_the_same_explanation_from_neo4j(tmp_path, capsys, neo4j_db) -> None:
    ck, kg = write_checkpoint(tmp_path)
    write_neo4j(kg, *neo4j_db[:3], database=neo4j_db.database, progress=False)
    docs = []
    for extra in ([], ["--neo4j", neo4j_db.uri, "--neo4j-user", neo4j_db.user, "--neo4j-password",
                       neo4j_db.password, "--database", neo4j_db.database]):
        out_file = tmp_path / f"ex{len(docs)}.json"
        code, _, err = run_cli(["--checkpoint", ck, "--user", NASTY_ID, "--item", "toy2", "--candidates", "100",
                                "--paths", "5", "--format", "json", "--out", str(out_file), *extra], capsys)
        assert code == 0, err
        docs.append(json.loads(out_file.read_text())["explanations"][0])
    assert len(docs[0]["paths"]) == 2, "two paths explain Toy Story 2 for the user with the nasty id"
    # all candidates scored on both sides: the same paths, drops and words (held-out ratings never used)
    assert [(p["nodes"], p["steps"], p["text"]) for p in docs[0]["paths"]] == [
        (p["nodes"], p["steps"], p["text"]) for p in docs[1]["paths"]]
    assert [p["drop"] for p in docs[0]["paths"]] == pytest.approx([p["drop"] for p in docs[1]["paths"]])
    code, _, err = run_cli(["--checkpoint", ck, "--user", NASTY_ID, "--item", "toy2", "--neo4j", neo4j_db.uri,
                            "--neo4j-user", neo4j_db.user, "--neo4j-password", "wrong-password"], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
