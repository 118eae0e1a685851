"""Scoring explanation paths by the model: a path's importance is the DROP of ``s(user, item)`` when every
edge between two consecutive nodes of the path (interactions, KG triples both ways, profile edges, parallel
edges included) leaves the propagation graph (:func:`mask_pairs`): exact for the collaborative + KG
propagation, for any model by a forward on the masked inputs, or by :class:`MaskedScores` (LightGCN, the
MMKG model), which recomputes only what a mask changes and equals the forward (tested). Candidates come
from :class:`kg.paths.PathIndex`; the top ones by drop (> 0 only) explain. :func:`load_explainer` wires a
``train.py`` checkpoint, its KG and its split's TRAINING interactions together."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from explanation_text import Explanation, rank_paths
from gnn.adjacency import normalized_bipartite_adjacency
from gnn.graph_inputs import GraphInputs, _user_content
from kg.graph import KnowledgeGraph
from kg.paths import KGPath, Node, PathIndex, path_pairs, pick_candidates

ScoreFor = Callable[[GraphInputs], Callable[[Tensor], Tensor]]
Pairs = list[tuple[Node, Node]]


def split_pairs(pairs: Iterable[tuple[Node, Node]], n_items: int) -> tuple[set, set, set]:
    """``(interactions {(u, i)}, profile {(u, e)}, KG {(a, b)} in the knowledge index space [I+N])``."""
    inter, prof, kgp = set(), set(), set()
    for a, b in pairs:
        (ta, ia), (tb, ib) = sorted((a, b))  # "entity" < "item" < "user"
        if (ta, tb) == ("item", "user"):
            inter.add((ib, ia))
        elif (ta, tb) == ("entity", "user"):
            prof.add((ib, ia))
        elif tb != "user":
            x, y = ia + (n_items if ta == "entity" else 0), ib + (n_items if tb == "entity" else 0)
            kgp.add((min(x, y), max(x, y)))
    return inter, prof, kgp


def _keep(a: Tensor, b: Tensor, n: int, pairs: set, ordered: bool = True) -> Tensor:
    a, b = (a, b) if ordered else (torch.minimum(a, b), torch.maximum(a, b))
    return ~torch.isin((a * n + b).cpu(), torch.tensor([x * n + y for x, y in pairs], dtype=torch.long))


def mask_pairs(inputs: GraphInputs, pairs: Iterable[tuple[Node, Node]]) -> GraphInputs:
    """``inputs`` without any edge between the given node pairs: training interactions (``ui_adj`` and the
    user content aggregate rebuilt), KG triples in both directions and user-profile edges."""
    ni = inputs.num_items
    inter, prof, kgp = split_pairs(pairs, ni)
    changes: dict = {"train_user": inputs.train_user.clone()}  # a new object: model caches keyed on it refresh
    if inter:
        keep = _keep(inputs.train_user, inputs.train_item, ni, inter)
        tu, ti = inputs.train_user.cpu()[keep], inputs.train_item.cpu()[keep]
        changes.update(train_user=tu, train_item=ti,
                       ui_adj=normalized_bipartite_adjacency(tu.numpy(), ti.numpy(), inputs.num_users, ni))
        if inputs.user_content is not None:
            changes.update(zip(("user_content", "user_content_mask"),
                               _user_content(inputs.features, tu, ti, inputs.num_users), strict=True))
    if kgp:
        keep = _keep(inputs.kg_head, inputs.kg_tail, inputs.num_kg_nodes, kgp, ordered=False)
        changes.update({k: getattr(inputs, k)[keep] for k in ("kg_head", "kg_tail", "kg_rel")})
    if prof:
        keep = _keep(inputs.profile_user, inputs.profile_entity, max(inputs.num_entities, 1), prof)
        changes.update({k: getattr(inputs, k)[keep] for k in ("profile_user", "profile_entity", "profile_rel")})
    return replace(inputs, **changes)


def _csr_rows(key: Tensor, n: int) -> tuple[Tensor, Tensor]:  # (positions sorted by key, run starts)
    order = torch.argsort(key, stable=True)
    return order, torch.cat([torch.zeros(1, dtype=torch.long), torch.bincount(key, minlength=n).cumsum(0)])


def _gather(order: Tensor, indptr: Tensor, nodes: Tensor) -> Tensor:
    starts, lens = indptr[nodes], indptr[nodes + 1] - indptr[nodes]
    offs = torch.arange(int(lens.sum())) - torch.repeat_interleave(lens.cumsum(0) - lens, lens)
    return order[torch.repeat_interleave(starts, lens) + offs]


class UIWeights:
    """``w = sum_l alpha_l A'^l e`` ``[U+I]`` of the user and the item per mask (``2P`` columns); ``A'`` (the graph
    without the mask's interactions) is never built: ``A' x = D'^-1/2 (B - M) D'^-1/2 x``, ``B`` binary."""

    def __init__(self, alpha: Tensor, inputs: GraphInputs) -> None:
        self.alpha = alpha.detach().float().cpu().reshape(-1)
        self.nu, self.ni = inputs.num_users, max(inputs.num_items, 1)
        n = inputs.num_users + inputs.num_items
        u, i = inputs.train_user.cpu(), inputs.train_item.cpu() + inputs.num_users
        row, col = torch.cat([u, i]), torch.cat([i, u])
        self.adj = torch.sparse_coo_tensor(torch.stack([row, col]), torch.ones(row.shape[0]), (n, n)).coalesce()
        self.adj = self.adj.to_sparse_csr()
        self.deg = torch.bincount(row, minlength=n).float()
        self.train = set((inputs.train_user.cpu() * self.ni + inputs.train_item.cpu()).tolist())

    def __call__(self, user: int, item: int, inters: list[set]) -> Tensor:
        p = len(inters)
        trip = [(c + s, u, self.nu + i) for c, inter in enumerate(inters) for u, i in inter
                if u * self.ni + i in self.train for s in (0, p)]
        cols, ra, rb = (torch.tensor([t[k] for t in trip], dtype=torch.long) for k in range(3))
        deg = self.deg.unsqueeze(1).repeat(1, 2 * p)
        deg.index_put_((torch.cat([ra, rb]), torch.cat([cols, cols])), torch.tensor(-1.0), accumulate=True)
        inv = torch.where(deg > 0, deg.clamp(min=1e-12).rsqrt(), torch.zeros(()))
        x = torch.zeros(self.deg.shape[0], 2 * p)
        x[user, :p] = 1.0
        x[self.nu + item, p:] = 1.0
        w = x * self.alpha[0]
        for layer in range(1, self.alpha.shape[0]):
            y = inv * x
            z = torch.sparse.mm(self.adj, y)
            z.index_put_((torch.cat([ra, rb]), torch.cat([cols, cols])), -torch.cat([y[rb, cols], y[ra, cols]]),
                         accumulate=True)
            x = inv * z
            w = w + x * self.alpha[layer]
        return w


class MaskedScores:
    """Exact masked scores of ``final = sum_l alpha_l A^l X`` (:class:`UIWeights`): LightGCN, or (``model``)
    :class:`gnn.mmkg_model.MMKGModel` with ``X = [user_ego; item_kg]`` and the user's context term, where a
    mask changes the rows of users whose history / profile lost an edge and of items within ``kg_layers``
    hops of a masked triple (the model's own layers on that neighbourhood). Build with :meth:`for_model`."""

    def __init__(self, x: Tensor, alpha: Tensor, inputs: GraphInputs, model=None) -> None:
        self.m, self.inp, self.x, self.kg_h = model, inputs.to("cpu"), x.detach().float().cpu(), None
        self.weights = UIWeights(alpha, self.inp)
        if model is None:
            return
        with torch.no_grad():
            out = model.embed(self.inp)
        self.ent, self.user_ego, self.item_kg = out.get("entity_ego"), out["user_ego"], out["item_kg"]
        self.x = torch.cat([self.user_ego, self.item_kg])
        self.hist, self.prof = (_csr_rows(k, self.inp.num_users) for k in (self.inp.train_user, self.inp.profile_user))
        h, t, n = self.inp.kg_head, self.inp.kg_tail, self.inp.num_kg_nodes
        if model.kg is not None and self.ent is not None and h.numel():  # KnowledgePropagation.forward, eval mode
            self.kg_h, kp = [torch.cat([out["item_ego"], self.ent])], model.kg
            self.kg_scale = self.kg_h[0].norm(dim=-1, keepdim=True).mean()
            for layer in kp.layers:
                self.kg_h.append(F.normalize(layer(self.kg_h[-1], kp.rel_emb.weight, h, t, self.inp.kg_rel), dim=-1)
                                 * self.kg_scale)
            self.in_edges, self.out_edges = _csr_rows(h, n), _csr_rows(t, n)
            self.pair_key, self.pair_order = torch.sort(torch.minimum(h, t) * n + torch.maximum(h, t))
            assert torch.allclose(torch.stack(self.kg_h).mean(0)[: self.inp.num_items], self.item_kg, atol=1e-5)
        probe = torch.arange(min(self.inp.num_users, 64))
        assert torch.allclose(self._user_rows(probe, set(), set()), self.user_ego[probe], atol=1e-5)

    @staticmethod
    def for_model(model, inputs: GraphInputs) -> MaskedScores | None:
        """For LightGCN, or an MMKG model in eval mode whose internals match (checked at build); else ``None``."""
        from gnn.lightgcn_baseline import LightGCNBaseline
        from gnn.mmkg_model import MMKGModel

        if type(model) is LightGCNBaseline:
            return MaskedScores(model.lightgcn.embedding.weight, model.lightgcn.alpha, inputs)
        try:
            n = model.options.num_layers + 1
            assert type(model) is MMKGModel and not model.training
            with torch.no_grad():
                return MaskedScores(torch.zeros(0), torch.full((n,), 1.0 / n), inputs, model)
        except (AssertionError, AttributeError, KeyError):
            return None

    def _kg_delta(self, kgp: set) -> tuple[Tensor, Tensor]:
        """Changed items and their ``item_kg`` change ``[k, d]`` when the KG pairs ``kgp`` are masked."""
        if not kgp or self.kg_h is None:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0, self.x.shape[1])
        n, inp, kp = self.inp.num_kg_nodes, self.inp, self.m.kg
        keys = torch.tensor([a * n + b for a, b in kgp])
        lo, hi = torch.searchsorted(self.pair_key, keys), torch.searchsorted(self.pair_key, keys, right=True)
        dead = torch.zeros(inp.kg_head.shape[0], dtype=torch.bool)
        dead[torch.cat([self.pair_order[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)])] = True
        changed = torch.unique(torch.cat([inp.kg_head[dead], inp.kg_tail[dead]]))
        new = [(changed[:0], self.kg_h[0][:0])]  # per layer: (nodes whose output changed, their new rows)
        for k, layer in enumerate(kp.layers, 1):
            if k > 1:  # a changed node changes the layer's output at its out-neighbours
                reach = _gather(*self.out_edges, changed)
                changed = torch.unique(torch.cat([changed, inp.kg_head[reach[~dead[reach]]]]))
            edges = _gather(*self.in_edges, changed)
            edges = edges[~dead[edges]]
            local = torch.unique(torch.cat([changed, inp.kg_tail[edges]]))
            h_in = self.kg_h[k - 1][local].clone()
            h_in[torch.searchsorted(local, new[-1][0])] = new[-1][1]
            head, tail = (torch.searchsorted(local, e[edges]) for e in (inp.kg_head, inp.kg_tail))
            out = layer(h_in, kp.rel_emb.weight, head, tail, inp.kg_rel[edges])[torch.searchsorted(local, changed)]
            new.append((changed, F.normalize(out, dim=-1) * self.kg_scale))
        items = changed[changed < self.inp.num_items]
        total = self.kg_h[0][items].clone()
        for k in range(1, len(self.kg_h)):
            vals, (nodes, rows) = self.kg_h[k][items].clone(), new[k]
            hit = torch.isin(items, nodes)
            vals[hit] = rows[torch.searchsorted(nodes, items[hit])]
            total += vals
        return items, total / len(self.kg_h) - self.item_kg[items]

    def _items_of(self, user: int) -> list[int]:
        return self.inp.train_item[_gather(*self.hist, torch.tensor([user]))].tolist()

    def _user_rows(self, users: Tensor, inter: set, prof: set) -> Tensor:
        """``user_ego`` rows of ``users`` with the masked interactions / profile edges removed."""
        views, inp = dict(self.m._user_views(self.inp)), self.inp
        if "content" in views:
            x, mask = (v.clone() for v in views["content"])
            for u in users.tolist():
                its = torch.tensor([i for i in self._items_of(u) if (u, i) not in inter], dtype=torch.long)
                x[u], mask[u] = (v[0] for v in _user_content(inp.features, torch.zeros_like(its), its, 1))
            views["content"] = (x, mask)
        ego = self.m.user_encoder(views)[0][users]
        if self.m.profile_proj is not None and self.ent is not None and inp.profile_user.numel() and len(users):
            ents = [[e for e in inp.profile_entity[_gather(*self.prof, torch.tensor([u]))].tolist()
                     if (u, e) not in prof] for u in users.tolist()]
            ego = ego + self.m.profile_proj(torch.stack(
                [self.ent[es].mean(0) if es else torch.zeros(self.ent.shape[1]) for es in ents]))
        return ego

    def __call__(self, user: int, item: int, masks: list[Pairs]) -> list[float]:
        p, nu = len(masks), self.inp.num_users
        parts = [split_pairs(m, self.inp.num_items) for m in masks]
        w = self.weights(user, item, [inter for inter, _, _ in parts])
        base = w.T @ self.x
        if self.m is None:
            return (base[:p] * base[p:]).sum(1).tolist()
        out = []
        for c, (inter, prof, kgp) in enumerate(parts):
            users = torch.tensor(sorted({u for u, _ in inter} | {u for u, _ in prof}), dtype=torch.long)
            items, d_items = self._kg_delta(kgp)
            rows = torch.cat([users, nu + items])
            delta = torch.cat([self._user_rows(users, inter, prof) - self.user_ego[users], d_items])
            u_vec, i_vec = base[c] + w[rows, c] @ delta, base[p + c] + w[rows, p + c] @ delta
            if self.m.context is not None:
                hist = [i for i in self._items_of(user) if (user, i) not in inter]
                u_vec = u_vec + (self.m.context.weight[hist].sum(0) / len(hist) ** 0.5 if hist else 0.0)
            if self.m.options.normalize:
                u_vec, i_vec = F.normalize(u_vec, dim=-1), F.normalize(i_vec, dim=-1)
            out.append(float(u_vec @ i_vec))
        return out


class Explainer:
    """Explanation paths for one model: ``index`` on the TRAINING interactions, the model's ``inputs``,
    ``score_for(inputs) -> score_fn``, optional exact ``masked_scores(user, item, [pairs, ...])``,
    ``candidates`` scored per item, ``search`` options of :meth:`PathIndex.find_paths`."""

    def __init__(self, kg: KnowledgeGraph, index: PathIndex, inputs: GraphInputs, score_for: ScoreFor,
                 masked_scores: Callable[[int, int, list[Pairs]], list[float]] | None = None,
                 candidates: int = 8, **search) -> None:
        self.kg, self.index, self.inputs, self.score_for = kg, index, inputs, score_for
        self.masked_scores, self.candidates, self.search = masked_scores, candidates, search
        self._base, self._cache = score_for(inputs), (-1, torch.zeros(0))

    def scores(self, user: int) -> Tensor:
        """The model's scores ``[I]`` of every item for ``user`` (unmasked graph)."""
        if self._cache[0] != user:
            with torch.no_grad():
                self._cache = (user, self._base(torch.tensor([user])).reshape(-1).float().cpu())
        return self._cache[1]

    def masked(self, user: int, item: int, masks: list[Pairs]) -> list[float]:
        """``s(user, item)`` with every edge between each mask's node pairs removed (one score per mask)."""
        with torch.no_grad():
            if self.masked_scores is not None:
                return list(self.masked_scores(user, item, masks))
            return [float(self.score_for(mask_pairs(self.inputs, m))(torch.tensor([user]))[0, item]) for m in masks]

    def drops(self, user: int, item: int, paths: list[KGPath]) -> list[float]:
        """Score drop of each path (its edges masked)."""
        base = float(self.scores(user)[item])
        return [base - v for v in self.masked(user, item, [path_pairs(p) for p in paths])] if paths else []

    def explain(self, user: int, item: int, top: int = 3) -> Explanation:
        """The ``top`` candidates by score drop (> 0 only); none -> an empty list, never an invented path."""
        t0 = time.perf_counter()
        found = self.index.find_paths(user, item, **self.search)
        cands = pick_candidates(found.paths, self.candidates)
        return Explanation(user, item, float(self.scores(user)[item]), rank_paths(cands, self.drops(user, item, cands),
                           top), len(found.paths), found.truncated, time.perf_counter() - t0)


def load_explainer(checkpoint, kg_dir=None, device: str = "cpu", candidates: int = 8, **search):
    """``(checkpoint, Explainer)``: the KG, the split's TRAINING interactions (path index), the model's inputs
    and weights (:mod:`evaluation.checkpoint_scoring`); a fitted model is refitted on masked interactions."""
    from evaluation.checkpoint_scoring import load_checkpoint
    from gnn.recommender import TrainableRecommender

    ck = load_checkpoint(checkpoint, kg_dir, device=device)
    index = PathIndex(ck.kg, ck.split.parts(ck.kg.interactions())[0])
    if isinstance(ck.model, TrainableRecommender):
        score_for, fast = ck.score_fn, MaskedScores.for_model(ck.model.eval(), ck.inputs)
    else:
        score_for, fast = (lambda inputs: _refit(ck.model, inputs)), None
    return ck, Explainer(ck.kg, index, ck.inputs, score_for, fast, candidates=candidates, **search)


def _refit(model, inputs: GraphInputs):
    fitted = copy.deepcopy(model)
    fitted.fit(inputs.train_user, inputs.train_item, inputs.num_users, inputs.num_items)
    return fitted.score
