import math

import numpy as np
import pytest
import torch

from gnn.adjacency import spmm, transpose_csr, user_history_matrix
from gnn.graph_inputs import build_graph_inputs
from gnn.kg_propagation import KnowledgePropagation, RelationAttentionLayer, build_slot_graph
from gnn.mmkg_model import MMKGModel, MMKGOptions, kept_entities
from gnn.modality_fusion import AttentionFusion
from gnn.recommender import Batch, recommend
from kg.model.graph import KnowledgeGraph


def _kg() -> KnowledgeGraph:
    kg = KnowledgeGraph()
    for u, i in [("u0", "i0"), ("u0", "i1"), ("u1", "i1"), ("u1", "i2"), ("u2", "i0"), ("u2", "i3")]:
        kg.add_interaction(u, i, 4.0, 1.0)
    kg.add_node("item", "i4")  # a cold item: no interaction, reachable through content and the KG
    for item, genre in [("i0", "g0"), ("i1", "g0"), ("i2", "g1"), ("i4", "g1"), ("i3", "g1")]:
        kg.add_triple("item", item, "genre", "entity", genre)
    kg.add_triple("item", "i0", "director", "entity", "d_leaf")  # a leaf entity (one neighbour)
    kg.add_triple("user", "u0", "gender", "entity", "F")
    kg.add_triple("user", "u1", "gender", "entity", "F")
    return kg


def _features(kg: KnowledgeGraph) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    n_i, n_e = kg.num_nodes("item"), kg.num_nodes("entity")
    return {"item.text": torch.randn(n_i, 8, generator=g), "item.text_mask": torch.ones(n_i, dtype=torch.bool),
            "item.image": torch.randn(n_i, 6, generator=g),
            "item.image_mask": torch.tensor([True, False, True, True, False]),
            "entity.text": torch.randn(n_e, 8, generator=g), "entity.text_mask": torch.ones(n_e, dtype=torch.bool)}


def test_graph_inputs_from_training_interactions_only():
    kg = _kg()
    inter = kg.interactions()
    train = inter.subset(np.array([0, 1, 2, 4]))  # u1-i2 and u2-i3 held out
    feats = _features(kg)
    gi = build_graph_inputs(kg, train, feats)
    adj = gi.ui_adj.to_dense()
    # degrees: u0 2, u1 1, u2 1, i0 2, i1 2 -> entry 1 / sqrt(d_u d_i)
    assert adj[0, 3 + 0].item() == pytest.approx(1 / 2) and adj[1, 3 + 1].item() == pytest.approx(1 / math.sqrt(2))
    assert adj[1, 3 + 2].item() == 0.0 and torch.equal(adj, adj.T)  # held-out pair absent
    # the user content aggregate averages TRAINING items only
    assert torch.allclose(gi.user_content[1], feats["item.text"][1])
    assert torch.allclose(gi.user_content[2], feats["item.text"][0])
    # every triple forward and reversed; reverse relation = r + R
    assert gi.relation_names == ["director", "genre", "rev_director", "rev_genre"]
    assert gi.kg_head.numel() == 12 and set(gi.kg_rel.tolist()) == {0, 1, 2, 3}
    assert gi.profile_user.tolist() == [0, 1] and gi.profile_relation_names == ["gender"]


def test_spmm_gradient_matches_dense():
    hist = user_history_matrix(torch.tensor([0, 0, 1]), torch.tensor([0, 2, 1]), 2, 3)
    assert torch.allclose(hist.to_dense(), torch.tensor([[0.5**0.5, 0, 0.5**0.5], [0, 1, 0]]))
    x = torch.randn(3, 4, requires_grad=True)
    spmm(hist, x, transpose_csr(hist)).pow(2).sum().backward()
    xd = x.detach().clone().requires_grad_(True)
    (hist.to_dense() @ xd).pow(2).sum().backward()
    assert torch.allclose(x.grad, xd.grad, atol=1e-6)


def test_attention_fusion_ignores_missing_views():
    fusion = AttentionFusion(4)
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    fused, alpha = fusion([a, b], [torch.tensor([True, True, False]), torch.tensor([False, True, False])])
    assert torch.allclose(fused[0], a[0]) and alpha[0].tolist() == [1.0, 0.0]
    assert alpha[1].sum().item() == pytest.approx(1.0)
    assert torch.equal(fused[2], torch.zeros(4)) and alpha[2].tolist() == [0.0, 0.0]


