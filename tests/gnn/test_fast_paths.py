"""The optimised training paths against the straightforward computation on tiny graphs: same values, same
gradients."""

import torch

from gnn.negative_sampling import NegativeSampler


def test_positive_pairs_are_the_nonzeros_of_the_dense_lookup():
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        n_users, n_items = int(torch.randint(1, 20, (1,), generator=g)), int(torch.randint(1, 30, (1,), generator=g))
        n = int(torch.randint(1, 150, (1,), generator=g))
        sampler = NegativeSampler(torch.randint(n_users, (n,), generator=g), torch.randint(n_items, (n,), generator=g),
                                  n_items)
        users = torch.randint(n_users + 3, (int(torch.randint(0, 40, (1,), generator=g)),), generator=g)
        items = torch.randint(n_items, (int(torch.randint(0, 50, (1,), generator=g)),), generator=g)  # repeats too
        rows, cols = sampler.positive_pairs(users, items)
        dense = torch.zeros(users.numel(), items.numel(), dtype=torch.bool)
        dense[rows, cols] = True
        assert rows.numel() == int(dense.sum())  # each hit once
        assert torch.equal(dense, sampler.is_positive(users[:, None], items[None, :]))
