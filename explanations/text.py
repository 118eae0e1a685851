"""Explanations in words: every node by its name, every relation by a readable label.

``Recommended A Bug's Life because you rated Toy Story 5 stars, and both were directed by John Lasseter.``

Items read as their title, named entities as their label, an unnamed entity (a Freebase ``m.xxx``) by its
graph description from :func:`encoders.entity_descriptions.describe_entities` (computed once, lazily),
other users as ``user <id>``, and the explained user as ``you``. Relations read through
:func:`kg.paths.relation_labels.step_label`. Common path shapes have templates (shared entity, similar user,
shared profile, item-item link); any other path reads hop by hop. Also here: what an explanation is
(:class:`Explanation`: :class:`ScoredPath` s, best first) and its JSON form (:func:`explanation_json`).
"""

from __future__ import annotations

from dataclasses import dataclass

from kg.model.graph import INTERACTION_RELATION, KnowledgeGraph
from kg.paths.path_search import KGPath, Node, PathIndex
from kg.paths.relation_labels import step_label

NOUN_LABELS = ("age group", "content rating")
DESCRIPTION_CHARS = 90
_PLURAL = {"stars": "star", "stars in": "star in", "has sequel": "have sequel", "has prequel": "have prequel",
           "about": "are about", "won": "won", "wrote": "wrote", "directed": "directed", "produced": "produced",
           "shot": "shot", "made": "made"}


def _flip(direction: str) -> str:
    return "in" if direction == "out" else "out"


@dataclass(frozen=True)
class ScoredPath:
    """A path and ``drop``: ``s(user, item)`` minus the score with the path's edges masked."""

    path: KGPath
    drop: float


@dataclass(frozen=True)
class Explanation:
    """Why ``item`` for ``user``: the model's ``score`` and the ``paths`` that carry most of it (best first)."""

    user: int
    item: int
    score: float
    paths: list[ScoredPath]
    candidates: int  # paths the search found (the model scored up to Explainer.candidates of them)
    truncated: bool
    seconds: float


def rank_paths(paths: list[KGPath], drops: list[float], top: int) -> list[ScoredPath]:
    """The ``top`` paths with a positive drop, largest drop first (ties: shorter, higher prior, node ids)."""
    order = sorted(range(len(paths)), key=lambda k: (-drops[k], len(paths[k]), -paths[k].prior, paths[k].nodes))
    return [ScoredPath(paths[k], drops[k]) for k in order if drops[k] > 0][:top]


def both_phrase(label: str) -> str:
    """How two items share a neighbour: ``directed by`` -> ``were directed by``, ``genre`` -> ``have genre``."""
    if label in _PLURAL:
        return _PLURAL[label]
    if label.endswith(" by") or label.endswith(" for"):
        return f"were {label}"
    if label.endswith(" of"):
        return f"are {label}"
    return f"have {label}"


class NodeNamer:
    """Names of nodes for one explained user (who reads as ``you``)."""

    def __init__(self, kg: KnowledgeGraph, index: PathIndex | None = None, user: int | None = None) -> None:
        self.kg, self.index, self.user = kg, index, user
        self._descriptions: list[list[str]] = [[]]  # shared with the namers made by for_user

    def for_user(self, user: int) -> NodeNamer:
        """A namer for another user sharing this one's (lazily computed) entity descriptions."""
        other = NodeNamer(self.kg, self.index, user)
        other._descriptions = self._descriptions
        return other

    def describe(self, entity: int) -> str:
        if not self._descriptions[0]:
            from encoders.entity_descriptions import describe_entities

            self._descriptions[0] = describe_entities(self.kg) or [""]
        return self._descriptions[0][entity]

    def label(self, node: Node) -> str | None:
        fields = self.kg.node_text(*node)
        for key in ("label", "name", "title"):
            for value in fields.get(key, []):
                if value.strip():
                    return value.strip()
        return None

    def name(self, node: Node) -> str:
        ntype, idx = node
        if ntype == "user":
            if idx == self.user:
                return "you"
            return self.label(node) or f"user {self._short_id(node)}"
        named = self.label(node)
        if named is not None:
            return named
        if ntype == "entity":
            desc = self.describe(idx)
            if len(desc) > DESCRIPTION_CHARS:  # cut after a whole neighbour name
                cut = desc.rfind("; ", 0, DESCRIPTION_CHARS)
                desc = desc[: cut if cut > 0 else DESCRIPTION_CHARS].rstrip(". ") + "; ..."
            if desc:
                return f"an entity described as \u201c{desc}\u201d"
        return f"{ntype} {self._short_id(node)}"

    def _short_id(self, node: Node) -> str:
        ext = self.kg.ids(node[0])[node[1]]
        return ext.rstrip("/#").rsplit("/", 1)[-1].rsplit("#", 1)[-1] or ext

    def stars(self, user: int, item: int) -> str:
        r = self.index.rating(user, item) if self.index is not None else None
        if r is None:
            return ""
        value = f"{r:g}"
        return f" {value} star" + ("" if value == "1" else "s")


