"""Recommendation control (kg/paths/constraints.py): rules applied before top-k, checked by brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kg.errors import MMKGError
from kg.model.graph import KnowledgeGraph
from kg.paths.constraints import (
    ItemConstraints,
    LinkRule,
    NodeLookup,
    constrained_top_k,
    matching_relations,
    parse_rule,
)

RELATIONS = ("genre", "director", "film.film.directed_by", "film.director.film", "film.film.sequel")


def random_kg(seed: int) -> KnowledgeGraph:
    rng = np.random.default_rng(seed)
    kg = KnowledgeGraph()
    for i in range(30):
        kg.add_text("item", f"i{i}", "name", f"Film {i}")
    for e in range(8):
        kg.add_text("entity", f"e{e}", "label", f"Entity {e % 6}")  # e6, e7 share labels with e0, e1
    for _ in range(70):
        rel = RELATIONS[rng.integers(len(RELATIONS))]
        item, ent = f"i{rng.integers(30)}", f"e{rng.integers(8)}"
        if rel == "film.film.sequel":
            kg.add_triple("item", item, rel, "item", f"i{rng.integers(30)}")
        elif rel == "film.director.film":
            kg.add_triple("entity", ent, rel, "item", item)
        else:
            kg.add_triple("item", item, rel, "entity", ent)
    return kg


def linked(kg: KnowledgeGraph, item: str, rule: LinkRule) -> bool:
    """Brute force over every triple: is ``item`` linked as ``rule`` says?"""
    targets = None if rule.targets is None else {(t, kg.ids(t)[i]) for t, i in rule.targets}
    if rule.relations is None and targets and ("item", item) in targets:
        return True
    for s_t, s, rel, d_t, d in kg.iter_triples():
        if rule.relations is not None and rel not in rule.relations:
            continue
        for here, other in (((s_t, s), (d_t, d)), ((d_t, d), (s_t, s))):
            if here == ("item", item) and (targets is None or other in targets):
                return True
    return False


@pytest.mark.parametrize("seed", range(4))
def test_no_excluded_item_is_ever_returned(seed: int) -> None:
    kg = random_kg(seed)
    rng = np.random.default_rng(100 + seed)
    names = [f"Entity {e}" for e in range(6)] + [f"Film {i}" for i in range(30)] + ["e3", "i7"]
    for trial in range(60):
        only = [names[j] for j in rng.integers(len(names), size=rng.integers(0, 2))]
        exclude = [names[j] for j in rng.integers(len(names), size=rng.integers(0, 4))]
        rel = [RELATIONS[j] for j in rng.integers(len(RELATIONS) - 1, size=rng.integers(0, 2))]
        only_rel = [f"{r}={names[rng.integers(6)]}" for r in rel] if trial % 2 else []
        exclude_rel = [] if trial % 2 else [f"{r}={names[rng.integers(6)]}" if trial % 3 else r for r in rel]
        cons = ItemConstraints.parse(kg, only, exclude, only_rel, exclude_rel)
        scores = torch.from_numpy(rng.normal(size=kg.num_nodes("item")).astype(np.float32))
        seen = torch.from_numpy(rng.choice(kg.num_nodes("item"), size=5, replace=False))
        k = int(rng.integers(1, 12))
        top, items = constrained_top_k(scores, cons.allowed(kg), k, seen)
        ids = [kg.ids("item")[i] for i in items.tolist()]
        for item in ids:
            assert not any(linked(kg, item, r) for r in cons.exclude), (item, cons.describe())
            assert all(linked(kg, item, r) for r in cons.only), (item, cons.describe())
        ok = [i for i in range(kg.num_nodes("item")) if i not in set(seen.tolist())
              and all(linked(kg, kg.ids("item")[i], r) for r in cons.only)
              and not any(linked(kg, kg.ids("item")[i], r) for r in cons.exclude)]
        expected = sorted(ok, key=lambda i: -float(scores[i]))[:k]
        assert items.tolist() == expected  # rules applied BEFORE top-k: the best allowed items, all of them
        assert torch.equal(top, scores[items])


def test_names_resolve_by_id_and_label() -> None:
    kg = random_kg(0)
    lookup = NodeLookup(kg)
    assert lookup.find("e3") == [("entity", kg.index_of("entity", "e3"))]
    assert lookup.find("entity  0") == sorted([("entity", kg.index_of("entity", "e0")),
                                               ("entity", kg.index_of("entity", "e6"))])
    assert lookup.find("FILM 4") == [("item", kg.index_of("item", "i4"))]
    with pytest.raises(MMKGError, match="'Nobody'"):
        lookup.find("Nobody")
    assert matching_relations(kg, "directed by") == ["director", "film.director.film", "film.film.directed_by"]
    with pytest.raises(MMKGError, match="no relation named 'colour'"):
        matching_relations(kg, "colour")
    with pytest.raises(MMKGError, match="no entity after"):
        parse_rule(kg, "genre=", relation=True)
    with pytest.raises(MMKGError, match="expected REL=ENTITY"):
        parse_rule(kg, "=Entity 1", relation=True)


def test_hand_built_rules() -> None:
    kg = KnowledgeGraph()
    kg.add_triple("item", "toy", "genre", "entity", "comedy")
    kg.add_triple("item", "bug", "genre", "entity", "comedy")
    kg.add_triple("item", "bug", "director", "entity", "lasseter")
    kg.add_triple("item", "toy", "director", "entity", "lasseter")
    kg.add_triple("item", "heat", "genre", "entity", "crime")
    kg.add_triple("item", "toy", "film.film.sequel", "item", "toy2")
    kg.add_text("entity", "comedy", "label", "Comedy")
    kg.add_text("entity", "lasseter", "label", "John Lasseter")
    kg.add_text("item", "toy", "name", "Toy Story")
    ids = kg.ids("item")

    def allowed(**kw) -> list[str]:
        mask = ItemConstraints.parse(kg, **kw).allowed(kg)
        return sorted(ids[i] for i in np.flatnonzero(mask))

    assert allowed(only=["Comedy"]) == ["bug", "toy"]
    assert allowed(only_relation=["genre=Comedy"], exclude=["John Lasseter"]) == []
    assert allowed(exclude_relation=["director=John Lasseter"]) == ["heat", "toy2"]
    assert allowed(exclude=["Toy Story"]) == ["bug", "heat"]  # the item itself and its sequel
    assert allowed(only_relation=["film.film.sequel"]) == ["toy", "toy2"]
    scores = torch.tensor([0.1, 0.9, 0.5, 0.3])
    top, items = constrained_top_k(scores, np.array([True, False, True, False]), 3)
    assert items.tolist() == [2, 0] and top.tolist() == pytest.approx([0.5, 0.1])
    with pytest.raises(MMKGError, match="constraint mask has 2 items"):
        constrained_top_k(scores, np.array([True, False]), 3)
