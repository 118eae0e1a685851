import math

import pytest
import torch

from gnn.losses import bpr_loss, info_nce, l2_regularization, sampled_softmax_loss, transe_loss
from gnn.negative_sampling import NegativeSampler


def test_bpr_loss_hand_values():
    # -log sigmoid(1 - 0) = log(1 + e^-1)
    assert bpr_loss(torch.tensor([1.0]), torch.tensor([0.0])).item() == pytest.approx(math.log(1 + math.exp(-1)))
    # [B, n] negatives pair with their row's positive: mean of log(1+e^-2), log(1+e^0)
    got = bpr_loss(torch.tensor([2.0]), torch.tensor([[0.0, 2.0]])).item()
    assert got == pytest.approx((math.log(1 + math.exp(-2)) + math.log(2)) / 2)


def test_sampled_softmax_hand_values():
    got = sampled_softmax_loss(torch.tensor([2.0]), torch.tensor([[0.0, 0.0]]), temperature=1.0).item()
    assert got == pytest.approx(math.log(math.exp(2) + 2) - 2)
    # temperature divides every logit
    got = sampled_softmax_loss(torch.tensor([1.0]), torch.tensor([0.0]), temperature=0.5).item()
    assert got == pytest.approx(math.log(math.exp(2) + 1) - 2)


def test_l2_regularization_is_half_squared_norm_per_example():
    got = l2_regularization([torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0]])], batch_size=2)
    assert got.item() == pytest.approx((1 + 4 + 9) / 4)
    assert l2_regularization([], 4).item() == 0.0


def test_info_nce_hand_values_and_mask():
    eye = torch.eye(2)
    # logits = I / 1; CE per row = log(e + 1) - 1, both directions equal
    assert info_nce(eye, eye, temperature=1.0).item() == pytest.approx(math.log(math.e + 1) - 1)
    # normalisation inside: scaling a view changes nothing
    assert info_nce(3 * eye, eye, temperature=1.0).item() == pytest.approx(math.log(math.e + 1) - 1)
    # aligned views score lower than swapped ones
    swapped = eye.flip(0)
    assert info_nce(eye, eye, 0.2) < info_nce(eye, swapped, 0.2)
    # fewer than two rows kept -> zero (and still differentiable)
    a = torch.randn(3, 4, requires_grad=True)
    out = info_nce(a, torch.randn(3, 4), mask=torch.tensor([True, False, False]))
    assert out.item() == 0.0
    out.backward()


def test_transe_loss_hand_values():
    h, r, t = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]])
    neg = torch.tensor([[1.0, 3.0]])  # ||h + r - neg||^2 = 4, positive distance 0
    assert transe_loss(h, r, t, neg).item() == pytest.approx(math.log(1 + math.exp(-4)))


def test_negative_sampler_avoids_positives_and_respects_popularity():
    users = torch.tensor([0, 0, 0, 1, 2, 3, 3])
    items = torch.tensor([0, 1, 2, 0, 0, 3, 4])
    s = NegativeSampler(users, items, num_items=7, exclude_items=torch.tensor([5]))
    gen = torch.Generator().manual_seed(0)
    neg = s.sample(torch.zeros(2000, dtype=torch.long), generator=gen)
    # user 0 owns 0, 1, 2; item 5 is excluded (a held-out cold item); item 6 has no pair but is a catalogue item
    assert neg.shape == (2000,) and set(neg.tolist()) == {3, 4, 6}
    assert s.candidates.tolist() == [0, 1, 2, 3, 4, 6]
    assert torch.equal(NegativeSampler(users, items, num_items=7).candidates, torch.arange(7))
    # without exclusions the draws are plain uniform ids (runs keep their random stream); user 9 owns nothing
    plain = NegativeSampler(users, items, num_items=7).sample(torch.full((50,), 9), generator=torch.Generator()
                                                              .manual_seed(3))
    assert torch.equal(plain, torch.randint(7, (50,), generator=torch.Generator().manual_seed(3)))
    many = s.sample(torch.tensor([1, 2]), num=7, generator=gen)
    assert many.shape == (2, 7) and not bool(s.is_positive(torch.tensor([1, 2]).repeat_interleave(7),
                                                            many.flatten()).any())
    assert s.is_positive(torch.tensor([0, 1, 1]), torch.tensor([2, 0, 1])).tolist() == [True, True, False]
    users, items = users[:5], items[:5]  # items 3, 4 without training pairs from here on
    pop = NegativeSampler(users, items, num_items=5, mode="popularity")
    draws = pop.sample(torch.full((3000,), 1), generator=gen)
    counts = torch.bincount(draws, minlength=5)
    # never-seen items 3, 4 have probability 0; item 0 is user 1's positive
    assert counts[3] == 0 and counts[4] == 0 and counts[0] == 0
    assert counts[1] > 0 and counts[2] > 0
    with pytest.raises(ValueError, match="unknown negative sampling mode"):
        NegativeSampler(users, items, 5, mode="hard")


def test_row_weights_give_a_weighted_mean():
    pos, neg = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0])
    rows = [math.log(1 + math.exp(-1)), math.log(2)]
    got = bpr_loss(pos, neg, weight=torch.tensor([3.0, 1.0])).item()
    assert got == pytest.approx((3 * rows[0] + rows[1]) / 4)
    got = sampled_softmax_loss(pos, neg.unsqueeze(1), weight=torch.tensor([0.0, 1.0])).item()
    assert got == pytest.approx(math.log(2))


def test_dense_and_binary_search_lookups_agree(monkeypatch):
    import gnn.negative_sampling as ns

    users, items = torch.tensor([0, 0, 2, 3]), torch.tensor([1, 4, 0, 2])
    q_users, q_items = torch.tensor([0, 0, 1, 2, 3, 5]), torch.tensor([1, 2, 1, 0, 2, 1])
    dense = ns.NegativeSampler(users, items, 5).is_positive(q_users, q_items)
    monkeypatch.setattr(ns, "DENSE_LIMIT", 0)
    sparse = ns.NegativeSampler(users, items, 5).is_positive(q_users, q_items)
    assert dense.tolist() == sparse.tolist() == [True, False, False, True, True, False]
