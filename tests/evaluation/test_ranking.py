"""Full-ranking top-K: masking, deterministic ties, catalogue clipping, batching, input formats."""

import numpy as np
import pytest
import torch

from evaluation import EvaluationError
from evaluation.ranking import (
    UserItemSets,
    as_user_item_sets,
    build_user_item_sets,
    rank_all_items,
    topk_lower_index_ties,
)


def _fixed(scores):
    table = torch.as_tensor(scores, dtype=torch.float32)
    return lambda users: table[users]


def test_build_user_item_sets_sorts_and_deduplicates():
    sets = build_user_item_sets(np.array([2, 0, 2, 2]), np.array([5, 1, 3, 5]), num_users=3, num_items=6)
    assert sets.indptr.tolist() == [0, 1, 1, 3]
    assert sets.indices.tolist() == [1, 3, 5]
    assert sets.row(1).tolist() == [] and sets.row(2).tolist() == [3, 5]
    assert sets.lengths().tolist() == [1, 0, 2]
    assert sets.item_counts().tolist() == [0, 1, 0, 1, 0, 1]
    both = sets.union(build_user_item_sets([1, 2], [0, 4], 3, 6))
    assert [both.row(u).tolist() for u in range(3)] == [[1], [0], [3, 4, 5]]
    with pytest.raises(EvaluationError, match=r"pair 1: item index 9 outside \[0, 6\)"):
        build_user_item_sets([0, 1], [2, 9], 3, 6)
    with pytest.raises(EvaluationError, match="user index -1"):
        build_user_item_sets([-1], [2], 3, 6)


def test_exclusion_formats_agree():
    csr = (np.array([0, 2, 2, 3]), np.array([4, 1, 0]))
    lists = [np.array([1, 4]), np.array([], dtype=np.int64), np.array([0])]
    a, b = as_user_item_sets(csr, 5), as_user_item_sets(lists, 5)
    assert isinstance(a, UserItemSets)
    assert a.indptr.tolist() == b.indptr.tolist() and a.indices.tolist() == b.indices.tolist() == [1, 4, 0]
    with pytest.raises(EvaluationError, match="malformed CSR"):
        as_user_item_sets((np.array([0, 3]), np.array([1])), 5)


def test_masked_items_never_recommended_and_order_by_score():
    scores = [[0.1, 0.9, 0.5, 0.7, 0.3], [0.9, 0.8, 0.7, 0.6, 0.5], [0.0, 0.0, 0.0, 0.0, 1.0]]
    exclude = [np.array([1, 3]), np.array([], dtype=np.int64), np.array([4])]
    top = rank_all_items(_fixed(scores), torch.arange(3), 5, exclude, k_max=3)
    assert top.dtype == torch.long and top.tolist() == [[2, 4, 0], [0, 1, 2], [0, 1, 2]]
    # users are looked up by id: rank user 2 then user 0
    assert rank_all_items(_fixed(scores), torch.tensor([2, 0]), 5, exclude, 2).tolist() == [[0, 1], [2, 4]]


def test_ties_lower_index_wins():
    top = rank_all_items(_fixed([[1, 3, 3, 2, 3, 3]]), torch.tensor([0]), 6, None, k_max=3)
    assert top.tolist() == [[1, 2, 4]]
    flat = rank_all_items(_fixed(torch.zeros(2, 50)), torch.arange(2), 50, [np.array([0, 2]), np.array([])], 4)
    assert flat.tolist() == [[1, 3, 4, 5], [0, 1, 2, 3]]


def test_ties_match_stable_sort_on_random_integer_scores():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (300, 40), generator=gen).float()
    for k in (1, 5, 17, 40):
        _, idx = topk_lower_index_ties(scores, k)
        expected = np.argsort(-scores.numpy(), axis=1, kind="stable")[:, :k]
        assert np.array_equal(idx.numpy(), expected), k


def test_k_larger_than_catalogue_is_clipped_and_padded():
    scores = [[0.2, 0.4, 0.1, 0.3], [1.0, 2.0, 3.0, 4.0]]
    top = rank_all_items(_fixed(scores), torch.arange(2), 4, [np.array([1]), np.array([])], k_max=10)
    assert top.shape == (2, 4)
    assert top.tolist() == [[3, 0, 2, -1], [3, 2, 1, 0]]
    everything = rank_all_items(_fixed(scores), torch.tensor([0]), 4, [np.arange(4)], k_max=2)
    assert everything.tolist() == [[-1, -1]]


def test_batch_size_does_not_change_the_result():
    gen = torch.Generator().manual_seed(1)
    emb_u, emb_i = torch.randn(37, 8, generator=gen), torch.randn(90, 8, generator=gen)
    users, items = torch.randint(0, 37, (400,), generator=gen), torch.randint(0, 90, (400,), generator=gen)
    exclude = build_user_item_sets(users, items, 37, 90)
    runs = [rank_all_items(lambda u: emb_u[u] @ emb_i.T, torch.arange(37), 90, exclude, 20, batch_size=b)
            for b in (1, 5, 1024)]
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])
    for u in range(37):
        assert not set(runs[0][u].tolist()) & set(exclude.row(u).tolist())
        full = (emb_u[u] @ emb_i.T).numpy().astype(np.float64)
        full[exclude.row(u)] = -np.inf
        assert runs[0][u].tolist() == np.argsort(-full, kind="stable")[:20].tolist()


def test_integer_scores_and_bad_scores():
    counts = torch.tensor([[3, 9, 9, 1]])
    assert rank_all_items(lambda u: counts.expand(len(u), 4), torch.arange(2), 4, None, 2).tolist() == [[1, 2]] * 2
    with pytest.raises(EvaluationError, match="NaN for user 1"):
        rank_all_items(_fixed([[0.0, 1.0], [float("nan"), 0.0]]), torch.arange(2), 2, None, 1)
    with pytest.raises(EvaluationError, match=r"shape \(1, 3\), expected \(1, 2\)"):
        rank_all_items(_fixed([[0.0, 1.0, 2.0]]), torch.arange(1), 2, None, 1)
    with pytest.raises(EvaluationError, match="no row in the exclusion sets"):
        rank_all_items(_fixed(torch.zeros(3, 2)), torch.tensor([2]), 2, [np.array([0])], 1)
