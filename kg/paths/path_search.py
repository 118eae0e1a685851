"""Explanation paths: bounded enumeration of simple paths between a user and an item.

The graph searched is the KG's relations plus the TRAINING interactions (relation ``rates``, user -> item),
as an undirected CSR adjacency built once (:class:`PathIndex`): node ``(ntype, index)`` gets the global id
``offset[ntype] + index`` (users, then items, then entities). Parallel edges between two nodes (e.g.
Freebase's ``film.film.directed_by`` and its inverse ``film.director.film``) are one search edge, labelled
by a representative relation, the same seen from either end (plain names before dotted ones, then by
name; an edge from the lower to the higher global id first); all of them belong to that hop
(:meth:`PathIndex.edges_between`).

Search (:meth:`PathIndex.find_paths`) meets in the middle: partial paths grow ``ceil(L/2)`` hops from the
user and ``floor(L/2)`` hops back from the item, vectorised in numpy, and join on their last node, so a
path of ``n`` hops is found exactly once (split ``ceil(n/2)`` + ``floor(n/2)``). Work is bounded: each
node contributes at most ``max_branch`` neighbours (``max_branch_end`` at the two endpoints), lowest degree
first; at most ``per_meeting`` partials per side and meeting node are joined; a ``time_budget_s`` stops
the growth early (``PathSearch.truncated``). Paths are ranked by the degree prior
``prod_{inner v} 1/deg(v)`` (a random walk's chance, LightGCN's path weight up to the endpoints' degrees),
which favours specific links (a shared director) over hubs (a shared genre of 700 films).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from kg.errors import MMKGError
from kg.model.graph import INTERACTION_RELATION, NODE_TYPES, Interactions, KnowledgeGraph

Node = tuple[str, int]
Step = tuple[str, str]
"""``(relation, direction)``: ``"out"`` follows the KG edge ``a -relation-> b``, ``"in"`` the edge ``b -> a``."""


@dataclass(frozen=True)
class KGPath:
    """A simple path ``nodes[0] -steps[0]- nodes[1] ... nodes[-1]`` (``len(steps) == len(nodes) - 1``)."""

    nodes: tuple[Node, ...]
    steps: tuple[Step, ...]
    prior: float = 0.0

    def __len__(self) -> int:
        return len(self.steps)

    def as_list(self) -> list[Node | Step]:
        """``[node0, step0, node1, step1, ..., nodeN]``."""
        out: list[Node | Step] = [self.nodes[0]]
        for step, node in zip(self.steps, self.nodes[1:], strict=True):
            out += [step, node]
        return out

    def edges(self) -> list[tuple[Node, str, Node]]:
        """The hops as KG edges ``(src, relation, dst)`` in the KG's own orientation."""
        return [(a, r, b) if d == "out" else (b, r, a)
                for (r, d), a, b in zip(self.steps, self.nodes[:-1], self.nodes[1:], strict=True)]


@dataclass(frozen=True)
class PathSearch:
    """Paths found (best prior first), whether a bound cut the search short, and the time it took."""

    paths: list[KGPath]
    truncated: bool
    seconds: float


def path_pairs(path: KGPath) -> list[tuple[Node, Node]]:
    """The hops of ``path`` as node pairs."""
    return list(zip(path.nodes[:-1], path.nodes[1:], strict=True))


def pick_candidates(paths: list[KGPath], limit: int, per_shape: int = 2) -> list[KGPath]:
    """Up to ``limit`` of ``paths`` (kept in order), at most ``per_shape`` of one shape (node types and
    relations) before the others: a spread of kinds of reasons for a model to score."""
    counts: dict[tuple, int] = {}
    first, later = [], []
    for p in paths:
        key = tuple(t for t, _ in p.nodes) + p.steps
        counts[key] = counts.get(key, 0) + 1
        (first if counts[key] <= per_shape else later).append(p)
    return (first + later)[:limit]


def _relation_order(name: str) -> tuple[int, str]:
    return ("." in name or "/" in name, name)


