"""Scoring explanation paths by the model: a path's importance is the DROP of ``s(user, item)`` when every
edge between two consecutive nodes of the path (interactions, KG triples both ways, profile edges, parallel
edges included) leaves the propagation graph (:func:`explanations.pair_masking.mask_pairs`): exact for the
collaborative + KG propagation, for any model by a forward on the masked inputs, or by :class:`MaskedScores`
(LightGCN, the MMKG model), which recomputes only what a mask changes and equals the forward (tested).
:func:`model_scorers` wires a loaded ``train.py`` checkpoint to both; ``explanations.explainer.Explainer`` uses them."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from explanations.pair_masking import Pairs, split_pairs
from gnn.graph_inputs import GraphInputs, _user_content
from gnn.mmkg_options import kept_entities

ScoreFor = Callable[[GraphInputs], Callable[[Tensor], Tensor]]


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
        self.adj = torch.sparse_coo_tensor(torch.stack([row, col]), torch.ones(row.shape[0]), (n, n),
                                           check_invariants=False).coalesce()
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
    """Exact masked scores of ``final = sum_l alpha_l A^l X`` (:class:`UIWeights`): LightGCN, or ``model`` =
    :class:`gnn.mmkg_model.MMKGModel` (``X = [user_ego; item_kg]`` + context term; a mask changes the rows of
    users who lost an edge and of items near a masked triple). Build with :meth:`for_model`."""

    def __init__(self, x: Tensor, alpha: Tensor, inputs: GraphInputs, model=None) -> None:
        self.m, self.inp, self.x, self.kg_h = model, inputs.to("cpu"), x.detach().float().cpu(), None
        self.weights = UIWeights(alpha, self.inp)
        self.closed_form = None  # an active gnn.closed_form_blend.ClosedFormBlend of the model (for_model sets it)
        if model is None:
            return
        with torch.no_grad():
            out = model.embed(self.inp)
        self.ent, self.user_ego, self.item_kg = out.get("entity_ego"), out["user_ego"], out["item_kg"]
        self.ig = None if getattr(model, "item_graphs", None) is None else model.item_graphs(self.item_kg, self.inp)
        self.x = torch.cat([self.user_ego, self.item_kg if self.ig is None else self.item_kg + self.ig])
        self.items_of, self.prof_of = ([[] for _ in range(self.inp.num_users)] for _ in range(2))
        for (us, vs), lists in (((self.inp.train_user, self.inp.train_item), self.items_of),
                                ((self.inp.profile_user, self.inp.profile_entity), self.prof_of)):
            for u, v in zip(us.tolist(), vs.tolist(), strict=True):
                lists[u].append(v)
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
            last = len(model.kg.layers) - 1
            for k, layer in enumerate(model.kg.layers):
                g = st["slots"][1 if k == last else 0]
                new = F.normalize(layer(self.kg_h[-1], model.kg.rel_emb.weight, g), dim=-1) * self.kg_scale
                self.kg_h.append(new if k == last else torch.where(g.has_edges.unsqueeze(1), new,
                                                                   self.kg_h[-1][: g.num_heads]))
            self.kg_gate = model.kg_gate.detach().float().cpu()
            self.kg_out = self._kg_output([x[:ni] for x in self.kg_h[1:]], st["slots"][1].has_edges)
            assert torch.allclose(out["item_ego"] + self.kg_gate * self.kg_out, self.item_kg, atol=1e-5)
        probe = list(range(min(self.inp.num_users, 64)))
        assert torch.allclose(self._user_rows([(u, set(), set()) for u in probe]), self.user_ego[probe], atol=1e-5)

    @staticmethod
    def for_model(model, inputs: GraphInputs) -> MaskedScores | None:
        """For LightGCN, or an MMKG model in eval mode whose internals match (checked at build); else ``None``."""
        from gnn.lightgcn_baseline import LightGCNBaseline
        from gnn.mmkg_model import MMKGModel

        branch = getattr(model, "closed_form", None)
        if type(model) is LightGCNBaseline:
            fast = MaskedScores(model.lightgcn.embedding.weight, model.lightgcn.alpha, inputs)
        else:
            try:
                n = model.options.num_layers + 1
                assert type(model) is MMKGModel and not model.training
                graphs = getattr(model, "item_graphs", None)  # item-item graphs: before the propagation only
                assert graphs is None or model.options.item_graph_stage == "pre"
                with torch.no_grad():
                    fast = MaskedScores(torch.zeros(0), torch.full((n,), 1.0 / n), inputs, model)
            except (AssertionError, AttributeError, KeyError, RuntimeError):
                return None
        fast.closed_form = branch if branch is not None and branch.active else None
        return fast

    def _local(self, node: Tensor) -> Tensor:  # KG index -> model ids (items, kept entities); -1: pruned
        ent = self.remap[(node - self.inp.num_items).clamp(min=0)]
        return torch.where(node < self.inp.num_items, node, torch.where(ent >= 0, ent + self.inp.num_items, -1))

    @staticmethod
    def _kg_output(layers: list[Tensor], has_edges: Tensor) -> Tensor:
        """:meth:`KnowledgePropagation.forward`'s output from its layers' item rows ``[k, d]`` each."""
        return torch.stack(layers).mean(0) * has_edges.unsqueeze(1)

    def _kg_deltas(self, kgps: list[set]) -> list[tuple[Tensor, Tensor]]:
        """Per mask: changed items and their ``item_kg`` change ``[k, d]`` when its KG pairs are masked (kept
        entities as trained). Each layer is rerun, with the model's own slot graph and layer, for the nodes
        whose input or neighbourhood changed, on their remaining in-edges; all masks in one graph."""
        from gnn.kg_propagation import build_slot_graph

        out = [(torch.zeros(0, dtype=torch.long), self.x[:0])] * len(kgps)
        live = [c for c, kgp in enumerate(kgps) if kgp and self.kg_h is not None]
        if not live:
            return out
        (head, tail, rel), kp, n = self.kg_edges, self.m.kg, self.kg_h[0].shape[0]
        deads = []
        for c in live:
            pairs = self._local(torch.tensor(sorted(kgps[c])).reshape(-1)).reshape(-1, 2)
            keys = (pairs.min(1).values * n + pairs.max(1).values)[(pairs >= 0).all(1)]
            lo, hi = torch.searchsorted(self.pair_key, keys), torch.searchsorted(self.pair_key, keys, right=True)
            deads.append(torch.zeros(head.shape[0], dtype=torch.bool).index_fill_(0, torch.cat(
                [self.pair_order[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)] + [out[0][0]]), True))
        news = [[(*out[0], None)] for _ in live]  # per mask, per layer: (changed nodes, new rows, has edges)
        for k, layer in enumerate(kp.layers, 1):
            parts, xs = [], []
            for j, dead in enumerate(deads):
                changed, rows, _ = news[j][-1]
                reach = _gather(*self.out_edges, changed)
                heads = torch.unique(torch.cat([changed, head[dead], head[reach[~dead[reach]]]]))
                heads = heads[heads < self.kg_h[k].shape[0]]
                edges = _gather(*self.in_edges, heads)
                edges = edges[~dead[edges]]
                local = torch.unique(torch.cat([heads, tail[edges]]))
                x = self.kg_h[k - 1][local].clone()
                hit = torch.isin(local, changed)
                x[hit] = rows[torch.searchsorted(changed, local[hit])]
                parts.append((heads, edges, local, sum(p[2].shape[0] for p in parts)))
                xs.append(x)
            loc = [tuple(torch.searchsorted(lc, e[ed]) + off for e in (head, tail)) for _, ed, lc, off in parts]
            g = build_slot_graph(torch.cat([h for h, _ in loc]), torch.cat([t for _, t in loc]),
                                 torch.cat([rel[p[1]] for p in parts]), sum(x.shape[0] for x in xs), kp.num_relations)
            xs = torch.cat(xs)
            res = F.normalize(layer(xs, kp.rel_emb.weight, g), dim=-1) * self.kg_scale
            for j, (heads, _, local, off) in enumerate(parts):
                pos = off + torch.searchsorted(local, heads)
                has = g.has_edges[pos]
                news[j].append((heads, res[pos] if k == len(kp.layers) else
                                torch.where(has.unsqueeze(1), res[pos], xs[pos]), has))
        for j, c in enumerate(live):
            heads, _, has = news[j][-1]  # every item changed at any layer is a head of the last one
            items, has = heads[heads < self.inp.num_items], has[heads < self.inp.num_items]
            layers = []
            for k in range(1, len(self.kg_h)):
                vals, (nodes, rows, _) = self.kg_h[k][items].clone(), news[j][k]
                hit = torch.isin(items, nodes)
                vals[hit] = rows[torch.searchsorted(nodes, items[hit])]
                layers.append(vals)
            out[c] = (items, self.kg_gate * (self._kg_output(layers, has) - self.kg_out[items]))
        return out

    def _graph_deltas(self, kgps: list[set], kg: list[tuple[Tensor, Tensor]]) -> list[tuple[Tensor, Tensor]]:
        """Per mask: changed items and their change of ``item_kg`` + item-graph term, from the KG propagation's
        changes ``kg`` (:func:`item_graph_deltas`)."""
        from explanations.item_graph_masking import item_graph_deltas

        return item_graph_deltas(self, kgps, kg)

    def _user_rows(self, rows: list[tuple[int, set, set]]) -> Tensor:
        """``user_ego`` of each ``(user, masked interactions, masked profile edges)`` (the user encoder's
        projections and fusion on those rows only; checked against the model at build)."""
        enc, inp = self.m.user_encoder, self.inp
        if not rows:
            return self.user_ego[:0]
        users, views, present = torch.tensor([u for u, _, _ in rows], dtype=torch.long), [], []
        for mod in enc.modalities:
            if mod == "content":
                its = [[i for i in self.items_of[u] if (u, i) not in m] for u, m, _ in rows]
                x, mask = _user_content(inp.features, torch.tensor([r for r, li in enumerate(its) for _ in li], dtype=
                                        torch.long), torch.tensor(sum(its, []), dtype=torch.long), len(rows))
            else:
                x, mask = (v[users] for v in inp.feature(f"user.{mod}"))
            views.append(enc.proj[mod](x.float()))
            present.append(mask.bool())
        ego = enc.combine(views, present, None if enc.id_emb is None else enc.id_emb.weight[users])
        if self.m.profile_proj is not None and self.ent is not None and inp.profile_user.numel():
            ents = [[e for e in self.prof_of[u] if (u, e) not in m] for u, _, m in rows]
            ego = ego + self.m.profile_proj(torch.stack(
                [self.ent[self.remap[es]].mean(0) if es else torch.zeros(self.ent.shape[1]) for es in ents]))
        return ego

    def __call__(self, user: int, item: int, masks: list[Pairs]) -> list[float]:
        parts = [split_pairs(m, self.inp.num_items) for m in masks]
        dots = self._dots(user, item, parts)
        branch = self.closed_form
        if branch is None:
            return dots.tolist()
        # + w * sum of B[j, item] over the user's training items j whose interaction the mask keeps
        mine = self.inp.train_item[self.inp.train_user == user].tolist()
        col = branch.item_item[:, item].detach().float().cpu()
        kept = torch.tensor([[(user, j) not in inter for j in mine] for inter, _, _ in parts], dtype=torch.float32)
        return (dots + float(branch.weight) * (kept @ col[mine])).tolist()

    def _dots(self, user: int, item: int, parts: list) -> Tensor:
        p, nu, long = len(parts), self.inp.num_users, torch.long
        w = self.weights(user, item, [inter for inter, _, _ in parts])
        base = w.T @ self.x
        if self.m is None:
            return (base[:p] * base[p:]).sum(1)
        todo = [(c, u) for c, (inter, prof, _) in enumerate(parts) for u in sorted({u for u, _ in inter | prof})]
        kg = self._kg_deltas([kgp for _, _, kgp in parts])  # every changed row of X, per mask:
        if self.ig is not None:  # item graphs (pre stage): X's item rows are item_kg + their term over item_kg
            kg = self._graph_deltas([kgp for _, _, kgp in parts], kg)
        cols = torch.tensor([c for c, _ in todo] + [c for c, (its, _) in enumerate(kg) for _ in range(len(its))],
                            dtype=long)
        rows = torch.tensor([u for _, u in todo] + [nu + i for its, _ in kg for i in its.tolist()], dtype=long)
        delta = torch.cat([self._user_rows([(u, parts[c][0], parts[c][1]) for c, u in todo])
                           - self.user_ego[[u for _, u in todo]]] + [d for _, d in kg])
        u_vec = base[:p].index_add(0, cols, w[rows, cols].unsqueeze(1) * delta)
        i_vec = base[p:].index_add(0, cols, w[rows, cols + p].unsqueeze(1) * delta)
        if self.m.context is not None:  # + sum of the kept history's context vectors / sqrt(history size)
            mine = self.items_of[user]
            keep = torch.tensor([[(user, i) not in inter for i in mine] for inter, _, _ in parts]).float()
            u_vec = u_vec + keep @ self.m.context.weight[mine] / keep.sum(1, keepdim=True).clamp(min=1).sqrt()
        if self.m.options.normalize:
            u_vec, i_vec = F.normalize(u_vec, dim=-1), F.normalize(i_vec, dim=-1)
        return (u_vec * i_vec).sum(1)


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
