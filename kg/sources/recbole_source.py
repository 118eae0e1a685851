"""RecBole atomic files (``.inter``, ``.item``, ``.user``, ``.kg``, ``.link``) -> :class:`KnowledgeGraph`.

An atomic file is tab-separated with a header of ``name:type`` fields, ``type`` one of
``token``, ``token_seq`` (space-separated tokens), ``float``, ``float_seq``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from kg.errors import KGFormatError
from kg.model.graph import KnowledgeGraph

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
TITLE_FIELD = "name"
"""Text field that an item's title column (``title`` or ``*_title``) becomes."""


@dataclass
class AtomicFile:
    """A parsed atomic file: column names and types, and the data rows with their line numbers."""

    path: Path
    names: list[str]
    types: list[str]
    rows: list[tuple[int, list[str]]]

    def column(self, name: str) -> int:
        """Position of column ``name``; raises :class:`KGFormatError` listing the columns present."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KGFormatError(
                f"{self.path}: no column {name!r} (columns: {', '.join(self.names)})"
            ) from None

    def optional_column(self, name: str) -> int | None:
        return self.names.index(name) if name in self.names else None


def _check_float(path: Path, lineno: int, name: str, value: str, seq: bool) -> None:
    for v in value.split(" ") if seq else [value]:
        if v == "":
            continue
        try:
            float(v)
        except ValueError:
            raise KGFormatError(f"{path}: line {lineno}: column {name!r}: {v!r} is not a number") from None


def read_atomic(path: str | os.PathLike) -> AtomicFile:
    """Parse one atomic file, checking the header, the field count of every line and the float fields."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="\n") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError as e:
        raise KGFormatError(f"{path}: not UTF-8 text ({e})") from e
    except OSError as e:
        raise KGFormatError(f"{path}: cannot read ({e.strerror})") from e
    while lines and lines[-1].strip("\r") == "":
        lines.pop()
    if not lines:
        raise KGFormatError(f"{path}: empty file (expected a 'name:type' header)")
    names, types = [], []
    for field in lines[0].rstrip("\r").split("\t"):
        name, sep, typ = field.rpartition(":")
        if not sep or not name or typ not in ATOMIC_TYPES:
            raise KGFormatError(
                f"{path}: line 1: header field {field!r} is not 'name:type' with type one of {', '.join(ATOMIC_TYPES)}"
            )
        names.append(name)
        types.append(typ)
    checks = [(i, names[i], types[i] == "float_seq") for i, t in enumerate(types) if t.startswith("float")]
    rows: list[tuple[int, list[str]]] = []
    n = len(names)
    for lineno, line in enumerate(lines[1:], start=2):
        fields = line.rstrip("\r").split("\t")
        if len(fields) != n:
            if line.strip() == "":
                raise KGFormatError(f"{path}: line {lineno}: empty line")
            raise KGFormatError(f"{path}: line {lineno}: {len(fields)} tab-separated fields, expected {n}")
        for i, name, seq in checks:
            _check_float(path, lineno, name, fields[i], seq)
        rows.append((lineno, fields))
    return AtomicFile(path, names, types, rows)


def _float_or_none(value: str) -> float | None:
    if value == "":
        return None
    x = float(value)
    return None if math.isnan(x) else x


def _title_column(names: list[str]) -> str | None:
    for n in names:
        if n == "title" or n.endswith("_title"):
            return n
    return None


def _read_items(kg: KnowledgeGraph, af: AtomicFile) -> None:
    key = af.column("item_id")
    title = _title_column(af.names)
    fields = [(i, TITLE_FIELD if n == title else n) for i, (n, t) in enumerate(zip(af.names, af.types, strict=True))
              if i != key and t in ("token", "token_seq")]
    for _, row in af.rows:
        item = row[key]
        kg.add_node("item", item)
        for i, field in fields:
            if row[i]:
                kg.add_text("item", item, field, row[i])


