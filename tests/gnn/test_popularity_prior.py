"""The content -> popularity prior: a ridge fit checked by hand, its leave-one-out choice of the ridge
strength against brute-force refits, and that only the warm items' counts enter."""

from __future__ import annotations

import math

import pytest
import torch

from gnn.popularity_prior import PopularityPrior, standardise


def _counts(log1p: list[float]) -> torch.Tensor:
    return torch.tensor([math.exp(v) - 1.0 for v in log1p])


def test_hand_computed_ridge_fit() -> None:
    # warm x = 0, 1, 2 with log(1 + count) = 1, 2, 3; item 3 (x = 5) is cold. Standardised warm z = (x - 1) / s,
    # s^2 = 2/3, so z.z = 3 and z.y_c = 2 / s; with l2 = 1, w = (2 / s) / 4 and the prior is 2 + (x - 1) * 0.75
    x = torch.tensor([[0.0], [1.0], [2.0], [5.0]])
    counts = _counts([1.0, 2.0, 3.0, 0.0])
    warm = torch.tensor([True, True, True, False])
    prior = PopularityPrior(l2_grid=(1.0,)).fit(x, counts, warm)
    torch.testing.assert_close(prior, torch.tensor([1.25, 2.0, 2.75, 5.0]))


def test_cold_counts_and_rows_do_not_enter_the_fit() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, generator=g)
    counts = torch.randint(1, 50, (30,), generator=g).float()
    warm = torch.arange(30) < 20
    a = PopularityPrior().fit(x, counts, warm)
    other = counts.clone()
    other[~warm] = 1000.0  # a cold item's count (and features) are never read by the fit
    x2 = x.clone()
    x2[25] += 10.0
    model = PopularityPrior()
    b = model.fit(x2, other, warm)
    torch.testing.assert_close(a[:20], b[:20])
    torch.testing.assert_close(model.predict(x[25:26]), a[25:26])


def test_leave_one_out_matches_brute_force_refits() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -0.5, 0.2], dtype=torch.float64) + 0.3 * torch.randn(12, generator=g).double()
    counts = torch.expm1(y - y.min() + 0.1)
    warm = torch.ones(12, dtype=torch.bool)
    model = PopularityPrior(l2_grid=(0.5, 5.0, 50.0))
    model.fit(x, counts, warm)
    target = torch.log1p(counts)
    z = (x - x.mean(0)) / x.std(0, unbiased=False)  # the fit's standardisation, held fixed while refitting
    for a in (0.5, 5.0, 50.0):
        errors = []
        for i in range(12):
            keep = torch.arange(12) != i
            design = torch.cat([torch.ones(11, 1, dtype=torch.float64), z[keep]], dim=1)
            penalty = torch.diag(torch.tensor([0.0, a, a, a], dtype=torch.float64))  # intercept unpenalised
            coef = torch.linalg.solve(design.T @ design + penalty, design.T @ target[keep])
            errors.append(float(target[i] - coef[0] - z[i] @ coef[1:]) ** 2)
        assert model.loo_mse[a] == pytest.approx(sum(errors) / 12, rel=1e-9)
    assert model.l2 == min(model.loo_mse, key=model.loo_mse.get)


def test_constant_columns_and_groups() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.cat([torch.randn(10, 2, generator=g), torch.ones(10, 1)], dim=1)  # the third column is constant
    counts = torch.arange(10).float()
    warm = torch.ones(10, dtype=torch.bool)
    plain = PopularityPrior(l2_grid=(1.0,)).fit(x, counts, warm)
    assert torch.isfinite(plain).all()
    torch.testing.assert_close(PopularityPrior(l2_grid=(1.0,)).fit(x, counts, warm, [1, 1, 1]), plain)
    # one group of width 2 halves both columns' variance: the same fit as l2 doubled on ungrouped columns
    grouped = PopularityPrior(l2_grid=(1.0,)).fit(x, counts, warm, [2, 1])
    torch.testing.assert_close(grouped, PopularityPrior(l2_grid=(2.0,)).fit(x, counts, warm))
    with pytest.raises(ValueError, match="summing to the 3"):
        PopularityPrior().fit(x, counts, warm, [2, 2])


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 2 warm"):
        PopularityPrior().fit(torch.zeros(3, 1), torch.ones(3), torch.tensor([True, False, False]))
    with pytest.raises(ValueError, match=r"must be \[3\]"):
        PopularityPrior().fit(torch.zeros(3, 1), torch.ones(2), torch.ones(3, dtype=torch.bool))
    with pytest.raises(RuntimeError, match="before fit"):
        PopularityPrior().predict(torch.zeros(1, 1))
    with pytest.raises(ValueError, match="positive"):
        PopularityPrior(l2_grid=())


def test_standardise() -> None:
    torch.testing.assert_close(standardise(torch.tensor([1.0, 2.0, 3.0])), torch.tensor([-1.5**0.5, 0.0, 1.5**0.5]))
    torch.testing.assert_close(standardise(torch.tensor([1.0, 3.0, 9.0]), torch.tensor([True, True, False])),
                               torch.tensor([-1.0, 1.0, 7.0]))
    assert torch.all(standardise(torch.full((3,), 4.0)) == 0)
