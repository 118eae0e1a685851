"""Item-ID dropout (DropoutNet): untrained items are served from content, trained ones lose their ID
at random while training only."""

import pytest
import torch

from gnn.graph_inputs import build_graph_inputs
from gnn.mmkg_model import MMKGModel, MMKGOptions
from kg.model.graph import KnowledgeGraph


def _inputs():
    kg = KnowledgeGraph()
    for u, i in [("u0", "i0"), ("u0", "i1"), ("u1", "i1"), ("u1", "i2"), ("u2", "i0")]:
        kg.add_interaction(u, i, 4.0, 1.0)
    kg.add_node("item", "i3")  # a cold item: no training interaction
    g = torch.Generator().manual_seed(0)
    feats = {"item.text": torch.randn(4, 6, generator=g), "item.text_mask": torch.ones(4, dtype=torch.bool)}
    return build_graph_inputs(kg, kg.interactions(), feats)


def _model(inputs, p: float) -> MMKGModel:
    torch.manual_seed(0)
    opts = MMKGOptions(embedding_dim=4, num_layers=1, use_kg=False, use_image=False, use_clip_text=False,
                       use_profile=False, item_id_dropout=p)
    return MMKGModel.from_inputs(inputs, opts)


def test_untrained_items_are_served_from_content_alone():
    inputs = _inputs()
    model = _model(inputs, 0.5).eval()
    assert model.trained_items.tolist() == [True, True, True, False]
    assert "trained_items" in model.state_dict()
    enc = model.item_encoder
    with torch.no_grad():
        enc.gate.fill_(0.7)  # a trained gate: ID + 0.7 * content, so content must not be lost on kept rows
        ego = model.embed(inputs)["item_ego"]
        text = enc.proj["text"](inputs.features["item.text"])
        ids = enc.id_emb.weight
    # cold item 3: the projected text alone, no (untrained) ID row; trained items: ID + gate * text
    assert torch.allclose(ego[3], text[3])
    assert torch.allclose(ego[:3], ids[:3] + enc.gate * text[:3])
    # without the option every item keeps its ID (the default model is unchanged)
    plain = _model(inputs, 0.0).eval()
    assert plain.trained_items is None and "trained_items" not in plain.state_dict()
    with torch.no_grad():
        assert torch.allclose(plain.embed(inputs)["item_ego"][3], plain.item_encoder.id_emb.weight[3])


def test_training_drops_ids_at_the_given_rate():
    inputs = _inputs()
    model = _model(inputs, 0.5)
    model.trained_items = torch.arange(2000) % 4 != 3  # many items, a quarter of them untrained
    model.train()
    torch.manual_seed(1)
    kept = model._item_id_keep()
    assert not bool(kept[3::4].any())  # an untrained item never uses its ID, not even while training
    assert 0.45 < kept[model.trained_items].float().mean().item() < 0.55
    model.eval()
    assert torch.equal(model._item_id_keep(), model.trained_items)
    with pytest.raises(ValueError, match="item_id_dropout must be in"):
        _model(inputs, 1.0)


def test_training_forward_mixes_id_and_content_rows():
    inputs = _inputs()
    model = _model(inputs, 0.5).train()
    enc = model.item_encoder
    with torch.no_grad():
        enc.gate.fill_(0.7)
        text = enc.proj["text"](inputs.features["item.text"])
        with_id = enc.id_emb.weight + enc.gate * text
        seen = set()
        for step in range(40):
            torch.manual_seed(step)
            ego = model.embed(inputs)["item_ego"]
            assert torch.allclose(ego[3], text[3])  # the cold item: content alone, every step
            for i in range(3):
                if torch.allclose(ego[i], with_id[i]):
                    seen.add((i, "id"))
                else:
                    assert torch.allclose(ego[i], text[i])
                    seen.add((i, "content"))
    assert seen == {(i, kind) for i in range(3) for kind in ("id", "content")}  # both happen to every item