def _read_users(kg: KnowledgeGraph, af: AtomicFile) -> None:
    key = af.column("user_id")
    attrs = [(i, n, t == "token_seq") for i, (n, t) in enumerate(zip(af.names, af.types, strict=True))
             if i != key and t in ("token", "token_seq")]
    labelled: set[str] = set()
    for _, row in af.rows:
        user = row[key]
        kg.add_node("user", user)
        for i, attr, seq in attrs:
            for value in row[i].split(" ") if seq else [row[i]]:
                if not value:
                    continue
                entity = f"{attr}={value}"
                kg.add_triple("user", user, attr, "entity", entity)
                if entity not in labelled:
                    labelled.add(entity)
                    kg.add_text("entity", entity, "label", f"{attr.replace('_', ' ')} {value}")


def _read_interactions(kg: KnowledgeGraph, af: AtomicFile) -> None:
    u, i = af.column("user_id"), af.column("item_id")
    r, t = af.optional_column("rating"), af.optional_column("timestamp")
    for lineno, row in af.rows:
        if not row[u] or not row[i]:
            raise KGFormatError(f"{af.path}: line {lineno}: empty user_id or item_id")
        rating = None if r is None else _float_or_none(row[r])
        ts = None if t is None else _float_or_none(row[t])
        kg.add_interaction(row[u], row[i], rating, ts)


def read_links(af: AtomicFile) -> dict[str, str]:
    """``entity_id -> item_id`` from a ``.link`` file; an entity linked to two items is an error."""
    i, e = af.column("item_id"), af.column("entity_id")
    links: dict[str, str] = {}
    for lineno, row in af.rows:
        old = links.setdefault(row[e], row[i])
        if old != row[i]:
            raise KGFormatError(f"{af.path}: line {lineno}: entity {row[e]!r} linked to items {old!r} and {row[i]!r}")
    return links


def _read_kg(kg: KnowledgeGraph, af: AtomicFile, links: dict[str, str]) -> None:
    h, r, t = af.column("head_id"), af.column("relation_id"), af.column("tail_id")
    for lineno, row in af.rows:
        head, rel, tail = row[h], row[r], row[t]
        if not head or not rel or not tail:
            raise KGFormatError(f"{af.path}: line {lineno}: empty head_id, relation_id or tail_id")
        ht, head = ("item", links[head]) if head in links else ("entity", head)
        tt, tail = ("item", links[tail]) if tail in links else ("entity", tail)
        kg.add_triple(ht, head, rel, tt, tail)


def read_recbole(directory: str | os.PathLike, dataset_name: str) -> KnowledgeGraph:
    """Read ``<directory>/<dataset_name>.{inter,item,user,kg,link}`` into a new KG.

    ``.inter`` is required (``user_id``, ``item_id``, optional ``rating`` / ``timestamp``);
    the others are read when present:

    - ``.item``: every ``token`` / ``token_seq`` column becomes an item text field named
      after the column, except the title column (``title`` / ``*_title``) which becomes ``"name"``;
    - ``.user``: each ``token`` (or each token of a ``token_seq``) profile attribute becomes an edge
      ``user -[attr]-> entity "attr=value"`` whose ``label`` is ``"attr value"``;
    - ``.kg``: ``head_id relation_id tail_id`` triples between entities, the relation named as in the file;
    - ``.link``: ``item_id entity_id``: the linked entity *is* the item, so its triples attach to the item node.

    ``float`` columns other than rating / timestamp are ignored.
    Raises :class:`KGFormatError` naming the file and line of a malformed line.
    """
    root = Path(directory)
    base = root / dataset_name
    inter = Path(f"{base}.inter")
    if not inter.is_file():
        raise KGFormatError(f"{inter}: no such file (a RecBole dataset needs at least {dataset_name}.inter)")
    kg = KnowledgeGraph()

    def optional(suffix: str) -> AtomicFile | None:
        p = Path(f"{base}.{suffix}")
        return read_atomic(p) if p.is_file() else None

    if (users := optional("user")) is not None:
        _read_users(kg, users)
    if (items := optional("item")) is not None:
        _read_items(kg, items)
    _read_interactions(kg, read_atomic(inter))
    link = optional("link")
    links = read_links(link) if link is not None else {}
    if (triples := optional("kg")) is not None:
        _read_kg(kg, triples, links)
    return kg