def hop_clause(namer: NodeNamer, a: Node, step: tuple[str, str], b: Node) -> str:
    """One hop in words, e.g. ``Toy Story was directed by John Lasseter`` or ``you rated Toy Story 5 stars``."""
    rel, direction = step
    if rel == INTERACTION_RELATION and {a[0], b[0]} == {"user", "item"}:
        user, item = (a, b) if a[0] == "user" else (b, a)
        return f"{namer.name(user)} rated {namer.name(item)}{namer.stars(user[1], item[1])}"
    label = step_label(rel, direction)
    if label.endswith(" by"):
        return f"{namer.name(a)} was {label} {namer.name(b)}"
    if label.endswith(" of"):
        return f"{namer.name(a)} is the {label} {namer.name(b)}"
    if " " not in label and label not in _PLURAL or label in NOUN_LABELS:
        owner = "your" if a == ("user", namer.user) else f"the {label} of {namer.name(a)}"
        return f"{owner} {label if owner == 'your' else ''}".rstrip() + f" is {namer.name(b)}"
    return f"{namer.name(a)} {label} {namer.name(b)}"


def path_reason(namer: NodeNamer, path: KGPath) -> str:
    """The reason a path gives, as a clause after "because"."""
    n, s = path.nodes, path.steps
    types = [t for t, _ in n]
    rated = [r == INTERACTION_RELATION for r, _ in s]
    if len(path) == 3 and types == ["user", "item", "entity", "item"] and rated[0]:
        first = hop_clause(namer, n[0], s[0], n[1])
        la, lb = step_label(*s[1]), step_label(s[2][0], _flip(s[2][1]))
        if la == lb:
            return f"{first}, and both {both_phrase(la)} {namer.name(n[2])}"
        return f"{first}; {namer.name(n[1])} {la} {namer.name(n[2])}, and {namer.name(n[3])} {lb} it"
    if len(path) == 3 and types == ["user", "item", "user", "item"] and all(rated):
        return (f"{hop_clause(namer, n[0], s[0], n[1])}, and {namer.name(n[2])}, who also rated it"
                f"{namer.stars(n[2][1], n[1][1])}, rated {namer.name(n[3])}{namer.stars(n[2][1], n[3][1])}")
    if len(path) == 3 and types == ["user", "entity", "user", "item"] and rated[2] and not any(rated[:2]):
        la = step_label(*s[0])
        return (f"{namer.name(n[2])}, who shares your {la} ({namer.name(n[1])}), rated "
                f"{namer.name(n[3])}{namer.stars(n[2][1], n[3][1])}")
    if len(path) == 2 and types == ["user", "item", "item"] and rated[0]:
        return f"{hop_clause(namer, n[0], s[0], n[1])}, and {hop_clause(namer, n[1], s[1], n[2])}"
    return "; ".join(hop_clause(namer, a, st, b) for a, st, b in zip(n[:-1], s, n[1:], strict=True))


def explanation_sentences(namer: NodeNamer, item: int, paths: list[KGPath], found: int = 0) -> list[str]:
    """One sentence per path, the first one leading with "Recommended <item> because ...".

    With no path, says so plainly (no invented reason); ``found`` > 0 paths that did not make the list
    (none lowers the model's score when removed) are mentioned as such."""
    title = namer.name(("item", item))
    if not paths and found:
        return [f"Paths link you to {title}, but removing them does not lower the model's score for it; "
                "no path explains this recommendation."]
    if not paths:
        return [f"No path links you to {title} within the search limit; no explanation is available."]
    out = [f"Recommended {title} because {path_reason(namer, paths[0])}."]
    out += [f"Also: {path_reason(namer, p)}." for p in paths[1:]]
    return out


def node_json(kg: KnowledgeGraph, namer: NodeNamer, node: Node) -> dict:
    return {"type": node[0], "index": node[1], "id": kg.ids(node[0])[node[1]], "name": namer.name(node)}


def explanation_json(kg: KnowledgeGraph, namer: NodeNamer, ex: Explanation, rank: int | None = None) -> dict:
    """An explanation as JSON-ready data: item, score, paths (nodes, steps, labels, drop, words)."""
    paths = []
    for sp in ex.paths:
        p = sp.path
        paths.append({"drop": sp.drop, "prior": p.prior, "hops": len(p),
                      "nodes": [node_json(kg, namer, n) for n in p.nodes],
                      "steps": [{"relation": r, "direction": d, "label": step_label(r, d)} for r, d in p.steps],
                      "text": path_reason(namer, p)})
    return {"item": node_json(kg, namer, ("item", ex.item)), "rank": rank, "score": ex.score,
            "candidates": ex.candidates, "truncated": ex.truncated, "seconds": round(ex.seconds, 4),
            "paths": paths,
            "text": explanation_sentences(namer, ex.item, [sp.path for sp in ex.paths], ex.candidates)}
