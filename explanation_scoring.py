"""Scoring explanation paths by the model: how much of a recommendation's score a path carries.

A path's importance is the DROP of the model's score ``s(user, item)`` when every edge between two
consecutive nodes of the path (interactions, KG triples in both directions, profile edges; parallel
edges included) is removed from the propagation graph (:func:`mask_pairs`) and the model is run again:
exact for the collaborative + KG propagation, whatever the model. Candidates come from
:class:`kg.paths.PathIndex` (bounded search, ranked by the degree prior, spread over path shapes) and the
``top`` ones by drop explain the recommendation.

The model is reached only through ``score_for(inputs) -> score_fn`` (``score_fn(users [B]) -> [B, I]``),
so any :class:`~gnn.recommender.TrainableRecommender` works; a model may offer a faster exact
``masked_score(inputs, user, item, pairs)`` (see :class:`Explainer`). :func:`load_explainer` wires a
``train.py`` checkpoint, its KG and its split's TRAINING interactions together.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from gnn.graph_inputs import GraphInputs, _user_content, normalized_bipartite_adjacency
from kg.graph import KnowledgeGraph
from kg.paths import KGPath, Node, PathIndex

ScoreFor = Callable[[GraphInputs], Callable[[Tensor], Tensor]]


@dataclass(frozen=True)
class ScoredPath:
    path: KGPath
    drop: float
    """``s(user, item)`` minus the score with the path's edges masked (higher: the path matters more)."""


@dataclass(frozen=True)
class Explanation:
    """Why ``item`` for ``user``: the model's ``score`` and the ``paths`` that carry most of it (best first)."""

    user: int
    item: int
    score: float
    paths: list[ScoredPath]
    candidates: int
    """Paths the search found (before the model scored up to ``Explainer.candidates`` of them)."""
    truncated: bool
    seconds: float


def _pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return lo.astype(np.int64) * n + hi.astype(np.int64)


def mask_pairs(inputs: GraphInputs, pairs: Iterable[tuple[Node, Node]]) -> GraphInputs:
    """``inputs`` without any edge between the given node pairs: training interactions (``ui_adj`` and the
    user content aggregate rebuilt), KG triples in both directions and user-profile edges."""
    n_items = inputs.num_items
    inter, kgp, prof = set(), [], set()
    for a, b in pairs:
        (ta, ia), (tb, ib) = sorted((a, b))  # "entity" < "item" < "user"
        if (ta, tb) == ("item", "user"):
            inter.add((ib, ia))
        elif (ta, tb) == ("entity", "user"):
            prof.add((ib, ia))
        elif ta in ("entity", "item") and tb in ("entity", "item"):
            kgp.append((ia + (n_items if ta == "entity" else 0), ib + (n_items if tb == "entity" else 0)))
    changes: dict = {}
    if inter:
        tu, ti = inputs.train_user.cpu().numpy(), inputs.train_item.cpu().numpy()
        keep = ~np.isin(tu * n_items + ti, [u * n_items + i for u, i in inter])
        tu_t, ti_t = torch.from_numpy(tu[keep]), torch.from_numpy(ti[keep])
        changes.update(train_user=tu_t, train_item=ti_t,
                       ui_adj=normalized_bipartite_adjacency(tu[keep], ti[keep], inputs.num_users, n_items))
        if inputs.user_content is not None:
            content, mask = _user_content(inputs.features, tu_t, ti_t, inputs.num_users)
            changes.update(user_content=content, user_content_mask=mask)
    if kgp:
        n = inputs.num_kg_nodes
        h, t = inputs.kg_head.cpu().numpy(), inputs.kg_tail.cpu().numpy()
        keep = torch.from_numpy(~np.isin(_pair_keys(h, t, n), _pair_keys(*np.array(kgp).T, n)))
        changes.update(kg_head=inputs.kg_head[keep], kg_tail=inputs.kg_tail[keep], kg_rel=inputs.kg_rel[keep])
    if prof:
        pu, pe = inputs.profile_user.cpu().numpy(), inputs.profile_entity.cpu().numpy()
        n_ent = max(inputs.num_entities, 1)
        keep = torch.from_numpy(~np.isin(pu * n_ent + pe, [u * n_ent + e for u, e in prof]))
        changes.update(profile_user=inputs.profile_user[keep], profile_entity=inputs.profile_entity[keep],
                       profile_rel=inputs.profile_rel[keep])
    return replace(inputs, **changes) if changes else inputs


def path_pairs(path: KGPath) -> list[tuple[Node, Node]]:
    return list(zip(path.nodes[:-1], path.nodes[1:], strict=True))


