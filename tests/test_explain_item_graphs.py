"""Fast exact masking (explanations.scoring.MaskedScores) of a model with item-item graphs."""

import torch
from test_explain import assert_fast_equals_forward, setup

from gnn.graph_inputs import build_graph_inputs


def test_fast_masking_with_item_item_graphs_equals_a_full_forward() -> None:
    from explanations.scoring import MaskedScores
    from gnn.mmkg_model import MMKGModel, MMKGOptions

    kg, train, inputs, _ = setup()
    g = torch.Generator().manual_seed(2)
    n_items, n_users = kg.num_nodes("item"), kg.num_nodes("user")
    feats = {"item.text": torch.randn(n_items, 6, generator=g), "user.profile_text": torch.randn(n_users, 4,
                                                                                                generator=g)}
    inputs = build_graph_inputs(kg, train, feats)
    torch.manual_seed(0)
    opts = dict(embedding_dim=8, use_kg=False, use_image=False, use_clip_text=False, item_graphs="text,kg",
                item_graph_k=2, item_graph_weight=1.0, item_graph_learn_weight=False)
    post = MMKGModel.from_inputs(inputs, MMKGOptions(**opts)).eval()
    assert MaskedScores.for_model(post, inputs) is None  # after the propagation: the full forward per mask
    model = MMKGModel.from_inputs(inputs, MMKGOptions(**opts, item_graph_stage="pre")).eval()
    with torch.no_grad():
        model.item_encoder.gate.normal_()  # the (zero-initialised) text content matters too
    fast = MaskedScores.for_model(model, inputs)
    assert fast is not None and fast.ig is not None and fast.ig.abs().sum() > 0
    assert_fast_equals_forward(kg, train, inputs, model, fast)


def test_fast_masking_with_kg_propagation_and_item_item_graphs_equals_a_full_forward() -> None:
    from explanations.scoring import MaskedScores
    from gnn.mmkg_model import MMKGModel, MMKGOptions

    kg, train, inputs, _ = setup()
    g = torch.Generator().manual_seed(5)
    feats = {"item.text": torch.randn(kg.num_nodes("item"), 6, generator=g)}
    inputs = build_graph_inputs(kg, train, feats)
    torch.manual_seed(1)
    opts = MMKGOptions(embedding_dim=8, use_kg=True, use_profile=True, use_image=False, use_clip_text=False,
                       item_graphs="text,kg", item_graph_k=2, item_graph_weight=1.0, item_graph_learn_weight=False,
                       item_graph_stage="pre")
    model = MMKGModel.from_inputs(inputs, opts).eval()
    with torch.no_grad():
        model.kg_gate.fill_(1.0)  # the (zero-initialised) KG term and text content matter too
        model.item_encoder.gate.normal_()
    fast = MaskedScores.for_model(model, inputs)
    assert fast is not None and fast.kg_h is not None and fast.ig.abs().sum() > 0
    assert_fast_equals_forward(kg, train, inputs, model, fast)
