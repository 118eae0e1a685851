r"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

Closed form: :math:`P = (X^\top X + \lambda I)^{-1}`, :math:`B = I - P\,\mathrm{diag}(1/\mathrm{diag}(P))`,
whose diagonal is zero by construction; the score of user ``u`` is :math:`X_u B`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from gnn.propagation import csr_rows
from gnn.recommender import FittedRecommender


def binary_history(train_user: np.ndarray | Tensor, train_item: np.ndarray | Tensor, num_users: int,
                   num_items: int) -> sp.csr_matrix:
    """The binary training matrix ``X`` ``[U, I]`` (``scipy.sparse`` CSR, float64; duplicate pairs count once)
    of the pairs ``[E]``."""
    user = np.asarray(torch.as_tensor(train_user).cpu(), dtype=np.int64)
    item = np.asarray(torch.as_tensor(train_item).cpu(), dtype=np.int64)
    x = sp.csr_matrix((np.ones(user.shape[0]), (user, item)), shape=(num_users, num_items))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def item_gram(x: sp.csr_matrix) -> Tensor:
    """``X^T X`` ``[I, I]`` (dense float64) of the sparse ``X`` ``[U, I]``: the item co-occurrence counts, never
    a dense ``[U, I]``."""
    return torch.from_numpy((x.T @ x).toarray())


def ease_weights(gram: Tensor, reg_weight: float) -> Tensor:
    r"""EASE's item-item weights ``B`` ``[I, I]`` (dtype of ``gram``, zero diagonal) from the Gram matrix
    :math:`X^\top X` ``[I, I]`` (:func:`item_gram`): :math:`P = (X^\top X + \lambda I)^{-1}`,
    :math:`B_{ij} = -P_{ij} / P_{jj}`."""
    gram = gram.clone()
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
        self.history: Tensor | None = None  # X, binary [U, I] (sparse CSR, float32)

    def fit(
        self, train_user: np.ndarray | Tensor, train_item: np.ndarray | Tensor, num_users: int, num_items: int
    ) -> None:
        """Solve for ``B`` from the binary training matrix ``X`` ``[U, I]`` built from the pairs ``[E]``."""
        x = binary_history(train_user, train_item, num_users, num_items)
        self.weight = ease_weights(item_gram(x), self.reg_weight).to(torch.float32)
        self.history = torch.sparse_csr_tensor(torch.from_numpy(x.indptr).long(), torch.from_numpy(x.indices).long(),
                                               torch.from_numpy(x.data).float(), size=x.shape,
                                               check_invariants=False)

    def score(self, users: Tensor) -> Tensor:
        """Scores ``[B, I]`` of the users ``[B]``: ``X[users] @ B``."""
        if self.weight is None or self.history is None:
            raise RuntimeError("EASE.score called before fit")
        return csr_rows(self.history, users.long().cpu()).to_dense().to(self.weight.device) @ self.weight
