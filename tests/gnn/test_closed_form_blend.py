"""The closed-form item-item branch (gnn/closed_form_blend.py): EASE's optimality conditions, the blended
scores against a hand computation, and the refusals."""

import pytest
import torch
from test_train_full_softmax import FixedEmbeddings

from gnn.closed_form_blend import MAX_ITEMS, ClosedFormBlend
from gnn.ease import EASE, binary_history, ease_weights, item_gram
from gnn.graph_inputs import GraphInputs, build_graph_inputs
from kg.model.graph import KnowledgeGraph
from training.config import ConfigError
from training.model_factory import build_model

PAIRS = [(0, 0), (0, 1), (0, 3), (1, 1), (1, 2), (2, 0), (2, 2), (2, 3), (3, 1), (3, 3), (4, 0), (4, 1), (4, 2)]


def _inputs(drop: tuple[int, int] | None = None) -> GraphInputs:
    kg = KnowledgeGraph()
    for t, n in (("user", 5), ("item", 4)):  # node index = the number in the name
        for k in range(n):
            kg.add_node(t, f"{t[0]}{k}")
    for u, i in PAIRS:
        if (u, i) != drop:
            kg.add_interaction(f"u{u}", f"i{i}", 4.0, 1.0)
    return build_graph_inputs(kg, kg.interactions(), {})


def test_ease_weights_meet_the_ease_optimality_conditions():
    inputs = _inputs()
    b = ease_weights(item_gram(binary_history(inputs.train_user, inputs.train_item, 5, 4)), 2.0)
    x = torch.zeros(5, 4, dtype=torch.float64)
    x[inputs.train_user, inputs.train_item] = 1.0
    g = x.T @ x
    assert torch.all(b.diagonal() == 0)
    # stationarity of ||X - XB||^2 + reg ||B||^2 with diag(B) = 0: (G + reg I) B - G is zero off the diagonal
    resid = (g + 2.0 * torch.eye(4, dtype=torch.float64)) @ b - g
    assert torch.allclose(resid - torch.diag(resid.diagonal()), torch.zeros(4, 4, dtype=torch.float64), atol=1e-5)
    ease = EASE(2.0)
    ease.fit(inputs.train_user, inputs.train_item, 5, 4)
    assert torch.allclose(b.float(), ease.weight)


def test_blended_scores_are_the_dot_products_plus_the_weighted_branch():
    inputs = _inputs()
    g = torch.Generator().manual_seed(0)
    user, item = torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g)
    model = FixedEmbeddings(user, item)
    model.closed_form = ClosedFormBlend(4)
    users = torch.arange(5)
    assert not model.closed_form.active
    assert model.closed_form.item_item.shape == (0, 0)  # off: no [I, I] buffer to train, average or broadcast
    assert torch.equal(model.score_fn(inputs)(users), user @ item.T)  # off: the model's own scores
    with pytest.raises(ValueError, match=r"B must be \[4, 4\]"):
        model.closed_form.set(torch.zeros(3, 3), 0.5, 300.0)
    b = torch.arange(16, dtype=torch.float32).reshape(4, 4) / 10
    model.closed_form.set(b, 0.5, 300.0)
    got = model.score_fn(inputs)(users)
    owned = {u: [i for v, i in PAIRS if v == u] for u in range(5)}
    for u in range(5):
        for j in range(4):
            want = float(user[u] @ item[j]) + 0.5 * sum(float(b[i, j]) for i in owned[u])
            assert float(got[u, j]) == pytest.approx(want, abs=1e-5)
    # other inputs change the history rows, not B: user 0 without its item 3
    fewer = _inputs(drop=(0, 3))
    assert torch.allclose(model.score_fn(fewer)(users)[0], got[0] - 0.5 * b[3], atol=1e-6)
    state = model.state_dict()
    again = FixedEmbeddings(user, item)
    again.closed_form = ClosedFormBlend(4)
    again.load_state_dict(state)
    assert torch.equal(again.score_fn(inputs)(users), got) and float(again.closed_form.reg) == 300.0
    again.closed_form.reset_parameters()  # an off branch's state loads into a fresh one, and an active one over it
    off = FixedEmbeddings(user, item)
    off.closed_form = ClosedFormBlend(4)
    off.load_state_dict(again.state_dict())
    assert off.closed_form.item_item.shape == (0, 0) and torch.equal(off.score_fn(inputs)(users), user @ item.T)
    off.load_state_dict(state)
    assert torch.equal(off.score_fn(inputs)(users), got)
    without_b = {k: v for k, v in state.items() if not k.endswith("item_item")}  # weight set, B missing
    fresh = FixedEmbeddings(user, item)
    fresh.closed_form = ClosedFormBlend(4)
    with pytest.raises(RuntimeError, match=r"an active closed-form branch .* needs B \[4, 4\], got \[0, 0\]"):
        fresh.load_state_dict(without_b, strict=False)


def test_refusals():
    with pytest.raises(ValueError, match=f"over its limit of {MAX_ITEMS}"):
        ClosedFormBlend(MAX_ITEMS + 1)
    inputs = _inputs()
    with pytest.raises(ConfigError, match="ease_blend adds a closed-form branch"):
        build_model({"model": "ease", "ease_blend": True}, inputs)
    model = build_model({"model": "lightgcn", "ease_blend": True, "embedding_dim": 4}, inputs)
    assert isinstance(model.closed_form, ClosedFormBlend) and not model.closed_form.active
    assert not hasattr(build_model({"model": "lightgcn", "embedding_dim": 4}, inputs), "closed_form")
