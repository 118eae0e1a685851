"""Texts for entities: a named entity is its label (or name / title); an unnamed one whose id reads as a
name (``http://example.org/person/Jonathan_Demme`` -> ``Jonathan Demme``) is that name; an unnamed one with
an opaque id (a Freebase id such as ``m.0abc12``, a number, a hash) is described by its neighbourhood in the
graph, e.g.

    ``directed by of: Toy Story; A Bug's Life. nationality: United States``

(relation names made readable, up to ``max_neighbours`` neighbours, named ones
first; an incoming relation reads ``"<relation> of: ..."``). An entity with neither
a name nor a neighbour gets the empty text (its feature mask is then ``False``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from urllib.parse import unquote

from kg.model.graph import KnowledgeGraph

NAME_FIELDS: tuple[str, ...] = ("label", "name", "title")
DESCRIPTION_FIELDS: tuple[str, ...] = ("description",)
_OPAQUE = re.compile(r"^(?:[mg]\.[0-9a-z_]+|[0-9a-f-]{8,}|[QP]?\d+|[\W\d_]*)$", re.IGNORECASE)


def id_name(ext_id: str) -> str | None:
    """The readable name in an id's last path / fragment part (``.../person/Jonathan_Demme`` ->
    ``Jonathan Demme``), or ``None`` when that part is opaque (a Freebase ``m.`` / ``g.`` id, a Wikidata
    ``Q42``, a number, a hex hash or UUID, nothing but digits and punctuation)."""
    last = unquote(re.split(r"[/#]", ext_id.rstrip("/#"))[-1])
    last = last.split(":")[-1]  # a CURIE or URN: its local part
    if not last or _OPAQUE.match(last):
        return None
    return re.sub(r"\s+", " ", last.replace("_", " ")).strip() or None


def readable_relation(name: str) -> str:
    """``film.film.directed_by`` -> ``directed by``; ``ageGroup`` -> ``age group``."""
    last = re.split(r"[/#.]", name.rstrip("/#."))[-1] or name
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", last).replace("_", " ")
    return re.sub(r"\s+", " ", spaced).strip().lower()


def node_label(kg: KnowledgeGraph, ntype: str, index: int) -> str | None:
    """The node's first label / name / title text, or ``None`` when it has none."""
    fields = kg.node_text(ntype, index)
    for key in NAME_FIELDS:
        for value in fields.get(key, []):
            if value.strip():
                return value.strip()
    return None


def describe_entities(kg: KnowledgeGraph, max_neighbours: int = 5) -> list[str]:
    """One text per entity (index order): its label, else its description field, else the name its id
    reads as (:func:`id_name`), else a description from its relations (see the module docstring), else ``""``."""
    n = kg.num_nodes("entity")
    ids = kg.ids("entity")
    texts: list[str | None] = [node_label(kg, "entity", i) for i in range(n)]
    for i in range(n):
        if texts[i] is None:
            desc = [v for k in DESCRIPTION_FIELDS for v in kg.node_text("entity", i).get(k, []) if v.strip()]
            texts[i] = desc[0].strip() if desc else id_name(ids[i])
    pending = {i for i in range(n) if texts[i] is None}
    if not pending:
        return [t or "" for t in texts]
    # entity -> {(readable relation, direction): [neighbour (ntype, index), ...]}
    groups: dict[int, dict[tuple[str, str], list[tuple[str, int]]]] = defaultdict(lambda: defaultdict(list))
    for src_t, rel, dst_t in kg.edge_types():
        src, dst = kg.triples((src_t, rel, dst_t))
        name = readable_relation(rel)
        if dst_t == "entity":
            for s, d in zip(src.tolist(), dst.tolist(), strict=True):
                if d in pending:
                    groups[d][(name, "in")].append((src_t, s))
        if src_t == "entity":
            for s, d in zip(src.tolist(), dst.tolist(), strict=True):
                if s in pending:
                    groups[s][(name, "out")].append((dst_t, d))
    labels: dict[tuple[str, int], str | None] = {}

    def label(node: tuple[str, int]) -> str | None:
        if node not in labels:
            labels[node] = node_label(kg, *node)
        return labels[node]

    for i in pending:
        texts[i] = _describe(groups.get(i, {}), label, max_neighbours)
    return [t or "" for t in texts]


def _describe(groups: dict, label, max_neighbours: int) -> str:
    named: dict[tuple[str, str], list[str]] = {}
    for key, nodes in groups.items():
        seen: list[str] = []
        for node in nodes:
            text = label(node)
            if text is not None and text not in seen:
                seen.append(text)
        named[key] = seen
    # relations with named neighbours first (most first), then the rest; ties by name
    order = sorted(groups, key=lambda k: (-len(named[k]), k))
    parts: list[str] = []
    budget = max_neighbours
    for key in order:
        rel, direction = key
        head = f"{rel} of" if direction == "in" else rel
        if named[key] and budget > 0:
            shown = named[key][:budget]
            budget -= len(shown)
            parts.append(f"{head}: {'; '.join(shown)}")
        elif not named[key] and len(parts) < max_neighbours:
            count = len(set(groups[key]))
            parts.append(f"{head}: {count} unnamed {'entity' if count == 1 else 'entities'}")
    return ". ".join(parts)
