"""train.py's full-softmax loss against a hand computation: every item is a negative, the user's own
training items are masked, held-out cold items never appear."""

import math

import pytest
import torch
from torch import Tensor, nn

from gnn.graph_inputs import GraphInputs, build_graph_inputs
from gnn.negative_sampling import NegativeSampler
from gnn.recommender import TrainableRecommender
from kg.model.graph import KnowledgeGraph
from training.config import TrainConfig
from training.epoch import train_epoch


class FixedEmbeddings(TrainableRecommender):
    def __init__(self, user: Tensor, item: Tensor) -> None:
        super().__init__()
        self.user, self.item = nn.Parameter(user.clone()), nn.Parameter(item.clone())

    def forward(self, inputs: GraphInputs) -> tuple[Tensor, Tensor]:
        return self.user, self.item


def test_full_softmax_loss_matches_a_hand_computation():
    kg = KnowledgeGraph()
    pairs = [("u0", "i0"), ("u0", "i1"), ("u1", "i1"), ("u1", "i2")]
    for u, i in pairs:
        kg.add_interaction(u, i, 4.0, 1.0)
    kg.add_node("item", "i3")  # a held-out cold item: excluded from the negatives
    inputs = build_graph_inputs(kg, kg.interactions(), {})
    g = torch.Generator().manual_seed(0)
    user, item = torch.randn(2, 3, generator=g), torch.randn(4, 3, generator=g)
    item[3] = 10 * user.sum(0)  # a cold item that would dominate every softmax if it were a negative
    model = FixedEmbeddings(user, item)
    cfg = TrainConfig(kg="-", loss="full_softmax", batch_size=100, l2_weight=0.0, progress=False)
    sampler = NegativeSampler(inputs.train_user, inputs.train_item, inputs.num_items, exclude_items=torch.tensor([3]))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    got = train_epoch(model, model, inputs, sampler, opt, cfg, epoch=1, rank=0, world=1)["rank"]
    owned = {0: {0, 1}, 1: {1, 2}}
    expected = []
    for u, i in [(0, 0), (0, 1), (1, 1), (1, 2)]:
        s = {j: float(user[u] @ item[j]) for j in range(4)}
        others = [s[j] for j in (0, 1, 2) if j not in owned[u]]  # trained items the user does not own
        expected.append(-s[i] + math.log(math.exp(s[i]) + sum(math.exp(x) for x in others)))
    assert got == pytest.approx(sum(expected) / len(expected), rel=1e-5)
