"""MostPop: rank every item by its number of training interactions, the same list for every user."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gnn.recommender import FittedRecommender


class MostPop(FittedRecommender):
    r"""Popularity baseline: :math:`s_{ui} = |\{v : (v, i) \in \mathcal{D}_{train}\}|` for every user ``u``.

    Non-trainable: :meth:`fit` counts, :meth:`score` broadcasts the counts.
    """

    def __init__(self) -> None:
        self.popularity: Tensor | None = None

    def fit(
        self, train_user: np.ndarray | Tensor, train_item: np.ndarray | Tensor, num_users: int, num_items: int
    ) -> None:
        """Count the training interactions of each item.

        Args:
            train_user: user index of each training interaction ``[E]`` (unused beyond its length).
            train_item: item index of each training interaction ``[E]``.
            num_users: number of users ``U``.
            num_items: number of items ``I``.
        """
        item = torch.as_tensor(train_item, dtype=torch.long)
        self.popularity = torch.bincount(item, minlength=num_items).to(torch.float32)

    def score(self, users: Tensor) -> Tensor:
        """Scores ``[B, I]`` of the users ``[B]``: the item popularity, identical for every row."""
        if self.popularity is None:
            raise RuntimeError("MostPop.score called before fit")
        return self.popularity.unsqueeze(0).expand(int(users.numel()), -1).clone()