def test_relation_attention_layer_hand_computed():
    # node 0 (an item) has relation 0 -> {1, 2} and relation 1 -> {3}
    head, tail, rel = torch.tensor([0, 0, 0]), torch.tensor([1, 2, 3]), torch.tensor([0, 0, 1])
    slots = build_slot_graph(head, tail, rel, num_nodes=4, num_relations=2, max_head=1)
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    layer = RelationAttentionLayer(2)
    torch.nn.init.zeros_(layer.query.weight)  # uniform attention over the node's relations
    rel_emb = torch.tensor([[1.0, 1.0], [2.0, 2.0]])
    out = layer(x, rel_emb, slots)
    # relation 0: mean(x1, x2) * e_0 = [2, 0]; relation 1: x3 * e_1 = [0, 8]; halves
    assert torch.allclose(out, torch.tensor([[1.0, 4.0]]))


def test_knowledge_propagation_leaves_isolated_items_at_zero():
    prop = KnowledgePropagation(num_relations=2, dim=3, num_layers=2)
    head, tail, rel = torch.tensor([0, 2]), torch.tensor([2, 0]), torch.tensor([0, 1])
    graphs = prop.prepare(head, tail, rel, num_nodes=3, num_items=2)
    x = torch.randn(3, 3)
    out = prop(x, graphs)
    assert out.shape == (2, 3) and torch.equal(out[1], torch.zeros(3))  # item 1 has no KG edge
    assert out[0].norm() > 0


def _model(gi, **kw) -> MMKGModel:
    torch.manual_seed(0)
    return MMKGModel.from_inputs(gi, MMKGOptions(embedding_dim=8, contrastive_weight=0.1, kg_loss_weight=0.1, **kw))


def test_full_model_shapes_gradients_and_losses():
    kg = _kg()
    gi = build_graph_inputs(kg, kg.interactions(), _features(kg))
    # the leaf "d_leaf" is dropped, genres and the profile entity "F" are kept
    assert kept_entities(gi, MMKGOptions()).tolist() == [kg.index_of("entity", e) for e in ("g0", "g1", "F")]
    model = _model(gi, use_entity_text=True, use_item_item=True)
    assert model.item_encoder.modalities == ["image", "text"] and model.kg is not None
    user, item = model(gi)
    assert user.shape == (3, 8) and item.shape == (5, 8)
    batch = Batch(torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([3, 4]))
    terms = model.loss_terms(gi, user, item, batch)
    assert set(terms) == {"contrastive", "kg"}
    loss = (user[batch.users] * item[batch.pos]).sum() + sum(terms.values())
    loss = loss + sum(t.pow(2).sum() for t in model.ego_embeddings(batch))
    loss.backward()
    for name in ("item_encoder.proj.text.lin1.weight", "kg.rel_emb.weight", "entity_encoder.id_emb.weight",
                 "context.weight", "profile_proj.weight", "transe_rel.weight"):
        assert model.get_parameter(name).grad is not None, name
    scores, items = recommend(model, torch.tensor([0]), k=2, exclude=(gi.train_user, gi.train_item), inputs=gi)
    assert not set(items[0].tolist()) & {0, 1}


def test_ablation_flags_and_content_only_cold_items():
    kg = _kg()
    gi = build_graph_inputs(kg, kg.interactions(), _features(kg))
    bare = _model(gi, use_kg=False, use_text=False, use_image=False, use_profile=False, use_item_item=False)
    assert bare.kg is None and bare.entity_encoder is None and bare.item_encoder.modalities == []
    assert bare.context is None and bare.item_encoder.id_emb is not None
    content = _model(gi, use_id=False)
    assert content.item_encoder.id_emb is None and content.user_encoder.id_emb is None
    _, item = content(gi)
    assert item[4].abs().sum() > 0  # the cold item still gets a representation
    with pytest.raises(ValueError, match="ID embedding or at least one feature"):
        _model(build_graph_inputs(kg, kg.interactions(), {}), use_id=False)
