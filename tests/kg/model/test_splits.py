import numpy as np
import pytest

from kg.errors import MMKGError
from kg.model.graph import Interactions
from kg.model.splits import cold_item_split, make_split, random_split, split_counts, temporal_split


def _inter(seed: int = 0, users: int = 30, items: int = 40) -> Interactions:
    rng = np.random.default_rng(seed)
    u, i = [], []
    for user in range(users):
        n = int(rng.integers(1, 25))
        u += [user] * n
        i += rng.choice(items, size=n, replace=False).tolist()
    e = len(u)
    return Interactions(np.array(u, np.int64), np.array(i, np.int64), np.ones(e, np.float32),
                        rng.permutation(e).astype(np.float64))


def _check_partition(split, n: int) -> None:
    allidx = np.concatenate([split.train, split.valid, split.test])
    assert allidx.size == n and np.unique(allidx).size == n  # disjoint and complete
    assert set(allidx.tolist()) == set(range(n))


def test_split_counts_follow_recbole_rounding():
    assert split_counts(20, (0.8, 0.1, 0.1)) == [16, 2, 2]
    assert split_counts(10, (0.8, 0.1, 0.1)) == [8, 1, 1]
    assert split_counts(5, (0.8, 0.1, 0.1)) == [3, 1, 1]  # 0.5 -> 1 each, taken from train
    assert split_counts(2, (0.8, 0.1, 0.1)) == [1, 0, 1]  # train keeps at least one
    assert split_counts(1, (0.8, 0.1, 0.1)) == [1, 0, 0]
    assert split_counts(27, (0.8, 0.1, 0.1)) == [23, 2, 2]


def test_random_split_is_partition_with_per_user_ratios_and_seeded():
    inter = _inter()
    s = random_split(inter, seed=3)
    _check_partition(s, len(inter))
    for user in np.unique(inter.user):
        parts = [int(np.sum(inter.user[p] == user)) for p in (s.train, s.valid, s.test)]
        assert parts == split_counts(sum(parts), (0.8, 0.1, 0.1))
    again = random_split(inter, seed=3)
    assert np.array_equal(s.test, again.test)
    assert not np.array_equal(s.test, random_split(inter, seed=4).test)


def test_temporal_split_keeps_order_per_user():
    inter = _inter(1)
    s = temporal_split(inter)
    _check_partition(s, len(inter))
    for user in np.unique(inter.user):
        ts = [inter.timestamp[p][inter.user[p] == user] for p in (s.train, s.valid, s.test)]
        present = [t for t in ts if t.size]
        for a, b in zip(present, present[1:], strict=False):
            assert a.max() < b.min()


def test_temporal_split_needs_timestamps():
    inter = _inter()
    bad = Interactions(inter.user, inter.item, inter.rating, np.full(len(inter), np.nan))
    with pytest.raises(MMKGError, match="interaction 0"):
        temporal_split(bad)


def test_cold_items_never_in_training():
    inter = _inter(2)
    s = cold_item_split(inter, seed=5)
    _check_partition(s, len(inter))
    n_items = np.unique(inter.item).size
    assert s.cold_items.size == round(0.1 * n_items)
    assert not np.isin(inter.item[s.train], s.cold_items).any()
    cold_rows = np.flatnonzero(np.isin(inter.item, s.cold_items))
    assert np.isin(cold_rows, np.concatenate([s.valid, s.test])).all()
    # each cold item's interactions all land in one of valid / test
    for item in s.cold_items:
        rows = np.flatnonzero(inter.item == item)
        assert np.isin(rows, s.valid).all() or np.isin(rows, s.test).all()


def test_make_split_rejects_unknown_method_and_bad_ratios():
    inter = _inter()
    with pytest.raises(MMKGError, match="unknown split method 'foo'"):
        make_split(inter, "foo")
    with pytest.raises(MMKGError, match="ratios"):
        make_split(inter, "random", (0.5, 0.5))
    assert make_split(inter, "temporal").method == "temporal"


def test_sparse_regime_thins_each_users_training_pairs_only():
    from kg.model.splits import thin_train

    inter = _inter(2)
    full = make_split(inter, "random", seed=5)
    s = make_split(inter, "random", seed=5, train_fraction=0.2)
    assert np.array_equal(s.valid, full.valid) and np.array_equal(s.test, full.test)  # valid / test untouched
    assert set(s.train.tolist()) <= set(full.train.tolist()) and np.all(np.diff(s.train) > 0)
    for user in np.unique(inter.user[full.train]):
        n = int(np.sum(inter.user[full.train] == user))
        kept = int(np.sum(inter.user[s.train] == user))
        assert kept == max(int(np.ceil(0.2 * n - 1e-9)), 1)  # the share, at least one
    assert np.array_equal(make_split(inter, "random", seed=5, train_fraction=0.2).train, s.train)  # seeded
    assert not np.array_equal(make_split(inter, "random", seed=6, train_fraction=0.2).train,
                              thin_train(make_split(inter, "random", seed=6), inter, 0.3).train)
    assert thin_train(full, inter, 1.0) is full
    with pytest.raises(MMKGError):
        thin_train(full, inter, 0.0)
