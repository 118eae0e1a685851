"""Recommendation control: keep or drop the items linked to given entities or through given relations.

A :class:`LinkRule` selects the items that have a KG edge (either direction) to one of its target nodes,
through its relation when it names one ("items with genre Comedy": relation ``genre``, target ``Comedy``;
"items directed by John Lasseter"; "items that have a sequel": relation only). An item target also
selects the item itself, so ``--exclude "Toy Story"`` drops Toy Story and the items linked to it.
:class:`ItemConstraints` combines rules: an item is allowed when it matches EVERY ``only`` rule and NO
``exclude`` rule. :func:`constrained_top_k` masks the disallowed items BEFORE taking the top k, so a list
honours the rules exactly (and is shorter than k only when fewer than k items are allowed).

Targets are named by external id (exact) or by label / name / title (case-insensitive; every node with
that label counts); relations by name or readable label (:func:`kg.paths.relation_labels.relation_matches`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from kg.errors import MMKGError
from kg.model.graph import KnowledgeGraph
from kg.paths.relation_labels import relation_label, relation_matches

Node = tuple[str, int]
TARGET_TYPES: tuple[str, ...] = ("entity", "item")


class NodeLookup:
    """Finds entity / item nodes by external id or (case-insensitive) label, name or title."""

    def __init__(self, kg: KnowledgeGraph) -> None:
        self.kg = kg
        self._by_label: dict[str, list[Node]] = {}
        for t in TARGET_TYPES:
            for idx, fields in kg.text[t].items():
                names = {v.strip().lower() for k in ("label", "name", "title") for v in fields.get(k, [])}
                for name in names:
                    self._by_label.setdefault(name, []).append((t, idx))

    def find(self, text: str) -> list[Node]:
        """Every node whose external id is ``text``, else whose label is ``text``; raises when none."""
        exact = [(t, self.kg.index_of(t, text)) for t in TARGET_TYPES if self.kg.has_node(t, text)]
        if exact:
            return exact
        found = self._by_label.get(" ".join(text.split()).lower())
        if not found:
            raise MMKGError(f"no entity or item with id or label {text!r} in the KG")
        return sorted(found)


def matching_relations(kg: KnowledgeGraph, query: str) -> list[str]:
    """KG relation names that ``query`` names (forwards or backwards); raises when none does."""
    q = " ".join(query.lower().replace("_", " ").split())
    names = sorted({et[1] for et in kg.edge_types()})
    found = [n for n in names if relation_matches(n, query) or relation_label(n, reverse=True) == q]
    if not found:
        raise MMKGError(f"no relation named {query!r} in the KG (relations: {', '.join(names[:12])}"
                        f"{', ...' if len(names) > 12 else ''})")
    return found


@dataclass(frozen=True)
class LinkRule:
    """Items linked to ``targets`` (``None``: to anything) through ``relations`` (``None``: any relation)."""

    targets: tuple[Node, ...] | None
    relations: tuple[str, ...] | None
    text: str = ""

    def items(self, kg: KnowledgeGraph) -> np.ndarray:
        """Boolean mask ``[I]`` of the items this rule selects."""
        n_items = kg.num_nodes("item")
        mask = np.zeros(n_items, bool)
        hit: dict[str, np.ndarray] = {}
        for t in ("user", "item", "entity"):
            hit[t] = np.zeros(kg.num_nodes(t), bool) if self.targets is not None else np.ones(kg.num_nodes(t), bool)
        for t, idx in self.targets or ():
            hit[t][idx] = True
            if t == "item" and self.relations is None:
                mask[idx] = True
        for s_t, rel, d_t in kg.edge_types():
            if self.relations is not None and rel not in self.relations:
                continue
            src, dst = kg.triples((s_t, rel, d_t))
            if s_t == "item":
                mask[src[hit[d_t][dst]]] = True
            if d_t == "item":
                mask[dst[hit[s_t][src]]] = True
        return mask


def parse_rule(kg: KnowledgeGraph, text: str, lookup: NodeLookup | None = None, relation: bool = False) -> LinkRule:
    """A rule from ``ENTITY`` (``relation=False``) or ``REL=ENTITY`` / ``REL`` (``relation=True``)."""
    lookup = lookup or NodeLookup(kg)
    if not relation:
        return LinkRule(tuple(lookup.find(text)), None, text)
    rel, sep, target = text.partition("=")
    if not rel.strip():
        raise MMKGError(f"relation rule {text!r}: expected REL=ENTITY or REL")
    if sep and not target.strip():
        raise MMKGError(f"relation rule {text!r}: no entity after '='")
    targets = tuple(lookup.find(target.strip())) if sep else None
    return LinkRule(targets, tuple(matching_relations(kg, rel.strip())), text)


@dataclass
class ItemConstraints:
    """``only`` rules (all must hold) and ``exclude`` rules (none may hold)."""

    only: list[LinkRule] = field(default_factory=list)
    exclude: list[LinkRule] = field(default_factory=list)

    @staticmethod
    def parse(kg: KnowledgeGraph, only: Sequence[str] = (), exclude: Sequence[str] = (),
              only_relation: Sequence[str] = (), exclude_relation: Sequence[str] = ()) -> ItemConstraints:
        lookup = NodeLookup(kg)
        return ItemConstraints(
            [parse_rule(kg, t, lookup) for t in only] + [parse_rule(kg, t, lookup, True) for t in only_relation],
            [parse_rule(kg, t, lookup) for t in exclude] + [parse_rule(kg, t, lookup, True) for t in exclude_relation],
        )

    def allowed(self, kg: KnowledgeGraph) -> np.ndarray:
        """Boolean mask ``[I]`` of the items these rules allow."""
        mask = np.ones(kg.num_nodes("item"), bool)
        for rule in self.only:
            mask &= rule.items(kg)
        for rule in self.exclude:
            mask &= ~rule.items(kg)
        return mask

    def describe(self) -> str:
        parts = [f"only {r.text!r}" for r in self.only] + [f"excluding {r.text!r}" for r in self.exclude]
        return ", ".join(parts) or "no constraints"


def constrained_top_k(scores: Tensor, allowed: np.ndarray | Tensor, k: int,
                      seen: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Top-``k`` ``(scores, items)`` of one user's ``scores`` ``[I]`` among the ``allowed`` ``[I]`` items,
    never one of ``seen`` (item indices, e.g. the training items). Fewer than ``k`` when fewer are allowed."""
    s = scores.detach().float().clone().reshape(-1)
    keep = torch.as_tensor(np.asarray(allowed), dtype=torch.bool).reshape(-1)
    if keep.shape[0] != s.shape[0]:
        raise MMKGError(f"constraint mask has {keep.shape[0]} items but the scores have {s.shape[0]}")
    s[~keep] = float("-inf")
    if seen is not None and seen.numel():
        s[seen.long()] = float("-inf")
    top, items = torch.topk(s, min(k, s.shape[0]))
    ok = torch.isfinite(top)
    return top[ok], items[ok]
