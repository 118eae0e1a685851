"""Scoring explanation paths by the model: a path's importance is the DROP of ``s(user, item)`` when every
edge between two consecutive nodes of the path (interactions, KG triples both ways, profile edges, parallel
edges included) leaves the propagation graph (:func:`mask_pairs`): exact for the collaborative + KG
propagation, for any model by a forward on the masked inputs, or by :class:`MaskedScores` (LightGCN, the
MMKG model), which recomputes only what a mask changes and equals the forward (tested).
:func:`model_scorers` wires a loaded ``train.py`` checkpoint to both; ``explain.Explainer`` uses them."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import replace

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from gnn.adjacency import normalized_bipartite_adjacency
from gnn.graph_inputs import GraphInputs, _user_content
from gnn.mmkg_model import kept_entities
from kg.paths import Node

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
        kept = kept_entities(self.inp, model.options)
        self.remap = torch.full((self.inp.num_entities,), -1, dtype=torch.long)
        self.remap[kept] = torch.arange(kept.numel())  # entity -> row of entity_ego (the trained kept set)
        st = model._cached("structure", self.inp, lambda: model._structure(self.inp))
        if model.kg is not None and self.ent is not None and "slots" in st:  # KnowledgePropagation.forward
            ni, (h, t) = self.inp.num_items, (self._local(e) for e in (self.inp.kg_head, self.inp.kg_tail))
            ok = (h >= 0) & (t >= 0)
            self.kg_edges = (h[ok], t[ok], self.inp.kg_rel[ok])  # model-local ids, the kept entities' edges
            n = ni + kept.numel()
            self.pair_key, self.pair_order = torch.sort(torch.minimum(h[ok], t[ok]) * n + torch.maximum(h[ok], t[ok]))
            self.in_edges, self.out_edges = _csr_rows(h[ok], n), _csr_rows(t[ok], n)
            self.kg_h = [torch.cat([out["item_ego"], self.ent])]
            self.kg_scale = self.kg_h[0].norm(dim=-1, keepdim=True).mean().clamp(min=1e-6)
            for k, layer in enumerate(model.kg.layers):
                g = st["slots"][1 if k == len(model.kg.layers) - 1 else 0]
                new = F.normalize(layer(self.kg_h[-1], model.kg.rel_emb.weight, g), dim=-1) * self.kg_scale
                self.kg_h.append(torch.where(g.has_edges.unsqueeze(1), new, self.kg_h[-1][: g.num_heads]))
            assert torch.allclose(torch.stack([x[:ni] for x in self.kg_h]).mean(0), self.item_kg, atol=1e-5)
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

    def _local(self, node: Tensor) -> Tensor:
        """KG-index nodes -> the model's local ids (items, then kept entities); -1 for a pruned entity."""
        ni = self.inp.num_items
        return torch.where(node < ni, node, torch.where(self.remap[(node - ni).clamp(min=0)] >= 0,
                                                        self.remap[(node - ni).clamp(min=0)] + ni, -1))

    def _kg_delta(self, kgp: set) -> tuple[Tensor, Tensor]:
        """Changed items and their ``item_kg`` change ``[k, d]`` when the KG pairs ``kgp`` are masked (the
        kept entities stay as trained): each layer is rerun, with the model's own slot graph and layer, for
        the nodes whose input or neighbourhood changed, on their remaining in-edges only."""
        if not kgp or self.kg_h is None:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0, self.x.shape[1])
        from gnn.kg_propagation import build_slot_graph

        (head, tail, rel), kp, ni, n = self.kg_edges, self.m.kg, self.inp.num_items, self.kg_h[0].shape[0]
        pairs = self._local(torch.tensor(sorted(kgp)).reshape(-1)).reshape(-1, 2)
        keys = (pairs.min(1).values * n + pairs.max(1).values)[(pairs >= 0).all(1)]
        lo, hi = torch.searchsorted(self.pair_key, keys), torch.searchsorted(self.pair_key, keys, right=True)
        dead = torch.zeros(head.shape[0], dtype=torch.bool)
        dead[torch.cat([self.pair_order[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)] + [
            torch.zeros(0, dtype=torch.long)])] = True
        changed, x_in, news = torch.zeros(0, dtype=torch.long), self.kg_h[0], [None]
        for k, layer in enumerate(kp.layers, 1):
            reach = _gather(*self.out_edges, changed)
            heads = torch.unique(torch.cat([changed, head[dead], head[reach[~dead[reach]]]]))
            heads = heads[heads < self.kg_h[k].shape[0]]
            edges = _gather(*self.in_edges, heads)
            edges = edges[~dead[edges]]
            local = torch.unique(torch.cat([heads, tail[edges]]))
            g = build_slot_graph(torch.searchsorted(local, head[edges]), torch.searchsorted(local, tail[edges]),
                                 rel[edges], local.shape[0], kp.num_relations)
            pos = torch.searchsorted(local, heads)
            out = F.normalize(layer(x_in[local], kp.rel_emb.weight, g)[pos], dim=-1) * self.kg_scale
            rows = torch.where(g.has_edges[pos].unsqueeze(1), out, x_in[heads])
            news.append((heads, rows))
            changed, x_in = heads, self.kg_h[k].clone()
            x_in[heads] = rows
        items = changed[changed < ni] if news[-1] is not None else changed
        total = self.kg_h[0][items].clone()
        for k in range(1, len(self.kg_h)):
            vals, (nodes, rows) = self.kg_h[k][items].clone(), news[k]
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
                [self.ent[self.remap[es]].mean(0) if es else torch.zeros(self.ent.shape[1]) for es in ents]))
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


def model_scorers(ck) -> tuple[ScoreFor, Callable[[int, int, list[Pairs]], list[float]] | None]:
    """``(score_for, masked_scores)`` of a loaded checkpoint (:mod:`evaluation.checkpoint_scoring`): the model
    run on (masked) inputs, and its fast exact masked scorer when there is one. A fitted (closed-form) model
    is refitted on the masked training interactions."""
    from gnn.recommender import TrainableRecommender

    if isinstance(ck.model, TrainableRecommender):
        return ck.score_fn, MaskedScores.for_model(ck.model.eval(), ck.inputs)
    return (lambda inputs: _refit(ck.model, inputs)), None


def _refit(model, inputs: GraphInputs):
    fitted = copy.deepcopy(model)
    fitted.fit(inputs.train_user, inputs.train_item, inputs.num_users, inputs.num_items)
    return fitted.score
