"""The relation-attention layer's aggregation ``out_h = sum_r alpha_{h,r} (e_r * z_{h,r})`` as one autograd op.

Written with autograd's own ops, the aggregation made about ten ``[P, d]`` temporaries per step (``P`` slots:
630k x 128 floats = 320 MB each on the 1M-triple scale graph), among them ``e[rel]`` gathered per slot and an
``index_add`` of ``[P, d]`` into the ``2R`` relation rows for ``e``'s gradient. Slots are laid out relation by
relation (:func:`gnn.kg_propagation.build_slot_graph`), so each relation's block multiplies by its ``e_r`` as
a broadcast row and its gradients are a matrix-vector product per block; the sum over a head's slots is one
sparse product whose values are the attention weights. Saved for backward: ``z`` only (plus ``alpha``, ``e``).
Same values and gradients as the autograd composition (``tests/gnn/test_fast_paths.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gnn.adjacency import sparse_mm


class _SlotAggregate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, alpha: Tensor, rel_emb: Tensor, bounds: list[int], slot_head: Tensor,
                head_crow: Tensor, head_col: Tensor, num_heads: int) -> Tensor:  # noqa: D102
        msg = torch.empty_like(z)
        for r in range(len(bounds) - 1):
            a, b = bounds[r], bounds[r + 1]
            if b > a:
                torch.mul(z[a:b], rel_emb[r], out=msg[a:b])
        agg = torch.sparse_csr_tensor(head_crow, head_col, alpha[head_col], (num_heads, z.shape[0]),
                                      check_invariants=False)
        out = sparse_mm(agg, msg)
        ctx.save_for_backward(z, alpha, rel_emb, slot_head)
        ctx.bounds = bounds
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        z, alpha, rel_emb, slot_head = ctx.saved_tensors
        bounds = ctx.bounds
        g = grad.index_select(0, slot_head)  # [P, d] the gradient at each slot's head
        q = g * z
        grad_alpha = torch.zeros_like(alpha)
        grad_rel = torch.zeros_like(rel_emb)
        for r in range(len(bounds) - 1):
            a, b = bounds[r], bounds[r + 1]
            if b > a:
                torch.mv(q[a:b], rel_emb[r], out=grad_alpha[a:b])
                grad_rel[r] = alpha[a:b] @ q[a:b]
                g[a:b].mul_(rel_emb[r])
        del q
        g.mul_(alpha.unsqueeze(1))
        return g, grad_alpha, grad_rel, None, None, None, None, None


def slot_aggregate(z: Tensor, alpha: Tensor, rel_emb: Tensor, bounds: list[int], slot_head: Tensor,
                   head_crow: Tensor, head_col: Tensor, num_heads: int) -> Tensor:
    """``out [num_heads, d]``, ``out[h] = sum over h's slots p of alpha[p] * rel_emb[rel(p)] * z[p]``.

    Args:
        z: ``[P, d]`` slot means, slots of relation ``r`` at ``bounds[r]:bounds[r + 1]``.
        alpha: ``[P]`` attention weights; rel_emb: ``[2R, d]``.
        slot_head: ``[P]`` the head of each slot; head_crow / head_col: CSR pattern ``[num_heads, P]`` of the
            slots of each head (``head_col`` = slot ids grouped by head).
    """
    return _SlotAggregate.apply(z, alpha, rel_emb, bounds, slot_head, head_crow, head_col, num_heads)
