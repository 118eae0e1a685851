"""Shared fixtures: a Bolt (Neo4j protocol) server for tests marked ``bolt``.

``bolt_server`` (session) yields a :class:`kg.neo4j.bolt_server.BoltConnection`
``(uri, user, password, database)``:

- env ``MMKGREC_BOLT_URI`` set (a server started by ``.ci/run``): that server, with
  ``MMKGREC_BOLT_USER`` (default ``root``), ``MMKGREC_BOLT_PASSWORD`` and
  ``MMKGREC_BOLT_DATABASE`` (default ``kg``);
- else an ArcadeDB server started for the session in a temporary directory;
- ArcadeDB not installed: the test is skipped, except under CI (env ``CI`` set) where
  that is a failure.

``neo4j_db`` (function) is the same connection with the database emptied first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from kg.neo4j.bolt_server import USER, BoltConnection, BoltServer, arcadedb_available


@pytest.fixture(scope="session")
def bolt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoltConnection]:
    uri = os.environ.get("MMKGREC_BOLT_URI")
    if uri:
        yield BoltConnection(
            uri,
            os.environ.get("MMKGREC_BOLT_USER", USER),
            os.environ.get("MMKGREC_BOLT_PASSWORD", ""),
            os.environ.get("MMKGREC_BOLT_DATABASE", "kg"),
        )
        return
    reason = arcadedb_available()
    if reason is not None:
        message = f"no Bolt server: {reason}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (a skip under CI is a failure)")
        pytest.skip(message)
    with BoltServer(root=tmp_path_factory.mktemp("arcadedb")) as server:
        yield server.connection


@pytest.fixture
def neo4j_db(bolt_server: BoltConnection) -> BoltConnection:
    """The Bolt server's database with every node and relationship deleted."""
    import neo4j

    with neo4j.GraphDatabase.driver(bolt_server.uri, auth=(bolt_server.user, bolt_server.password)) as driver:
        with driver.session(database=bolt_server.database) as session:
            session.run("MATCH (n) DETACH DELETE n").consume()
    return bolt_server


def _movie_kg():
    """Five films, three users, a director / genre / sequel KG, a profile entity; every node has a name."""
    from kg.model.graph import KnowledgeGraph

    kg = KnowledgeGraph()
    for s_t, s, rel, d_t, d in [
        ("item", "toy", "director", "entity", "lasseter"), ("item", "bug", "director", "entity", "lasseter"),
        ("item", "toy", "genre", "entity", "comedy"), ("item", "heat", "genre", "entity", "comedy"),
        ("item", "heat", "film.film.directed_by", "entity", "m.x"), ("item", "toy", "film.film.sequel", "item", "toy2"),
        ("item", "ronin", "film.film.directed_by", "entity", "m.x"), ("user", "ann", "ageGroup", "entity", "age25"),
            ("user", "bob", "ageGroup", "entity", "age25")]:
        kg.add_triple(s_t, s, rel, d_t, d)
    for t, ext, name in [("item", "toy", "Toy Story"), ("item", "bug", "A Bug's Life"), ("item", "heat", "Heat"),
                         ("item", "ronin", "Ronin"), ("item", "toy2", "Toy Story 2"),
                         ("entity", "lasseter", "John Lasseter"), ("entity", "comedy", "Comedy")]:
        kg.add_text(t, ext, "label" if t == "entity" else "name", name)
    for u, i, r in [("ann", "toy", 5), ("ann", "ronin", 2), ("bob", "toy", 4), ("bob", "bug", 5), ("cy", "heat", 2),
                    ("cy", "bug", 4), ("bob", "toy2", 3), ("ann", "heat", 1), ("cy", "toy", 3), ("bob", "heat", 2)]:
        kg.add_interaction(u, i, r, 0)
    return kg


def write_tiny_checkpoint(root, model: str = "lightgcn"):
    """``(checkpoint path, KnowledgeGraph)``: the tiny movie KG saved under ``root / "kg"`` and a checkpoint in
    train.py's format (random LightGCN weights, or a fitted baseline such as ``mostpop``, refitted on load)."""
    import torch

    from gnn.lightgcn_baseline import LightGCNBaseline

    kg = _movie_kg()
    kg_dir = root / "kg"
    if not kg_dir.exists():
        kg.save(str(kg_dir))
    torch.manual_seed(0)
    state = LightGCNBaseline(kg.num_nodes("user"), kg.num_nodes("item"), 8, 2).state_dict() \
        if model == "lightgcn" else {}
    ck = {"model_state": state, "config": {"model": model, "embedding_dim": 8, "num_layers": 2},
          "kg_dir": str(kg_dir), "id_maps": {t: kg.ids(t) for t in ("user", "item", "entity")},
          "split": {"method": "random", "seed": 0, "ratios": [0.8, 0.1, 0.1]}}
    path = root / f"{model}.pt"
    torch.save(ck, path)
    return path, kg


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """``make(model="lightgcn") -> (checkpoint path, KnowledgeGraph)``: see :func:`write_tiny_checkpoint`."""
    return lambda model="lightgcn": write_tiny_checkpoint(tmp_path, model)
