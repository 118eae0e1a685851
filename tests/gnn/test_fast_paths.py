"""The optimised training paths against the straightforward computation on tiny graphs: same values, same
gradients."""

import numpy as np
import pytest
import torch

from gnn.negative_sampling import NegativeSampler
from gnn.propagation import csr_columns, csr_rows, layer_mean
from gnn.recommender import Rows


def test_positive_pairs_are_the_nonzeros_of_the_dense_lookup():
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        n_users, n_items = int(torch.randint(1, 20, (1,), generator=g)), int(torch.randint(1, 30, (1,), generator=g))
        n = int(torch.randint(1, 150, (1,), generator=g))
        sampler = NegativeSampler(torch.randint(n_users, (n,), generator=g), torch.randint(n_items, (n,), generator=g),
                                  n_items)
        users = torch.randint(n_users + 3, (int(torch.randint(0, 40, (1,), generator=g)),), generator=g)
        items = torch.randint(n_items, (int(torch.randint(0, 50, (1,), generator=g)),), generator=g)  # repeats too
        rows, cols = sampler.positive_pairs(users, items)
        dense = torch.zeros(users.numel(), items.numel(), dtype=torch.bool)
        dense[rows, cols] = True
        assert rows.numel() == int(dense.sum())  # each hit once
        assert torch.equal(dense, sampler.is_positive(users[:, None], items[None, :]))


def _random_inputs(seed: int = 0, features: bool = True):
    from gnn.graph_inputs import build_graph_inputs
    from kg.model.graph import KnowledgeGraph

    rng = np.random.default_rng(seed)
    kg = KnowledgeGraph()
    n_users, n_items, n_ent = 30, 20, 12
    for t, n in (("user", n_users), ("item", n_items), ("entity", n_ent)):
        for k in range(n):
            kg.add_node(t, f"{t[0]}{k}")
    for k in np.unique(rng.integers(n_users, size=120) * n_items + rng.integers(n_items, size=120)):
        kg.add_interaction(f"u{k // n_items}", f"i{k % n_items}", 1.0)
    for r in range(3):
        kg.add_triples(("item", f"rel{r}", "entity"), rng.integers(n_items, size=25), rng.integers(n_ent, size=25))
    kg.add_triples(("user", "gender", "entity"), np.arange(n_users), rng.integers(2, size=n_users))
    g = torch.Generator().manual_seed(seed)
    feats = {"item.text": torch.randn(n_items, 8, generator=g), "item.image": torch.randn(n_items, 6, generator=g),
             "item.image_mask": torch.rand(n_items, generator=g) > 0.3,
             "entity.text": torch.randn(n_ent, 8, generator=g)} if features else {}
    return build_graph_inputs(kg, kg.interactions(), feats)


def _step(model, inputs, users, pos, neg, with_rows: bool):
    """A softmax step's loss and every parameter's gradient, reading the batch's rows only."""
    model.zero_grad(set_to_none=True)
    rows = Rows(users, torch.cat([pos, neg])) if with_rows else None
    user_emb, item_emb = model(inputs, rows=rows) if with_rows else model(inputs)
    u = user_emb[users]
    logits = torch.cat([(u * item_emb[pos]).sum(-1, keepdim=True), u @ item_emb[neg].T], 1)
    loss = (torch.logsumexp(logits, 1) - logits[:, 0]).mean()
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def _same_step(model, inputs, seed=1):
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(inputs.train_user.numel(), (3,), generator=g)
    users, pos = inputs.train_user[pick], inputs.train_item[pick]
    neg = torch.randint(inputs.num_items, (2,), generator=g)  # <= 8 of 50 nodes: the row path
    loss_full, grads_full = _step(model, inputs, users, pos, neg, with_rows=False)
    loss_rows, grads_rows = _step(model, inputs, users, pos, neg, with_rows=True)
    assert torch.allclose(loss_full, loss_rows, rtol=1e-5, atol=1e-6)
    assert grads_full.keys() == grads_rows.keys() and grads_full
    for k in grads_full:
        assert torch.allclose(grads_full[k], grads_rows[k], rtol=1e-4, atol=1e-6), k


