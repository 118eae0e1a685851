r"""A content -> popularity prior for cold items: ridge regression from an item's content features to
:math:`\log(1 + n_i)`, :math:`n_i` its number of training interactions, fitted on the warm items only and
applied to every item (cold items have no interactions, so content is all they can be judged by).

The features are standardised with the warm items' mean and standard deviation (constant columns dropped),
the target is centred, and the ridge strength is chosen among ``l2_grid`` by the exact leave-one-out error
over the warm items (from one SVD of the warm design matrix; the intercept's own leverage ``1/n`` is added
to each hat value), so the fit reads nothing but the training part.

    prior = PopularityPrior().fit(features, counts, warm_mask)   # [I]: predicted log(1 + count)
    score = base_score + beta * standardise(prior)                # beta chosen on validation cold items

The class keeps its weights, so :meth:`PopularityPrior.predict` scores new items' features later."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

L2_GRID: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


class PopularityPrior:
    r"""Ridge regression :math:`\hat y = b + (\mathbf{x} - \mu) / \sigma \cdot \mathbf{w}` of
    :math:`y = \log(1 + \text{count})`.

    Args:
        l2_grid: ridge strengths tried (on standardised features); the one with the lowest leave-one-out
            squared error over the warm items is kept (``l2`` afterwards).
    """

    def __init__(self, l2_grid: Sequence[float] = L2_GRID) -> None:
        if not l2_grid or any(a <= 0 for a in l2_grid):
            raise ValueError(f"l2_grid must be non-empty positive numbers, got {list(l2_grid)}")
        self.l2_grid = tuple(float(a) for a in l2_grid)
        self.l2: float | None = None
        self.loo_mse: dict[float, float] = {}
        self.mean: Tensor | None = None  # [F] warm mean
        self.scale: Tensor | None = None  # [F] 1 / warm std (0 for constant columns)
        self.weight: Tensor | None = None  # [F]
        self.bias = 0.0

    def fit(self, features: Tensor, counts: Tensor, warm_mask: Tensor, groups: Sequence[int] | None = None) -> Tensor:
        """Fit on the rows where ``warm_mask`` ``[I]`` is True (features ``[I, F]``, training interaction
        counts ``[I]``); return the prior ``[I]`` (predicted log(1 + count)) of every item.

        ``groups``: the widths of consecutive column blocks (summing to ``F``), e.g. one per modality; each
        block's standardised columns are divided by the square root of its width, so a 384-d embedding and
        a handful of KG columns enter with the same total variance (default: every column alone)."""
        if features.dim() != 2:
            raise ValueError(f"features must be [I, F], got shape {tuple(features.shape)}")
        n_items = features.shape[0]
        if counts.shape != (n_items,) or warm_mask.shape != (n_items,):
            raise ValueError(f"counts {tuple(counts.shape)} and warm_mask {tuple(warm_mask.shape)} must be [{n_items}]")
        warm = warm_mask.bool()
        n = int(warm.sum())
        if n < 2:
            raise ValueError(f"the popularity prior needs at least 2 warm items, got {n}")
        x = features.detach().double()
        y = torch.log1p(counts.detach().double()[warm].clamp(min=0))
        xw = x[warm]
        self.mean = xw.mean(0)
        std = xw.std(0, unbiased=False)
        self.scale = torch.where(std > 1e-12, 1.0 / std.clamp(min=1e-12), torch.zeros_like(std))
        self.scale = self.scale * _group_weights(groups, features.shape[1])
        z = (xw - self.mean) * self.scale
        self.bias = float(y.mean())
        yc = y - self.bias
        u, s, vh = torch.linalg.svd(z, full_matrices=False)
        uty = u.T @ yc
        best = None
        for a in self.l2_grid:
            shrink = s**2 / (s**2 + a)
            fitted = u @ (shrink * uty)
            hat = (u**2 @ shrink) + 1.0 / n
            loo = float((((yc - fitted) / (1.0 - hat).clamp(min=1e-9)) ** 2).mean())
            self.loo_mse[a] = loo
            if best is None or loo < best[0]:
                best = (loo, a)
        self.l2 = best[1]
        self.weight = vh.T @ (s / (s**2 + self.l2) * uty)
        return self.predict(features)

    def predict(self, features: Tensor) -> Tensor:
        """The prior ``[N]`` (float32) of items with features ``[N, F]`` (the columns fit saw)."""
        if self.weight is None or self.mean is None or self.scale is None:
            raise RuntimeError("PopularityPrior.predict called before fit")
        z = (features.detach().double() - self.mean) * self.scale
        return (self.bias + z @ self.weight).float()


def _group_weights(groups: Sequence[int] | None, width: int) -> Tensor:
    if groups is None:
        return torch.ones(width, dtype=torch.float64)
    if any(g <= 0 for g in groups) or sum(groups) != width:
        raise ValueError(f"groups {list(groups)} must be positive widths summing to the {width} feature columns")
    return torch.cat([torch.full((g,), g**-0.5, dtype=torch.float64) for g in groups])


def standardise(prior: Tensor, reference: Tensor | None = None) -> Tensor:
    """``(prior - mean) / std`` over the ``reference`` mask's items (default: all); zeros when constant."""
    ref = prior if reference is None else prior[reference.bool()]
    std = ref.float().std(unbiased=False)
    return (prior.float() - ref.float().mean()) / std if std > 0 else torch.zeros_like(prior, dtype=torch.float32)
