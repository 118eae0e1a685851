"""Path enumeration (kg/paths/path_search.py) against hand-built KGs and a brute-force networkx enumeration."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from kg.errors import MMKGError
from kg.model.graph import KnowledgeGraph
from kg.paths.path_search import KGPath, PathIndex, path_pairs, pick_candidates

UNBOUNDED = {"max_paths": 10**6, "max_branch": 10**6, "per_meeting": 10**6, "time_budget_s": 60.0}


def movie_kg() -> KnowledgeGraph:
    kg = KnowledgeGraph()
    for i in ("i1", "i2", "i3", "i4", "i5", "i6"):
        kg.add_node("item", i)
    kg.add_triple("item", "i1", "director", "entity", "lasseter")
    kg.add_triple("item", "i2", "director", "entity", "lasseter")
    kg.add_triple("item", "i1", "genre", "entity", "comedy")
    kg.add_triple("item", "i3", "genre", "entity", "comedy")
    kg.add_triple("item", "i4", "genre", "entity", "drama")
    kg.add_triple("item", "i1", "film.film.sequel", "item", "i5")
    kg.add_triple("item", "i3", "film.film.directed_by", "entity", "m.x")
    kg.add_triple("entity", "m.x", "film.director.film", "item", "i3")  # Freebase's inverse: a parallel edge
    kg.add_triple("item", "i6", "film.film.directed_by", "entity", "m.x")
    kg.add_triple("user", "u1", "ageGroup", "entity", "age25")
    kg.add_triple("user", "u2", "ageGroup", "entity", "age25")
    kg.add_text("entity", "lasseter", "label", "John Lasseter")
    kg.add_text("entity", "comedy", "label", "Comedy")
    kg.add_text("item", "i1", "name", "Toy Story")
    kg.add_text("item", "i2", "name", "A Bug's Life")
    for u, i, r in [("u1", "i1", 5), ("u1", "i4", 3), ("u2", "i1", 4), ("u2", "i2", 5), ("u3", "i3", 2),
                    ("u3", "i2", 4), ("u4", "i6", 1), ("u1", "i6", 2)]:
        kg.add_interaction(u, i, r, 0)
    return kg


def train_of(kg: KnowledgeGraph, held_out: int):
    """All interactions but the one at position ``held_out``."""
    inter = kg.interactions()
    return inter.subset(np.array([k for k in range(len(inter)) if k != held_out]))


def edge_in_kg(kg: KnowledgeGraph, train, src, rel, dst) -> bool:
    """Checks one path edge against the KG's own arrays (not the index under test)."""
    if rel == "rates" and src[0] == "user" and dst[0] == "item":
        if any(u == src[1] and i == dst[1] for u, i in zip(train.user.tolist(), train.item.tolist(), strict=True)):
            return True
    et = (src[0], rel, dst[0])
    if et not in kg.edge_types():
        return False
    s, d = kg.triples(et)
    return bool(np.any((s == src[1]) & (d == dst[1])))


def brute_force(kg: KnowledgeGraph, train, user: int, item: int, max_hops: int, min_hops: int = 2) -> set:
    g = nx.Graph()
    for s_t, r, d_t in kg.edge_types():
        s, d = kg.triples((s_t, r, d_t))
        pairs = zip(s.tolist(), d.tolist(), strict=True)
        g.add_edges_from(((s_t, a), (d_t, b)) for a, b in pairs if (s_t, a) != (d_t, b))
    g.add_edges_from((("user", u), ("item", i)) for u, i in zip(train.user.tolist(), train.item.tolist(), strict=True))
    if ("user", user) not in g or ("item", item) not in g:
        return set()
    return {tuple(p) for p in nx.all_simple_paths(g, ("user", user), ("item", item), cutoff=max_hops)
            if len(p) - 1 >= min_hops}


def check_path(kg, train, path: KGPath, user: int, item: int) -> None:
    assert path.nodes[0] == ("user", user) and path.nodes[-1] == ("item", item)
    assert len(set(path.nodes)) == len(path.nodes), "not a simple path"
    steps = path.as_list()
    assert steps[0::2] == list(path.nodes) and steps[1::2] == list(path.steps)
    for src, rel, dst in path.edges():
        assert edge_in_kg(kg, train, src, rel, dst), (src, rel, dst)


def test_hand_computed_paths_and_prior() -> None:
    kg = movie_kg()
    train = train_of(kg, held_out=7)  # (u1, i6) is held out
    index = PathIndex(kg, train)
    u1, i2 = kg.index_of("user", "u1"), kg.index_of("item", "i2")
    found = index.find_paths(u1, i2, **UNBOUNDED)
    by_nodes = {tuple(kg.ids(t)[i] for t, i in p.nodes): p for p in found.paths}
    shared_director = by_nodes[("u1", "i1", "lasseter", "i2")]
    assert shared_director.steps == (("rates", "out"), ("director", "out"), ("director", "in"))
    # prior = 1/deg(i1) * 1/deg(lasseter); i1 neighbours: u1, u2, lasseter, comedy, i5 -> 5; lasseter: i1, i2 -> 2
    assert shared_director.prior == pytest.approx(1 / 10)
    assert ("u1", "i1", "u2", "i2") in by_nodes
    assert ("u1", "age25", "u2", "i2") in by_nodes
    assert by_nodes[("u1", "age25", "u2", "i2")].steps == (("ageGroup", "out"), ("ageGroup", "in"), ("rates", "out"))
    priors = [p.prior for p in found.paths]
    assert priors == sorted(priors, reverse=True)
    for p in found.paths:
        check_path(kg, train, p, u1, i2)
    assert not found.truncated


