#!/usr/bin/env bash
# Installs mmkgrec and everything it needs from the project's own files.
# torch / torchvision first, pinned to the pair that lies on this machine's disk
# (PyPI's torchvision does not import beside the torch 2.13.0 CPU wheel), so pip
# never resolves a torch from the network.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install -q --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
"$PY" -m pip install -q --disable-pip-version-check -e ".[dev]"
"$PY" -c "import torch, torchvision, torch_geometric, open_clip, rdflib, neo4j; print('mmkgrec setup ok: torch', torch.__version__)"
