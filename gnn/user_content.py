"""Users' text view as a mean over their items' text, projected through the mean (fewer rows to project).

``GraphInputs.user_content [U, D]`` is each user's mean item text, ``H @ X`` with ``H [U, I]`` the row-normalised
mean operator over the training items that have text and ``X [I, D]`` the items' text. The users' projection
starts with a linear layer, and a linear map commutes with a mean: ``(H X) W^T + b = H (X W^T) + b`` (``H``'s
rows sum to one, or are empty for users without text, where both sides are ``b``). So the first layer runs on
the ``I`` item rows instead of the ``U`` user rows, and the mean on width ``d`` instead of ``D`` (on the scale
graph of ``benchmarks/speed.py``: 50k item rows instead of 100k user rows, ``D = 384``, ``d = 128``).
:func:`user_content_operator` builds ``H`` once per inputs and checks it reproduces ``user_content`` (robustness
and explanation runs pass perturbed user content: those keep the direct projection).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from gnn.adjacency import mean_aggregation_matrix, transpose_csr


class MeanOfRows(NamedTuple):
    """Features given as ``op @ x``: ``x [n, D]``, ``op [N, n]`` sparse CSR, ``op_t`` its transpose."""

    x: Tensor
    op: Tensor
    op_t: Tensor

    @property
    def shape(self) -> tuple[int, int]:
        return self.op.shape[0], self.x.shape[1]


def user_content_operator(inputs) -> MeanOfRows | None:  # noqa: ANN001 (GraphInputs)
    """``MeanOfRows(item text, H, H^T)`` equal to ``inputs.user_content`` (up to float rounding), or ``None`` when
    the inputs have no user content or theirs is not that mean (perturbed, or built from other interactions)."""
    content, text = inputs.user_content, inputs.feature("item.text")
    if content is None or text is None:
        return None
    x, present = text
    keep = present[inputs.train_item]
    op = mean_aggregation_matrix(inputs.train_user[keep], inputs.train_item[keep], inputs.num_users,
                                 inputs.num_items)
    x = x.float()
    mean = torch.sparse.mm(op, x)
    tol = 1e-5 * max(float(x.abs().max()), 1.0) if x.numel() else 0.0
    if mean.shape != content.shape or not bool(((mean - content).abs() <= tol).all()):
        return None
    return MeanOfRows(x, op, transpose_csr(op))