def test_matches_brute_force_and_held_out_interactions_are_never_used() -> None:
    kg = movie_kg()
    train = train_of(kg, held_out=7)
    index = PathIndex(kg, train)
    for user in range(kg.num_nodes("user")):
        for item in range(kg.num_nodes("item")):
            for max_hops in (2, 3, 4, 5):
                found = index.find_paths(user, item, max_hops=max_hops, **UNBOUNDED)
                assert {p.nodes for p in found.paths} == brute_force(kg, train, user, item, max_hops)
                assert len(found.paths) == len({p.nodes for p in found.paths})
                for p in found.paths:
                    check_path(kg, train, p, user, item)
    u1, i6 = kg.index_of("user", "u1"), kg.index_of("item", "i6")
    assert index.rating(u1, i6) is None and index.rating(u1, kg.index_of("item", "i1")) == 5.0
    assert not index.has_edge(("user", u1), "rates", ("item", i6))


def test_parallel_edges_are_one_hop_with_all_relations() -> None:
    kg = movie_kg()
    index = PathIndex(kg)
    i3, mx = ("item", kg.index_of("item", "i3")), ("entity", kg.index_of("entity", "m.x"))
    assert sorted(index.edges_between(i3, mx)) == sorted(
        [(i3, "film.film.directed_by", mx), (mx, "film.director.film", i3)])
    hops = [step for node, step in index.neighbors(i3) if node == mx]
    assert hops == [("film.director.film", "in")]  # one search edge: the first relation by name
    assert [step for node, step in index.neighbors(mx) if node == i3] == [("film.director.film", "out")]


@pytest.mark.parametrize("seed", range(6))
def test_random_graphs_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    kg = KnowledgeGraph()
    for _ in range(40):
        kind = rng.integers(3)
        a, b = f"i{rng.integers(8)}", f"e{rng.integers(6)}"
        if kind == 0:
            kg.add_triple("item", a, f"r{rng.integers(3)}", "entity", b)
        elif kind == 1:
            kg.add_triple("entity", b, f"r{rng.integers(3)}", "item", a)
        else:
            kg.add_triple("user", f"u{rng.integers(5)}", "p", "entity", b)
    for _ in range(15):
        kg.add_interaction(f"u{rng.integers(5)}", f"i{rng.integers(8)}", float(rng.integers(1, 6)), 0)
    index = PathIndex(kg)
    train = kg.interactions()
    for user in range(kg.num_nodes("user")):
        for item in range(kg.num_nodes("item")):
            found = index.find_paths(user, item, max_hops=4, min_hops=1, **UNBOUNDED)
            assert {p.nodes for p in found.paths} == brute_force(kg, train, user, item, 4, min_hops=1)
            for p in found.paths:
                check_path(kg, train, p, user, item)
                assert p.prior == pytest.approx(math.prod(1 / index.degree[index.gid(n)] for n in p.nodes[1:-1]))


def test_bounds_and_bad_input() -> None:
    kg = movie_kg()
    index = PathIndex(kg)
    assert len(index.find_paths(0, 1, max_paths=1).paths) == 1
    assert index.find_paths(0, 1, max_paths=1).truncated
    assert index.find_paths(0, 1, time_budget_s=0.0).truncated
    with pytest.raises(MMKGError, match="min_hops"):
        index.find_paths(0, 1, max_hops=1, min_hops=2)
    with pytest.raises(MMKGError, match="no node user 99"):
        index.find_paths(99, 1)
    lonely = KnowledgeGraph()
    lonely.add_interaction("u", "a", 1, 0)
    lonely.add_node("item", "b")
    assert PathIndex(lonely).find_paths(0, 1).paths == []


def test_candidates_are_spread_over_shapes() -> None:
    kg = movie_kg()
    index = PathIndex(kg)
    paths = index.find_paths(kg.index_of("user", "u1"), kg.index_of("item", "i2"), **UNBOUNDED).paths
    picked = pick_candidates(paths, 3, per_shape=1)
    shapes = [tuple(t for t, _ in p.nodes) + p.steps for p in picked]
    assert len(picked) == 3 and len(set(shapes)) == 3
    assert pick_candidates(paths, 100, per_shape=1) == sorted(paths, key=lambda p: (
        sum(tuple(t for t, _ in q.nodes) + q.steps == tuple(t for t, _ in p.nodes) + p.steps for q in paths[
            : paths.index(p)]) > 0))  # first of each shape first, then the rest, each group in input order
    assert path_pairs(paths[0]) == list(zip(paths[0].nodes[:-1], paths[0].nodes[1:], strict=True))
