"""Choosing the closed-form item-item branch on validation (evaluation/closed_form_selection.py): the grid's
best validation score wins, the model alone wins ties, the kept branch scores what was recorded, and a test
evaluator is refused."""

import numpy as np
import pytest
import torch
from test_train_full_softmax import FixedEmbeddings

from evaluation.closed_form_selection import select_closed_form
from evaluation.protocol import ProtocolError, TestEvaluator, ValidationEvaluator
from evaluation.ranking import build_user_item_sets
from gnn.closed_form_blend import ClosedFormBlend
from gnn.graph_inputs import build_graph_inputs
from kg.model.graph import KnowledgeGraph


def _data(seed: int = 0, test: bool = False, valid_out: list | None = None):
    """30 users over 20 items in two taste groups (even / odd items); a held-out item per user."""
    rng = np.random.default_rng(seed)
    kg, valid = KnowledgeGraph(), []
    for t, n in (("user", 30), ("item", 20)):
        for k in range(n):
            kg.add_node(t, f"{t[0]}{k}")
    for u in range(30):
        items = rng.choice(np.arange(u % 2, 20, 2), size=6, replace=False)
        for i in items[:5]:
            kg.add_interaction(f"u{u}", f"i{i}", 4.0, 1.0)
        valid.append((u, int(items[5])))
    inputs = build_graph_inputs(kg, kg.interactions(), {})
    train_sets = build_user_item_sets(inputs.train_user, inputs.train_item, 30, 20)
    v = np.array(valid)
    if valid_out is not None:
        valid_out.extend(valid)
    valid_sets = build_user_item_sets(v[:, 0], v[:, 1], 30, 20)
    if test:
        return inputs, TestEvaluator(train_sets, valid_sets, build_user_item_sets(v[:, 0], (v[:, 1] + 2) % 20, 30, 20),
                                     (5,), n_resamples=0)
    return inputs, ValidationEvaluator(train_sets, valid_sets, (5,), "ndcg@5")


@pytest.mark.parametrize("aligned", [False, True])
def test_the_validation_best_blend_is_kept(aligned):
    held: list[tuple[int, int]] = []
    inputs, validator = _data(valid_out=held)
    g = torch.Generator().manual_seed(1)
    if aligned:  # embeddings that rank every user's held-out item first (NDCG 1): ties go to the model alone
        user = torch.zeros(30, 20)
        user[[u for u, _ in held], [i for _, i in held]] = 1.0
        item = torch.eye(20) * 100
    else:  # random embeddings: the item-item branch has the signal
        user, item = torch.randn(30, 4, generator=g), torch.randn(20, 4, generator=g)
    model = FixedEmbeddings(user, item)
    model.closed_form = ClosedFormBlend(20)
    chosen = select_closed_form(model, inputs, validator, [1.0, 10.0], [0.0, 0.5, 2.0], "ndcg@5")
    assert len(chosen["grid"]) == 1 + 2 * 2  # the model alone, then 2 L2s x the 2 positive weights
    best = max(r["ndcg@5"] for r in chosen["grid"])
    assert chosen["valid"]["ndcg@5"] == pytest.approx(best)
    rescored = validator.evaluate(model.score_fn(inputs)).metrics["ndcg@5"]["mean"]
    assert rescored == pytest.approx(chosen["valid"]["ndcg@5"])
    if aligned:
        assert chosen["weight"] == 0.0 and not model.closed_form.active
    else:
        assert chosen["weight"] > 0 and model.closed_form.active and chosen["valid"]["ndcg@5"] > chosen[
            "base_valid"]["ndcg@5"]
        assert float(model.closed_form.weight) == pytest.approx(chosen["weight"] * chosen["scale"])


def test_selection_refuses_a_test_evaluator():
    inputs, test = _data(test=True)
    model = FixedEmbeddings(torch.zeros(30, 2), torch.zeros(20, 2))
    model.closed_form = ClosedFormBlend(20)
    with pytest.raises(ProtocolError):
        select_closed_form(model, inputs, test, [1.0], [0.5], "ndcg@5")

