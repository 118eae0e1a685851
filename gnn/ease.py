r"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

Closed form: :math:`P = (X^\top X + \lambda I)^{-1}`, :math:`B = I - P\,\mathrm{diag}(1/\mathrm{diag}(P))`,
whose diagonal is zero by construction; the score of user ``u`` is :math:`X_u B`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gnn.recommender import FittedRecommender


def binary_history(train_user: np.ndarray | Tensor, train_item: np.ndarray | Tensor, num_users: int,
                   num_items: int) -> Tensor:
    """The binary training matrix ``X`` ``[U, I]`` (float64) of the pairs ``[E]``."""
    x = torch.zeros(num_users, num_items, dtype=torch.float64)
    x[torch.as_tensor(train_user, dtype=torch.long), torch.as_tensor(train_item, dtype=torch.long)] = 1.0
    return x


def ease_weights(x: Tensor, reg_weight: float) -> Tensor:
    r"""EASE's item-item weights ``B`` ``[I, I]`` (dtype of ``x``, zero diagonal) from ``X`` ``[U, I]``:
    :math:`P = (X^\top X + \lambda I)^{-1}`, :math:`B_{ij} = -P_{ij} / P_{jj}`."""
    gram = x.T @ x
    gram.diagonal().add_(reg_weight)
    p = torch.linalg.inv(gram)
    b = -p / p.diagonal().unsqueeze(0)
    b.diagonal().zero_()
    return b


class EASE(FittedRecommender):
    r"""Item-item linear autoencoder with a zero-diagonal constraint, solved in closed form.

    Args:
        reg_weight (float): the L2 penalty :math:`\lambda` (tuned on validation; a few hundred on ml-100k).

    Non-trainable: :meth:`fit` solves for ``B`` ``[I, I]`` (dense, so for item counts up to ~20k),
    :meth:`score` multiplies the users' binary training rows by it.
    """

    def __init__(self, reg_weight: float = 250.0) -> None:
        if reg_weight <= 0:
            raise ValueError(f"EASE reg_weight must be > 0, got {reg_weight}")
        self.reg_weight = float(reg_weight)
        self.weight: Tensor | None = None  # B, [I, I]
        self.history: Tensor | None = None  # X, binary [U, I] (bool)

    def fit(
        self, train_user: np.ndarray | Tensor, train_item: np.ndarray | Tensor, num_users: int, num_items: int
    ) -> None:
        """Solve for ``B`` from the binary training matrix ``X`` ``[U, I]`` built from the pairs ``[E]``."""
        x = binary_history(train_user, train_item, num_users, num_items)
        self.weight = ease_weights(x, self.reg_weight).to(torch.float32)
        self.history = x.bool()

    def score(self, users: Tensor) -> Tensor:
        """Scores ``[B, I]`` of the users ``[B]``: ``X[users] @ B``."""
        if self.weight is None or self.history is None:
            raise RuntimeError("EASE.score called before fit")
        return self.history[users.long()].to(torch.float32) @ self.weight
