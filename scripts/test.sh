#!/usr/bin/env bash
# Runs the test suite against a real Bolt server (ArcadeDB from the arcadedb-embedded
# wheel) that this script starts on 127.0.0.1 and stops when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
work=$(mktemp -d)
port=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
stop_server() { "$PY" -m kg.neo4j.bolt_server stop --pidfile "$work/bolt.pid" || true; rm -rf "$work"; }
trap stop_server EXIT
"$PY" -m kg.neo4j.bolt_server start --port "$port" --root "$work/arcadedb" --password mmkgrec-test \
    --database kg --pidfile "$work/bolt.pid"
export MMKGREC_BOLT_URI="bolt://127.0.0.1:$port" MMKGREC_BOLT_USER=root \
       MMKGREC_BOLT_PASSWORD=mmkgrec-test MMKGREC_BOLT_DATABASE=kg
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
"$PY" -m ruff check .
"$PY" -m pytest -q "$@"
