"""The baselines against hand-computed values and reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn.models import LightGCN

from gnn.baselines import BASELINES, BPRMF, EASE, ContentKNN, LightGCNBaseline, MostPop
from gnn.graph_inputs import build_graph_inputs
from gnn.recommender import Batch, FittedRecommender, TrainableRecommender
from kg.errors import MMKGError
from kg.model.graph import KnowledgeGraph

# 3 users x 4 items; item 3 is never interacted with.
USERS = np.array([0, 0, 1, 1, 2, 0])
ITEMS = np.array([0, 1, 1, 2, 1, 2])


def tiny_inputs(features: dict[str, torch.Tensor] | None = None):
    kg = KnowledgeGraph()
    for u in range(3):
        kg.add_node("user", f"u{u}")
    for i in range(4):
        kg.add_node("item", f"i{i}")
    for u, i in zip(USERS, ITEMS, strict=True):
        kg.add_interaction(f"u{u}", f"i{i}")
    return build_graph_inputs(kg, kg.interactions(), features)


def test_ease_matches_hand_computed_closed_form():
    # X = [[1,1,0],[0,1,1]], lambda = 1: X^T X + I = [[2,1,0],[1,3,1],[0,1,2]], det 8,
    # P = 1/8 [[5,-2,1],[-2,4,-2],[1,-2,5]], B_ij = -P_ij / P_jj off the diagonal.
    model = EASE(reg_weight=1.0)
    model.fit(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 2]), 2, 3)
    expected = torch.tensor([[0.0, 0.5, -0.2], [0.4, 0.0, 0.4], [-0.2, 0.5, 0.0]])
    assert torch.allclose(model.weight, expected, atol=1e-6)
    # user 0 holds items {0, 1}: scores = B[0] + B[1]
    assert torch.allclose(model.score(torch.tensor([0, 1])), torch.tensor([[0.4, 0.5, 0.2], [0.2, 0.5, 0.4]]),
                          atol=1e-6)
    with pytest.raises(ValueError):
        EASE(reg_weight=0.0)


def test_mostpop_ranks_by_training_count_for_every_user():
    model = MostPop()
    model.fit(torch.as_tensor(USERS), torch.as_tensor(ITEMS), 3, 4)
    scores = model.score(torch.tensor([2, 0]))
    assert scores.tolist() == [[1.0, 3.0, 2.0, 0.0]] * 2
    assert scores.argsort(dim=1, descending=True)[0].tolist() == [1, 2, 0, 3]


def dense_lightgcn(emb0: torch.Tensor, num_users: int, num_layers: int) -> torch.Tensor:
    """Reference: E = mean_l (D^-1/2 A D^-1/2)^l E0 with a dense A built from the interaction list."""
    n = emb0.shape[0]
    a = torch.zeros(n, n)
    a[USERS, ITEMS + num_users] = 1.0
    a[ITEMS + num_users, USERS] = 1.0
    deg = a.sum(1)
    inv = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
    norm = inv[:, None] * a * inv[None, :]
    out, x = emb0.clone(), emb0
    for _ in range(num_layers):
        x = norm @ x
        out = out + x
    return out / (num_layers + 1)


def test_lightgcn_propagation_equals_dense_reference_and_pyg_edge_index():
    torch.manual_seed(0)
    inputs = tiny_inputs()
    model = LightGCNBaseline(3, 4, embedding_dim=5, num_layers=3)
    user_emb, item_emb = model(inputs)
    assert user_emb.shape == (3, 5) and item_emb.shape == (4, 5)
    emb0 = model.lightgcn.embedding.weight.detach()
    ref = dense_lightgcn(emb0, 3, 3)
    assert torch.allclose(torch.cat([user_emb, item_emb]).detach(), ref, atol=1e-6)
    # PyG's own LightGCN with edge_index message passing and its gcn_norm, on the same weights.
    pyg = LightGCN(7, 5, 3)
    pyg.embedding.weight.data.copy_(emb0)
    edge_index = torch.from_numpy(np.stack([np.concatenate([USERS, ITEMS + 3]), np.concatenate([ITEMS + 3, USERS])]))
    edge_index = torch.unique(edge_index, dim=1)
    assert torch.allclose(pyg.get_embedding(edge_index).detach(), ref, atol=1e-6)
    # the isolated item 3 keeps only its own (alpha_0-scaled) embedding
    assert torch.allclose(item_emb[3].detach(), emb0[6] / 4, atol=1e-7)


def test_lightgcn_gradient_equals_dense_reference_and_ego_embeddings_are_layer_zero():
    torch.manual_seed(1)
    inputs = tiny_inputs()
    model = LightGCNBaseline(3, 4, embedding_dim=4, num_layers=2)
    target = torch.randn(7, 4)
    user_emb, item_emb = model(inputs)
    (torch.cat([user_emb, item_emb]) * target).sum().backward()
    emb0 = model.lightgcn.embedding.weight.detach().clone().requires_grad_(True)
    (dense_lightgcn(emb0, 3, 2) * target).sum().backward()
    assert torch.allclose(model.lightgcn.embedding.weight.grad, emb0.grad, atol=1e-6)
    batch = Batch(torch.tensor([0, 2]), torch.tensor([1, 1]), torch.tensor([3, 0]))
    u, p, n = model.ego_embeddings(batch)
    w = model.lightgcn.embedding.weight
    assert torch.equal(u, w[[0, 2]]) and torch.equal(p, w[[4, 4]]) and torch.equal(n, w[[6, 3]])


def test_bpr_mf_loss_decreases_on_a_tiny_problem():
    torch.manual_seed(0)
    inputs = tiny_inputs()
    model = BPRMF(3, 4, embedding_dim=8)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    users, pos = torch.as_tensor(USERS), torch.as_tensor(ITEMS)
    neg = torch.tensor([3, 3, 0, 3, 0, 3])  # items each user never interacted with

    def loss_value() -> torch.Tensor:
        u, i = model(inputs)
        return -F.logsigmoid((u[users] * i[pos]).sum(1) - (u[users] * i[neg]).sum(1)).mean()

    first = loss_value().item()
    for _ in range(50):
        opt.zero_grad()
        loss = loss_value()
        loss.backward()
        opt.step()
    assert loss_value().item() < 0.5 * first
    scores = model.score_fn(inputs)(torch.tensor([0]))
    assert scores[0, 1] > scores[0, 3]
    assert [e.shape for e in model.ego_embeddings(Batch(users, pos, neg))] == [(6, 8)] * 3


def test_content_knn_prefers_the_item_closest_to_the_history():
    text = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 1.0], [5.0, 0.3]])
    mask = torch.tensor([True, True, True, True, False])
    model = ContentKNN(text, mask)
    model.fit(torch.tensor([0, 1]), torch.tensor([0, 2]), 2, 5)  # user 0 read item 0, user 1 item 2
    scores = model.score(torch.tensor([0, 1]))
    assert scores[0].argsort(descending=True).tolist()[:2] == [0, 1]
    assert scores[1].argsort(descending=True).tolist()[:2] == [2, 3]
    assert scores[:, 4].tolist() == [-1.0, -1.0]  # no text: ranked last
    assert torch.isclose(scores[0, 1], torch.tensor(0.9 / np.hypot(0.9, 0.1)).float())


def test_registry_builds_every_baseline():
    inputs = tiny_inputs({"item.text": torch.randn(4, 6)})
    for name, factory in BASELINES.items():
        model = factory(inputs, embedding_dim=8, num_layers=2)
        assert isinstance(model, TrainableRecommender | FittedRecommender), name
        if isinstance(model, FittedRecommender):
            model.fit(inputs.train_user, inputs.train_item, inputs.num_users, inputs.num_items)
            assert model.score(torch.tensor([0, 1])).shape == (2, 4)
        else:
            assert [t.shape for t in model(inputs)] == [(3, 8), (4, 8)]
    assert BASELINES["ease"](inputs, reg_weight=10.0).reg_weight == 10.0
    with pytest.raises(TypeError):
        BASELINES["bpr_mf"](inputs, embedding_dim=8, no_such_option=1)
    with pytest.raises(MMKGError, match="item.text"):
        BASELINES["content_knn"](tiny_inputs())
