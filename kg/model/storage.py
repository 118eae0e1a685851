"""Save / load a :class:`~kg.model.graph.KnowledgeGraph` to a directory.

Layout (``FORMAT_VERSION`` 1): ``schema.json`` (format version, node counts, edge
types, relation identifiers), ``ids.json`` (external ids per node type in index
order), ``text.json`` and ``images.json`` (per node type, index -> fields / ref),
``edges.npz`` (``src``/``dst`` int64 arrays per edge type) and ``interactions.npz``.
The directory is written under a temporary name beside the target and renamed,
so a reader never sees a half-written KG.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TypeVar

import numpy as np

from kg.errors import KGFormatError
from kg.model.core import NODE_TYPES, GraphCore

G = TypeVar("G", bound=GraphCore)

FORMAT_VERSION = 1
_FILES = ("schema.json", "ids.json", "text.json", "images.json", "edges.npz", "interactions.npz")


def _edge_key(i: int) -> tuple[str, str]:
    return f"e{i}_src", f"e{i}_dst"


def save_kg(kg: GraphCore, directory: str | os.PathLike) -> None:
    """Write ``kg`` to ``directory`` atomically (replacing an existing KG directory)."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        etypes = kg.edge_types()
        arrays: dict[str, np.ndarray] = {}
        for i, et in enumerate(etypes):
            s, d = kg.triples(et)
            ks, kd = _edge_key(i)
            arrays[ks], arrays[kd] = s, d
        np.savez(tmp / "edges.npz", **arrays)
        inter = kg.interactions()
        np.savez(tmp / "interactions.npz", user=inter.user, item=inter.item, rating=inter.rating,
                 timestamp=inter.timestamp)
        schema = {
            "format_version": FORMAT_VERSION,
            "num_nodes": {t: kg.num_nodes(t) for t in NODE_TYPES},
            "edge_types": [list(et) for et in etypes],
            "relation_iris": {r: kg.relation_iris.get(r, r) for r in sorted({et[1] for et in etypes})},
            "num_interactions": len(inter),
        }
        _write_json(tmp / "schema.json", schema)
        _write_json(tmp / "ids.json", {t: kg.ids(t) for t in NODE_TYPES})
        _write_json(tmp / "text.json", {t: {str(i): f for i, f in kg.text[t].items()} for t in NODE_TYPES})
        _write_json(tmp / "images.json", {t: {str(i): r for i, r in kg.images[t].items()} for t in NODE_TYPES})
        if target.exists():
            if not (target / "schema.json").exists():
                raise KGFormatError(f"{target}: exists and is not a KG directory; refusing to replace it")
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / "kg")
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_kg(directory: str | os.PathLike, cls: type[G]) -> G:
    """Read a KG directory written by :func:`save_kg` into a new ``cls()``."""
    root = Path(directory)
    missing = [f for f in _FILES if not (root / f).is_file()]
    if missing:
        raise KGFormatError(f"{root}: not a KG directory (missing {', '.join(missing)})")
    schema = _read_json(root / "schema.json")
    if schema.get("format_version") != FORMAT_VERSION:
        raise KGFormatError(
            f"{root / 'schema.json'}: format version {schema.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    kg = cls()
    ids = _read_json(root / "ids.json")
    for t in NODE_TYPES:
        for ext in ids.get(t, []):
            kg.add_node(t, ext)
        if kg.num_nodes(t) != schema["num_nodes"][t]:
            raise KGFormatError(f"{root / 'ids.json'}: {t} count differs from schema.json")
    text = _read_json(root / "text.json")
    images = _read_json(root / "images.json")
    for t in NODE_TYPES:
        kg.text[t] = {int(i): f for i, f in text.get(t, {}).items()}
        kg.images[t] = {int(i): r for i, r in images.get(t, {}).items()}
    kg.relation_iris.update(schema.get("relation_iris", {}))
    with np.load(root / "edges.npz") as edges:
        for i, et in enumerate(schema["edge_types"]):
            ks, kd = _edge_key(i)
            kg.add_triples(tuple(et), edges[ks], edges[kd])
    with np.load(root / "interactions.npz") as inter:
        u, it, r, ts = kg._inter
        u.extend(inter["user"].tolist())
        it.extend(inter["item"].tolist())
        r.extend(inter["rating"].tolist())
        ts.extend(inter["timestamp"].tolist())
    return kg


def _write_json(path: Path, obj: object) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise KGFormatError(f"{path}: unreadable ({e})") from e
