r"""A closed-form item-item branch added to a trained embedding model's scores (late fusion):

.. math::
    s(u, i) = \langle e_u, e_i \rangle + w \, (\mathbf{x}_u B)_i

:math:`B` ``[I, I]`` are EASE's item-item weights (:func:`gnn.ease.ease_weights`, L2 :math:`\lambda`), solved
once from the training interactions after the embedding model is trained; :math:`\mathbf{x}_u` is user
``u``'s binary row of the training interactions of the inputs being scored. :math:`w` is the branch's weight
times the ratio of the two scores' standard deviations over the (user, unseen item) pairs of a sample of users,
so a weight means the same at any score scale. ``train.py`` (``--ease_blend true``) chooses :math:`\lambda` and
the weight on validation (``evaluation/closed_form_selection.py``); weight 0 leaves the model's scores as they are.

:math:`B` is part of the fitted model, like the embeddings: scoring other inputs (masked edges for an
explanation, perturbed interactions) changes :math:`\mathbf{x}_u`, not :math:`B`. Dense, so for catalogues up to
``MAX_ITEMS`` items (EASE's own limit).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from gnn.propagation import csr_rows

MAX_ITEMS = 20_000


class ClosedFormBlend(nn.Module):
    r"""The buffers of the branch: ``item_item`` :math:`B` ``[I, I]``, ``weight`` :math:`w` (the factor on
    :math:`\mathbf{x}_u B`, scale included) and ``reg`` :math:`\lambda` (a record). Starts switched off
    (``weight`` 0, ``B`` empty), so a model carries it through training unchanged and at no cost.

    Args:
        num_items (int): catalogue size ``I`` (at most :data:`MAX_ITEMS`).
    """

    def __init__(self, num_items: int) -> None:
        super().__init__()
        if num_items > MAX_ITEMS:
            raise ValueError(f"the closed-form item-item branch needs a dense [I, I] matrix: {num_items} items is "
                             f"over its limit of {MAX_ITEMS}; set ease_blend false")
        self.num_items = num_items
        # B: [0, 0] while the branch is off (training, its EMA copy and DDP carry no [I, I] zeros), [I, I] once set
        self.register_buffer("item_item", torch.zeros(0, 0))
        self.register_buffer("weight", torch.zeros(()))
        self.register_buffer("reg", torch.zeros(()))

    def reset_parameters(self) -> None:
        """Switch the branch off (``B`` emptied, ``weight`` back to 0)."""
        self.item_item = self.item_item.new_zeros(0, 0)
        self.weight.zero_()
        self.reg.zero_()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:  # noqa: ANN001
        # a saved B is [0, 0] (off) or [I, I]: take its shape, then load (a new tensor: under DDP only a resumed
        # run of an older checkpoint meets this, while the branch is off and B is never read)
        b = state_dict.get(prefix + "item_item")
        if b is not None and tuple(b.shape) in ((0, 0), (self.num_items, self.num_items)):
            self.item_item = self.item_item.new_zeros(b.shape)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if self.active and tuple(self.item_item.shape) != (self.num_items, self.num_items):
            error_msgs.append(f"{prefix}item_item: an active closed-form branch (weight {float(self.weight):g}) "
                              f"needs B [{self.num_items}, {self.num_items}], got {list(self.item_item.shape)}")

    @property
    def active(self) -> bool:
        return bool(self.weight.item() != 0.0)

    def set(self, item_item: Tensor, weight: float, reg: float) -> None:
        """Keep ``B`` ``[I, I]`` and the factor ``weight`` (scale included) chosen for it."""
        if tuple(item_item.shape) != (self.num_items, self.num_items):
            raise ValueError(f"B must be [{self.num_items}, {self.num_items}], got {list(item_item.shape)}")
        self.item_item = item_item.detach().to(self.weight.device, torch.float32)  # kept, not copied
        self.weight.fill_(float(weight))
        self.reg.fill_(float(reg))

    def history(self, train_user: Tensor, train_item: Tensor, num_users: int) -> Tensor:
        """The binary training matrix ``X`` ``[U, I]`` of the pairs ``[E]``: sparse CSR, float32, on ``B``'s
        device (duplicate pairs count once)."""
        dev, n = self.weight.device, self.num_items
        key = torch.unique(train_user.to(dev) * n + train_item.to(dev))
        idx = torch.stack([key // n, key % n])
        x = torch.sparse_coo_tensor(idx, torch.ones(key.numel(), device=dev), (num_users, n),
                                    check_invariants=False)
        return x.coalesce().to_sparse_csr()

    @staticmethod
    def rows(history: Tensor, users: Tensor) -> Tensor:
        """Dense ``[B, I]`` rows of the CSR ``history`` for ``users`` ``[B]``."""
        return csr_rows(history, users.to(history.device)).to_dense()

    def forward(self, history: Tensor) -> Tensor:
        r"""The branch's term :math:`w \, X B` ``[B, I]`` for the users' binary rows ``history`` ``[B, I]``."""
        return self.weight * (history.to(self.item_item.dtype) @ self.item_item)

    def blended(self, base: Callable[[Tensor], Tensor], history: Tensor) -> Callable[[Tensor], Tensor]:
        """``users [B] -> base(users) + w X[users] B`` ``[B, I]``: a model's score function with this branch."""

        def score(users: Tensor) -> Tensor:
            with torch.no_grad():
                s = base(users)
                return s + self(self.rows(history, users)).to(s.device)

        return score
