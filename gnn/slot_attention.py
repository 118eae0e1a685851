"""The relation-attention layer's slot means and aggregation, ``out_h = sum_r alpha_{h,r} (e_r * z_{h,r})`` with
``z = mean_op @ x``, as one autograd op that runs chunk by chunk.

Written with autograd's own ops, the layer made about ten ``[P, d]`` temporaries per step (``P`` slots: 630k x 128
floats = 320 MB each on the 1M-triple scale graph: ``e[rel]`` gathered per slot, the messages, the gradient at
each slot's head, its products, an ``index_add`` of ``[P, d]`` into the ``2R`` relation rows), each a pass over
main memory, the part of a step that slows most when other processes share the memory bus. Slots are laid out
relation by relation (:func:`gnn.kg_propagation.build_slot_graph`) and processed in chunks of at most
:data:`CHUNK` slots of one relation: each chunk's temporaries stay in cache, ``e_r`` multiplies as a broadcast
row, and its gradients are matrix-vector products. What crosses main memory: the slot means (kept for backward),
the gradient to them and the two sparse products. Same values and gradients as the autograd composition
(``tests/gnn/test_fast_paths.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gnn.adjacency import sparse_mm

CHUNK = 8192
"""Slots per chunk: a chunk's ``[c, d]`` temporaries (4 MB at d = 128) stay in cache."""


def slot_chunks(mean_op: Tensor, slot_head: Tensor, bounds: list[int]) -> list[tuple[int, int, int, Tensor]]:
    """``(start, stop, relation, mean_op[start:stop] as CSR)`` for chunks of at most :data:`CHUNK` slots of one
    relation each."""
    crow, col, val = mean_op.crow_indices(), mean_op.col_indices(), mean_op.values()
    out = []
    for r in range(len(bounds) - 1):
        for a in range(bounds[r], bounds[r + 1], CHUNK):
            b = min(a + CHUNK, bounds[r + 1])
            lo, hi = int(crow[a]), int(crow[b])
            out.append((a, b, r, torch.sparse_csr_tensor(crow[a: b + 1] - lo, col[lo:hi], val[lo:hi],
                                                         (b - a, mean_op.shape[1]), check_invariants=False)))
    return out


class _SlotAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor, rel_emb: Tensor, chunks: list, slot_head: Tensor,
                mean_op_t: Tensor, num_heads: int) -> Tensor:  # noqa: D102
        out = x.new_zeros(num_heads, x.shape[1])
        zs = []
        for a, b, r, op in chunks:
            z = sparse_mm(op, x)  # [c, d] slot means
            zs.append(z)
            out.index_add_(0, slot_head[a:b], (z * rel_emb[r]).mul_(alpha[a:b].unsqueeze(1)))
        ctx.save_for_backward(alpha, rel_emb, slot_head)
        ctx.zs, ctx.chunks, ctx.mean_op_t, ctx.n = zs, chunks, mean_op_t, x.shape[0]
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        alpha, rel_emb, slot_head = ctx.saved_tensors
        grad = grad.contiguous()
        grad_alpha = torch.zeros_like(alpha)
        grad_rel = torch.zeros_like(rel_emb)
        grad_z = grad.new_empty(alpha.shape[0], grad.shape[1])
        for (a, b, r, _), z in zip(ctx.chunks, ctx.zs, strict=True):
            g = grad.index_select(0, slot_head[a:b])  # the gradient at each slot's head
            q = g * z
            torch.mv(q, rel_emb[r], out=grad_alpha[a:b])
            grad_rel[r] += alpha[a:b] @ q
            torch.mul(g.mul_(rel_emb[r]), alpha[a:b].unsqueeze(1), out=grad_z[a:b])
        ctx.zs = None
        return sparse_mm(ctx.mean_op_t, grad_z), grad_alpha, grad_rel, None, None, None, None


def slot_attention(x: Tensor, alpha: Tensor, rel_emb: Tensor, chunks: list, slot_head: Tensor, mean_op_t: Tensor,
                   num_heads: int) -> Tensor:
    """``out [num_heads, d]``, ``out[h] = sum over h's slots p of alpha[p] * rel_emb[rel(p)] * z[p]`` with
    ``z = mean_op @ x`` the slot means (``x [n, d]``; slots of relation ``r`` contiguous, :func:`slot_chunks`).

    Args:
        alpha: ``[P]`` attention weights; rel_emb: ``[2R, d]``; slot_head: ``[P]`` each slot's head;
        mean_op_t: ``mean_op``'s transpose ``[n, P]`` (the gradient to ``x``).
    """
    return _SlotAttention.apply(x, alpha, rel_emb, chunks, slot_head, mean_op_t, num_heads)