def shape_of(path: KGPath) -> tuple:
    return tuple(t for t, _ in path.nodes) + tuple(s for s in path.steps)


def pick_candidates(paths: list[KGPath], limit: int, per_shape: int = 2) -> list[KGPath]:
    """Up to ``limit`` paths (input order = prior order), at most ``per_shape`` of one shape
    (node types + relations) first, then the rest in order."""
    counts: dict[tuple, int] = {}
    first, later = [], []
    for p in paths:
        key = shape_of(p)
        counts[key] = counts.get(key, 0) + 1
        (first if counts[key] <= per_shape else later).append(p)
    return (first + later)[:limit]


def rank_paths(paths: list[KGPath], drops: list[float], top: int) -> list[ScoredPath]:
    """The ``top`` paths with a positive drop, largest drop first (ties: shorter, then earlier)."""
    order = sorted(range(len(paths)), key=lambda k: (-drops[k], len(paths[k]), k))
    return [ScoredPath(paths[k], drops[k]) for k in order if drops[k] > 0][:top]


class Explainer:
    """Finds and scores explanation paths for one model.

    Args:
        kg: the knowledge graph.
        index: a :class:`PathIndex` on the split's TRAINING interactions (the model's view).
        inputs: the model's :class:`GraphInputs` (built from the same training interactions).
        score_for: ``inputs -> score_fn`` running the model on (masked) inputs.
        masked_scores: optional faster exact scorer ``(user, item, [pairs, ...]) -> [score, ...]`` under
            masking (e.g. :class:`LightGCNMaskedScores`).
        candidates: paths scored by the model per explanation.
        search: keyword arguments of :meth:`PathIndex.find_paths` (``max_hops``, ``time_budget_s``, ...).
    """

    def __init__(self, kg: KnowledgeGraph, index: PathIndex, inputs: GraphInputs, score_for: ScoreFor,
                 masked_scores: Callable[[int, int, list[list[tuple[Node, Node]]]], list[float]] | None = None,
                 candidates: int = 8, **search) -> None:
        self.kg, self.index, self.inputs, self.score_for = kg, index, inputs, score_for
        self.masked_scores = masked_scores
        self.candidates = candidates
        self.search = search
        self._base = score_for(inputs)
        self._cache: tuple[int, Tensor] | None = None

    def scores(self, user: int) -> Tensor:
        """The model's scores ``[I]`` of every item for ``user`` (unmasked graph)."""
        if self._cache is None or self._cache[0] != user:
            with torch.no_grad():
                self._cache = (user, self._base(torch.tensor([user])).reshape(-1).float().cpu())
        return self._cache[1]

    def score_masked(self, user: int, item: int, pairs: list[tuple[Node, Node]]) -> float:
        """``s(user, item)`` with every edge between the node ``pairs`` removed."""
        if self.masked_scores is not None:
            return float(self.masked_scores(user, item, [pairs])[0])
        with torch.no_grad():
            return float(self.score_for(mask_pairs(self.inputs, pairs))(torch.tensor([user]))[0, item])

    def drops(self, user: int, item: int, paths: list[KGPath]) -> list[float]:
        base = float(self.scores(user)[item])
        if self.masked_scores is not None and paths:
            return [base - float(v) for v in self.masked_scores(user, item, [path_pairs(p) for p in paths])]
        return [base - self.score_masked(user, item, path_pairs(p)) for p in paths]

    def explain(self, user: int, item: int, top: int = 3) -> Explanation:
        """The ``top`` paths by score drop among the candidates, keeping only paths whose removal lowers the
        score (``drop > 0``); no such path -> an empty list (never an invented one)."""
        t0 = time.perf_counter()
        found = self.index.find_paths(user, item, **self.search)
        cands = pick_candidates(found.paths, self.candidates)
        drops = self.drops(user, item, cands)
        return Explanation(user, item, float(self.scores(user)[item]), rank_paths(cands, drops, top),
                           len(found.paths), found.truncated, time.perf_counter() - t0)