def test_layer_mean_at_rows_equals_the_dense_layer_average():
    inputs = _random_inputs()
    adj = inputs.ui_adj
    dense = adj.to_dense()
    assert torch.equal(dense, dense.T)
    n = dense.shape[0]
    rows = torch.tensor([0, 3, 7, n - 1])  # under a quarter of the nodes: the row path
    for layers in (0, 1, 2, 3):
        x = torch.randn(n, 4, dtype=torch.float32, requires_grad=True)
        want = sum(torch.linalg.matrix_power(dense, k) @ x for k in range(layers + 1)) / (layers + 1)
        assert torch.allclose(layer_mean(adj, x, layers), want, atol=1e-5)
        got = layer_mean(adj, x, layers, rows)
        assert torch.allclose(got[rows], want[rows], atol=1e-5)
        w = torch.randn(rows.numel(), 4)
        (g_want,) = torch.autograd.grad((want[rows] * w).sum(), x)
        (g_got,) = torch.autograd.grad((got[rows] * w).sum(), x)
        assert torch.allclose(g_got, g_want, atol=1e-5)
    sub = csr_rows(adj, rows).to_dense()
    assert torch.equal(sub, dense[rows]) and torch.equal(csr_columns(adj, rows).to_dense(), dense[:, rows])


def test_lightgcn_step_on_the_batch_rows_matches_the_full_forward(monkeypatch):
    import gnn.propagation as propagation
    from gnn.lightgcn_baseline import LightGCNBaseline

    calls = []
    monkeypatch.setattr(propagation, "csr_rows", lambda a, r: calls.append(r) or csr_rows(a, r))
    inputs = _random_inputs(features=False)
    torch.manual_seed(0)
    for seed in (1, 2, 3):
        _same_step(LightGCNBaseline(inputs.num_users, inputs.num_items, 8, 3), inputs, seed)
    assert len(calls) == 3  # the row path ran


@pytest.mark.parametrize("extra", [{}, {"use_item_item": True}, {"normalize": True, "kg_layers": 2},
                                   {"num_layers": 1, "use_entity_text": True}])
def test_mmkg_step_on_the_batch_rows_matches_the_full_forward(extra):
    from gnn.mmkg_model import MMKGModel, MMKGOptions

    inputs = _random_inputs()
    torch.manual_seed(0)
    model = MMKGModel.from_inputs(inputs, MMKGOptions(**{"embedding_dim": 8, "kg_layers": 1, **extra}))
    for p in model.parameters():  # the zero-initialised gates and projections open, so every path counts
        p.data.add_(0.05 * torch.randn_like(p))
    for seed in (1, 2):
        _same_step(model, inputs, seed)


@pytest.mark.parametrize("max_head", [None, 9])
def test_fused_slot_aggregation_matches_the_autograd_composition(max_head, monkeypatch):
    from dataclasses import replace

    import gnn.slot_attention as slot_attention
    from gnn.kg_propagation import RelationAttentionLayer, build_slot_graph

    g = torch.Generator().manual_seed(0)
    monkeypatch.setattr(slot_attention, "CHUNK", 4)  # several chunks per relation
    n, n_rel, e = 25, 6, 120
    head, tail, rel = (torch.randint(n, (e,), generator=g), torch.randint(n, (e,), generator=g),
                       torch.randint(n_rel, (e,), generator=g))
    slots = build_slot_graph(head, tail, rel, n, n_rel, max_head)
    assert torch.all(slots.slot_rel[1:] >= slots.slot_rel[:-1])  # relation-major
    plain = replace(slots, rel_bounds=[])  # the autograd composition
    layer = RelationAttentionLayer(5)
    x = torch.randn(n, 5, generator=g)
    rel_emb = torch.randn(n_rel, 5, generator=g)
    w = torch.randn(slots.num_heads, 5, generator=g)
    results = []
    for graph in (slots, plain):
        xs, es = x.clone().requires_grad_(), rel_emb.clone().requires_grad_()
        layer.zero_grad()
        out = layer(xs, es, graph)
        (out * w).sum().backward()
        results.append((out.detach(), xs.grad, es.grad, layer.query.weight.grad.clone()))
    for fused, ref in zip(*results, strict=True):
        assert torch.allclose(fused, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 0.2])
def test_softmax_loss_matches_the_concatenated_logsumexp(temperature):
    from gnn.losses import sampled_softmax_loss

    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(6, generator=g) * 3, torch.randn(6, 9, generator=g) * 3
    neg[1, 2] = -1e9  # a masked accidental hit
    weight = torch.rand(6, generator=g)
    grads = []
    for fused in (True, False):
        p, n = pos.clone().requires_grad_(), neg.clone().requires_grad_()
        if fused:
            loss = sampled_softmax_loss(p, n, temperature, weight)
        else:
            logits = torch.cat([p.unsqueeze(1), n], 1) / temperature
            loss = ((torch.logsumexp(logits, 1) - logits[:, 0]) * weight).sum() / weight.sum()
        loss.backward()
        grads.append((loss.detach(), p.grad, n.grad))
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
    one = sampled_softmax_loss(pos[:2], neg[:2, 0])  # one negative per row
    assert torch.allclose(one, torch.nn.functional.softplus(neg[:2, 0] - pos[:2]).mean())
