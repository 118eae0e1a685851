"""The entity rows of a trained MMKG model stay aligned when its KG input changes
(robustness perturbations, explanation masking)."""

import torch

from evaluation.robustness import drop_kg_edges
from gnn.graph_inputs import build_graph_inputs
from gnn.mmkg_model import MMKGModel, MMKGOptions, kept_entities
from kg.model.graph import KnowledgeGraph


def _kg() -> KnowledgeGraph:
    kg = KnowledgeGraph()
    for u, i in [("u0", "i0"), ("u0", "i1"), ("u1", "i1"), ("u1", "i2"), ("u2", "i0"), ("u2", "i3")]:
        kg.add_interaction(u, i, 4.0, 1.0)
    for item, genre in [("i0", "g0"), ("i1", "g0"), ("i2", "g1"), ("i3", "g1"), ("i0", "g1")]:
        kg.add_triple("item", item, "genre", "entity", genre)
    kg.add_triple("item", "i0", "director", "entity", "d_leaf")  # a leaf: pruned
    return kg


def test_kept_entities_are_a_buffer_and_survive_kg_perturbation():
    kg = _kg()
    inputs = build_graph_inputs(kg, kg.interactions(), {})
    opts = MMKGOptions(embedding_dim=4, num_layers=1, kg_layers=1, use_text=False, use_image=False,
                       use_clip_text=False, use_profile=False)
    torch.manual_seed(0)
    model = MMKGModel.from_inputs(inputs, opts).eval()
    g0, g1, leaf = (kg.index_of("entity", e) for e in ("g0", "g1", "d_leaf"))
    assert model.kept_entity_ids.tolist() == [g0, g1] and leaf not in model.kept_entity_ids.tolist()
    assert "kept_entity_ids" in model.state_dict()
    # drop most KG edges: on these inputs alone fewer entities would qualify ...
    perturbed = drop_kg_edges(inputs, 0.8, seed=1)
    assert kept_entities(perturbed, opts).numel() < model.kept_entity_ids.numel()
    # ... but the model keeps its trained rows and still scores every user-item pair
    with torch.no_grad():
        users, items = model(perturbed)
    assert users.shape == (3, 4) and items.shape == (4, 4) and torch.isfinite(items).all()
    # a rebuilt model restores the trained set from the state dict
    clone = MMKGModel.from_inputs(inputs, opts)
    clone.load_state_dict(model.state_dict())
    assert torch.equal(clone.kept_entity_ids, model.kept_entity_ids)
    # a checkpoint written before the buffer existed still loads (the ids come from the same inputs)
    old = {k: v for k, v in model.state_dict().items() if k != "kept_entity_ids"}
    again = MMKGModel.from_inputs(inputs, opts)
    again.load_state_dict(old)
    assert torch.equal(again.kept_entity_ids, model.kept_entity_ids)