class LightGCNMaskedScores:
    """Exact ``s(user, item)`` of a LightGCN-style model, ``final = sum_l alpha_l A^l E0`` with
    ``A = D^-1/2 B D^-1/2`` on the training graph, under masked interactions, without a full forward.

    ``final[u] = w_u^T E0`` with ``w_u = sum_l alpha_l A^l e_u`` (``A`` is symmetric), so each masked graph
    needs only ``L`` sparse products of two indicator columns (user, item); the masked ``A'`` is never
    built: ``A' x = D'^-1/2 (B x - M x) D'^-1/2`` with the masked entries ``M`` and degrees ``D'``. All
    candidate paths of one explanation go through the same products (``2P`` columns).
    """

    def __init__(self, ego: Tensor, alpha: Tensor, inputs: GraphInputs) -> None:
        self.ego = ego.detach().float().cpu()
        self.alpha = alpha.detach().float().cpu().reshape(-1)
        self.num_users = inputs.num_users
        n = inputs.num_users + inputs.num_items
        u, i = inputs.train_user.cpu(), inputs.train_item.cpu() + inputs.num_users
        row, col = torch.cat([u, i]), torch.cat([i, u])
        self.adj = torch.sparse_coo_tensor(torch.stack([row, col]), torch.ones(row.shape[0]), (n, n)).coalesce()
        self.adj = self.adj.to_sparse_csr()
        self.deg = torch.bincount(row, minlength=n).float()
        n_items = max(inputs.num_items, 1)
        self._train = set((inputs.train_user.cpu() * n_items + inputs.train_item.cpu()).tolist())
        self._n_items = n_items

    @staticmethod
    def for_model(model, inputs: GraphInputs) -> LightGCNMaskedScores | None:
        """The scorer of a :class:`~gnn.lightgcn_baseline.LightGCNBaseline`, else ``None``."""
        from gnn.lightgcn_baseline import LightGCNBaseline

        if type(model) is not LightGCNBaseline:
            return None
        return LightGCNMaskedScores(model.lightgcn.embedding.weight, model.lightgcn.alpha, inputs)

    def __call__(self, user: int, item: int, masks: list[list[tuple[Node, Node]]]) -> list[float]:
        p, n = len(masks), self.ego.shape[0]
        cols, rows_a, rows_b = [], [], []
        for c, pairs in enumerate(masks):
            for a, b in pairs:
                (ta, ia), (tb, ib) = sorted((a, b))
                if (ta, tb) == ("item", "user") and ib * self._n_items + ia in self._train:
                    for col in (c, c + p):
                        cols.append(col)
                        rows_a.append(ib)
                        rows_b.append(self.num_users + ia)
        cols_t, ra, rb = (torch.tensor(x, dtype=torch.long) for x in (cols, rows_a, rows_b))
        deg = self.deg.unsqueeze(1).repeat(1, 2 * p)
        deg.index_put_((ra, cols_t), torch.tensor(-1.0), accumulate=True)
        deg.index_put_((rb, cols_t), torch.tensor(-1.0), accumulate=True)
        inv = torch.where(deg > 0, deg.clamp(min=1e-12).rsqrt(), torch.zeros(()))
        x = torch.zeros(n, 2 * p)
        x[user, :p] = 1.0
        x[self.num_users + item, p:] = 1.0
        w = x * self.alpha[0]
        for layer in range(1, self.alpha.shape[0]):
            y = inv * x
            z = torch.sparse.mm(self.adj, y)
            z.index_put_((ra, cols_t), -y[rb, cols_t], accumulate=True)
            z.index_put_((rb, cols_t), -y[ra, cols_t], accumulate=True)
            x = inv * z
            w = w + x * self.alpha[layer]
        emb = w.T @ self.ego
        return (emb[:p] * emb[p:]).sum(1).tolist()


def _fitted_score_for(model) -> ScoreFor:
    """A fitted (closed-form / counting) model reads only the training interactions: refit a copy on them."""
    import copy

    def score_for(inputs: GraphInputs):
        fitted = copy.deepcopy(model)
        fitted.fit(inputs.train_user, inputs.train_item, inputs.num_users, inputs.num_items)
        return fitted.score

    return score_for


def load_explainer(checkpoint, kg_dir=None, device: str = "cpu", candidates: int = 8, **search):
    """``(loaded checkpoint, Explainer)`` for a ``train.py`` checkpoint: its KG, the split's TRAINING
    interactions for the path index, the model's inputs and weights (see :mod:`evaluation.checkpoint_scoring`)."""
    from evaluation.checkpoint_scoring import load_checkpoint
    from gnn.recommender import TrainableRecommender

    ck = load_checkpoint(checkpoint, kg_dir, device=device)
    train = ck.split.parts(ck.kg.interactions())[0]
    index = PathIndex(ck.kg, train)
    score_for = ck.score_fn if isinstance(ck.model, TrainableRecommender) else _fitted_score_for(ck.model)
    fast = LightGCNMaskedScores.for_model(ck.model, ck.inputs)
    return ck, Explainer(ck.kg, index, ck.inputs, score_for, fast, candidates=candidates, **search)
