"""Users' text view projected through the mean of their items' text: same values and gradients as projecting
``GraphInputs.user_content``; perturbed user content falls back to the direct projection."""

import dataclasses

import torch

from gnn.mmkg_model import MMKGModel, MMKGOptions
from gnn.user_content import user_content_operator
from tests.gnn.test_fast_paths import _random_inputs


def _loss_and_grads(model, inputs):
    model.zero_grad(set_to_none=True)
    user, item = model(inputs)
    loss = (user[:7] @ item.T).logsumexp(1).sum() + user.pow(2).sum() * 0.1
    loss.backward()
    return user.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_the_operator_reproduces_user_content_and_rejects_perturbed_content():
    inputs = _random_inputs(3)
    found = user_content_operator(inputs)
    assert found is not None
    assert torch.allclose(torch.sparse.mm(found.op, found.x), inputs.user_content, atol=1e-6)
    assert found.op.shape == (inputs.num_users, inputs.num_items)
    changed = dataclasses.replace(inputs, user_content=inputs.user_content + 0.01)
    assert user_content_operator(changed) is None


def test_projection_through_the_mean_matches_the_direct_projection():
    inputs = _random_inputs(4)
    options = MMKGOptions(embedding_dim=16, num_layers=2, use_kg=True, use_profile=True, use_text=True)
    torch.manual_seed(0)
    model = MMKGModel.from_inputs(inputs, options)
    with torch.no_grad():  # gates open: the user text view reaches the output
        model.user_encoder.gate.fill_(0.7)
    assert "content" in model.user_encoder.modalities
    fast, fast_grads = _loss_and_grads(model, inputs)
    assert model._cache["user_content"][1] is not None  # the mean path ran
    # the same inputs with user content that is not the operator's mean (a copy): the direct projection
    direct_inputs = dataclasses.replace(inputs, user_content=inputs.user_content.clone() + 0.0)
    direct_inputs.user_content[0, 0] += 1e-3
    model._cache.clear()
    _, _ = _loss_and_grads(model, direct_inputs)
    assert model._cache["user_content"][1] is None
    direct_inputs.user_content[0, 0] -= 1e-3  # back to the exact mean, forced down the direct path
    slow, slow_grads = _loss_and_grads(model, direct_inputs)
    assert model._cache["user_content"][1] is None
    assert torch.allclose(fast, slow, rtol=1e-5, atol=1e-6)
    assert fast_grads.keys() == slow_grads.keys()
    for k in fast_grads:
        assert torch.allclose(fast_grads[k], slow_grads[k], rtol=1e-4, atol=1e-6), k
    assert fast_grads["user_encoder.proj.content.lin1.weight"].abs().sum() > 0
