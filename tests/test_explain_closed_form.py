"""Fast exact masking (explanations.scoring.MaskedScores) of models with an active closed-form item-item
branch (gnn/closed_form_blend.py): a masked interaction removes its item's row of B from the user's term."""

import torch
from test_explain import assert_fast_equals_forward, setup

from gnn.closed_form_blend import ClosedFormBlend


def _with_branch(model, num_items: int):
    model.closed_form = ClosedFormBlend(num_items)
    g = torch.Generator().manual_seed(5)
    model.closed_form.set(torch.rand(num_items, num_items, generator=g), 2.0, 100.0)
    return model


def test_fast_masking_with_the_closed_form_branch_equals_a_full_forward() -> None:
    from explanations.scoring import MaskedScores
    from gnn.lightgcn_baseline import LightGCNBaseline
    from gnn.mmkg_model import MMKGModel, MMKGOptions

    kg, train, inputs, _ = setup()
    torch.manual_seed(3)
    lightgcn = _with_branch(LightGCNBaseline(inputs.num_users, inputs.num_items, 8, 3).eval(), inputs.num_items)
    fast = MaskedScores.for_model(lightgcn, inputs)
    assert fast is not None and fast.closed_form is lightgcn.closed_form
    assert_fast_equals_forward(kg, train, inputs, lightgcn, fast)
    model = MMKGModel.from_inputs(inputs, MMKGOptions(embedding_dim=8, use_text=False, use_image=False,
                                                      use_clip_text=False)).eval()
    model = _with_branch(model, inputs.num_items)
    fast = MaskedScores.for_model(model, inputs)
    assert fast is not None and fast.closed_form is model.closed_form
    assert_fast_equals_forward(kg, train, inputs, model, fast)
    model.closed_form.reset_parameters()  # off: the model's own masked scores
    assert MaskedScores.for_model(model, inputs).closed_form is None
