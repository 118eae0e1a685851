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