class PathIndex:
    """CSR adjacency of ``kg``'s relations plus the interactions ``train`` (default: all of them;
    pass a split's training interactions so no held-out rating becomes an explanation)."""

    def __init__(self, kg: KnowledgeGraph, train: Interactions | None = None) -> None:
        inter = kg.interactions() if train is None else train
        self.kg = kg
        self.counts = {t: kg.num_nodes(t) for t in NODE_TYPES}
        self.offset = {"user": 0, "item": self.counts["user"], "entity": self.counts["user"] + self.counts["item"]}
        self.num_nodes = sum(self.counts.values())
        names = {et[1] for et in kg.edge_types()} | {INTERACTION_RELATION}
        self.relations = sorted(names, key=_relation_order)
        rid = {n: k for k, n in enumerate(self.relations)}
        src, dst, rel = [], [], []
        for s_t, r, d_t in kg.edge_types():
            s, d = kg.triples((s_t, r, d_t))
            src.append(s + self.offset[s_t])
            dst.append(d + self.offset[d_t])
            rel.append(np.full(s.shape[0], rid[r], np.int64))
        n_items = max(self.counts["item"], 1)
        pair = np.unique(inter.user.astype(np.int64) * n_items + inter.item.astype(np.int64))
        src.append(pair // n_items)
        dst.append(pair % n_items + self.offset["item"])
        rel.append(np.full(pair.shape[0], rid[INTERACTION_RELATION], np.int64))
        src_a, dst_a, rel_a = (np.concatenate(x) for x in (src, dst, rel))
        keep = src_a != dst_a
        src_a, dst_a, rel_a = src_a[keep], dst_a[keep], rel_a[keep]
        # every directed KG edge, sorted by key src * N + dst (for edges_between / has_edge)
        key = src_a * self.num_nodes + dst_a
        order = np.lexsort((rel_a, key))
        self._edge_key, self._edge_rel = key[order], rel_a[order]
        # undirected search adjacency: one entry per neighbour, representative relation first
        a = np.concatenate([src_a, dst_a])
        b = np.concatenate([dst_a, src_a])
        r = np.concatenate([rel_a, rel_a])
        out = np.concatenate([np.ones_like(src_a, bool), np.zeros_like(src_a, bool)])
        backwards = (a < b) != out  # the edge runs from the higher to the lower id: the same from both ends
        order = np.lexsort((backwards, r, b, a))
        a, b, r, out = a[order], b[order], r[order], out[order]
        first = np.ones(a.shape[0], bool)
        first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        a, b, r, out = a[first], b[first], r[first], out[first]
        self.degree = np.bincount(a, minlength=self.num_nodes).astype(np.int64)
        order = np.lexsort((b, self.degree[b], a))
        self.nbr, self.rel, self.out = b[order], r[order], out[order]
        self.indptr = np.zeros(self.num_nodes + 1, np.int64)
        np.cumsum(self.degree, out=self.indptr[1:])
        self._log_deg = np.log(np.maximum(self.degree, 1)).astype(np.float64)
        rated = np.isfinite(inter.rating)
        rkey = inter.user[rated].astype(np.int64) * n_items + inter.item[rated].astype(np.int64)
        last = np.unique(rkey[::-1], return_index=True)  # the last rating of a repeated pair
        self._rating_key, self._rating = last[0], inter.rating[rated][::-1][last[1]]

    # ----------------------------------------------------------------- lookups
    def gid(self, node: Node) -> int:
        ntype, idx = node
        if ntype not in self.offset or not 0 <= idx < self.counts[ntype]:
            raise MMKGError(f"no node {ntype} {idx} in the KG")
        return self.offset[ntype] + int(idx)

    def node(self, gid: int) -> Node:
        for t in reversed(NODE_TYPES):
            if gid >= self.offset[t]:
                return t, int(gid - self.offset[t])
        raise MMKGError(f"no node with global id {gid}")

    def neighbors(self, node: Node) -> list[tuple[Node, Step]]:
        """Search neighbours of ``node`` in search order (lowest degree first)."""
        g = self.gid(node)
        s, e = self.indptr[g], self.indptr[g + 1]
        return [(self.node(int(b)), (self.relations[int(r)], "out" if o else "in"))
                for b, r, o in zip(self.nbr[s:e], self.rel[s:e], self.out[s:e], strict=True)]

    def edges_between(self, a: Node, b: Node) -> list[tuple[Node, str, Node]]:
        """Every KG edge (and training interaction) between ``a`` and ``b``, either way, as ``(src, rel, dst)``."""
        found = []
        for x, y in ((a, b), (b, a)):
            k = self.gid(x) * self.num_nodes + self.gid(y)
            lo, hi = np.searchsorted(self._edge_key, [k, k + 1])
            found += [(x, self.relations[int(r)], y) for r in self._edge_rel[lo:hi]]
        return found

    def has_edge(self, src: Node, relation: str, dst: Node) -> bool:
        return (src, relation, dst) in self.edges_between(src, dst)

    def rating(self, user: int, item: int) -> float | None:
        """The training rating of ``(user, item)`` (the last one of a repeated pair), or ``None``."""
        k = int(user) * max(self.counts["item"], 1) + int(item)
        pos = int(np.searchsorted(self._rating_key, k))
        if pos < self._rating_key.shape[0] and self._rating_key[pos] == k:
            return float(self._rating[pos])
        return None

    # ------------------------------------------------------------------ search
    def _grow(self, nodes: np.ndarray, lw: np.ndarray, steps: list[np.ndarray], cap: int, avoid: int):
        """Extend partial paths ``nodes [P, d]`` by one hop (at most ``cap`` neighbours of each last node)."""
        last = nodes[:, -1]
        starts = self.indptr[last]
        lens = np.minimum(self.indptr[last + 1] - starts, cap)
        parent = np.repeat(np.arange(nodes.shape[0]), lens)
        base = np.repeat(starts - np.cumsum(lens) + lens, lens)
        pos = base + np.arange(parent.shape[0])
        new = self.nbr[pos]
        keep = new != avoid
        for c in range(nodes.shape[1]):
            keep &= new != nodes[parent, c]
        parent, pos, new = parent[keep], pos[keep], new[keep]
        inner = self._log_deg[last[parent]] if nodes.shape[1] > 1 else 0.0
        step = self.rel[pos] * 2 + self.out[pos]
        return (np.column_stack([nodes[parent], new]), lw[parent] - inner,
                [s[parent] for s in steps] + [step])

    def _levels(self, start: int, avoid: int, depth: int, stop: int, branch: int, branch_end: int, deadline: float):
        levels = [(np.array([[start]], np.int64), np.zeros(1), [])]
        for d in range(depth):
            nodes, lw, steps = levels[-1]
            if d > 0:  # a partial that reached the far end cannot go on
                keep = nodes[:, -1] != stop
                nodes, lw, steps = nodes[keep], lw[keep], [s[keep] for s in steps]
            levels.append(self._grow(nodes, lw, steps, branch_end if d == 0 else branch, avoid))
            if time.perf_counter() > deadline:
                return levels, True
        return levels, False

    def find_paths(self, user: int, item: int, max_hops: int = 4, min_hops: int = 2, max_paths: int = 200,
                   max_branch: int = 64, max_branch_end: int = 1000, per_meeting: int = 4,
                   time_budget_s: float = 0.2) -> PathSearch:
        """Simple paths ``user ... item`` of ``min_hops..max_hops`` hops, best ``max_paths`` by degree prior."""
        if not 1 <= min_hops <= max_hops:
            raise MMKGError(f"need 1 <= min_hops <= max_hops, got {min_hops}..{max_hops}")
        t0 = time.perf_counter()
        u, i = self.gid(("user", user)), self.gid(("item", item))
        deadline = t0 + time_budget_s
        fwd, cut_f = self._levels(u, -1, (max_hops + 1) // 2, i, max_branch, max_branch_end, deadline)
        bwd, cut_b = self._levels(i, u, max_hops // 2, -1, max_branch, max_branch_end, deadline)
        found, cut = [], cut_f or cut_b
        for n in range(min_hops, max_hops + 1):
            a, b = (n + 1) // 2, n // 2
            if a < len(fwd) and b < len(bwd):
                part, over = self._join(fwd[a], bwd[b], per_meeting, max_paths)
                found += part
                cut |= over
        found.sort(key=lambda p: (-p[0], len(p[1]), p[1]))
        paths = [self._to_path(nodes, steps, lw) for lw, nodes, steps in found[:max_paths]]
        return PathSearch(paths, cut or len(found) > max_paths, time.perf_counter() - t0)

    def _top_per_meeting(self, nodes: np.ndarray, lw: np.ndarray, per_meeting: int) -> np.ndarray:
        order = np.lexsort((-lw, nodes[:, -1]))
        meet = nodes[order, -1]
        group_start = np.flatnonzero(np.r_[True, meet[1:] != meet[:-1]])
        rank = np.arange(meet.shape[0]) - np.repeat(group_start, np.diff(np.r_[group_start, meet.shape[0]]))
        return order[rank < per_meeting]

    def _join(self, fwd, bwd, per_meeting: int, limit: int):
        """Paths ``(log prior, gids, steps)`` joining forward and backward partials (best ``limit``), and
        whether some were left out."""
        (fn, flw, fs), (bn, blw, bs) = fwd, bwd
        f = self._top_per_meeting(fn, flw, per_meeting)
        b = self._top_per_meeting(bn, blw, per_meeting)
        b = b[np.argsort(bn[b, -1], kind="stable")]
        bmeet = bn[b, -1]
        lo = np.searchsorted(bmeet, fn[f, -1], "left")
        hi = np.searchsorted(bmeet, fn[f, -1], "right")
        cnt = hi - lo
        fi = np.repeat(f, cnt)
        bi = b[np.repeat(lo - np.cumsum(cnt) + cnt, cnt) + np.arange(int(cnt.sum()))]
        keep = np.ones(fi.shape[0], bool)
        for x in range(fn.shape[1] - 1):  # simple: no forward inner node on the backward side
            for y in range(bn.shape[1] - 1):
                keep &= fn[fi, x] != bn[bi, y]
        fi, bi = fi[keep], bi[keep]
        meet = fn[fi, -1]
        inner = np.where(bn.shape[1] > 1, self._log_deg[meet], 0.0)
        lw = flw[fi] + blw[bi] - inner
        over = lw.shape[0] > limit
        if over:
            best = np.argpartition(-lw, limit)[:limit]
            fi, bi, lw = fi[best], bi[best], lw[best]
        out = []
        for k in range(fi.shape[0]):
            nodes = tuple(fn[fi[k]].tolist()) + tuple(bn[bi[k], -2::-1].tolist())
            back = tuple(s[bi[k]] ^ 1 for s in reversed(bs))  # walking a backward hop flips its direction
            out.append((float(lw[k]), nodes, tuple(int(s[fi[k]]) for s in fs) + tuple(int(s) for s in back)))
        return out, over

    def _to_path(self, nodes: tuple[int, ...], steps: tuple[int, ...], lw: float) -> KGPath:
        return KGPath(tuple(self.node(g) for g in nodes),
                      tuple((self.relations[s >> 1], "out" if s & 1 else "in") for s in steps), float(np.exp(lw)))
