"""LightGCN's layer average over the symmetric user-item adjacency, with the last layer only where it is read.

``layer_mean(A, x, L) = (x + A x + ... + A^L x) / (L + 1)``. A training step reads the final embeddings of its
batch's users and items only (``S``, a few percent of the nodes, though ~30% of the edges at scale), so the
last layer is computed at those rows alone: ``(A^L x)[S] = A[S, :] (A^{L-1} x)``, forward through the row
sub-matrix ``A[S, :]`` and backward through ``A[:, S]`` (= ``A[S, :]^T``, ``A`` being symmetric), both
built per step from ``A``'s CSR arrays in ``O(nnz)`` index work without sorting. The other rows of the
result miss the last layer's term: only ``S`` is exact (same values and gradients as the full average,
``tests/gnn/test_fast_paths.py``). Scoring and evaluation pass no rows and get every row.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gnn.adjacency import expand_ranges, spmm


def csr_rows(a: Tensor, rows: Tensor) -> Tensor:
    """``a[rows, :]`` as CSR ``[len(rows), n]`` (``a`` sparse CSR ``[m, n]``, ``rows`` int64)."""
    crow, col, val = a.crow_indices(), a.col_indices(), a.values()
    count = crow[rows + 1] - crow[rows]
    _, at = expand_ranges(crow[rows], count)
    new_crow = torch.zeros(rows.numel() + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(count, 0, out=new_crow[1:])
    return torch.sparse_csr_tensor(new_crow, col[at], val[at], (rows.numel(), a.shape[1]), check_invariants=False)


def csr_columns(a: Tensor, cols: Tensor) -> Tensor:
    """``a[:, cols]`` as CSR ``[m, len(cols)]`` (``cols`` sorted unique int64; entries keep their row order)."""
    crow, col, val = a.crow_indices(), a.col_indices(), a.values()
    remap = torch.full((a.shape[1],), -1, dtype=torch.long, device=col.device)
    remap[cols] = torch.arange(cols.numel(), device=col.device)
    new_col = remap[col]
    keep = new_col >= 0
    kept_before = torch.zeros(col.numel() + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(keep, 0, out=kept_before[1:])
    return torch.sparse_csr_tensor(kept_before[crow], new_col[keep], val[keep], (a.shape[0], cols.numel()),
                                   check_invariants=False)


def layer_mean(adj: Tensor, x: Tensor, num_layers: int, rows: Tensor | None = None) -> Tensor:
    """``sum_{l=0..L} adj^l x / (L + 1)`` ``[n, d]`` for a constant symmetric sparse CSR ``adj`` ``[n, n]``.

    Args:
        adj: the normalised adjacency (its own transpose).
        x: ``[n, d]`` layer-0 embeddings.
        num_layers: ``L`` >= 0.
        rows: sorted unique node ids whose rows must be exact (``None``: all); the others miss ``adj^L x``
            (when ``rows`` covers over a quarter of the nodes, every row is computed: no gain in sub-matrices).
    """
    if num_layers <= 0:
        return x
    total, h = x, x
    for _ in range(num_layers - 1):
        h = spmm(adj, h)
        total = total + h
    if rows is None or rows.numel() > adj.shape[0] // 4:  # most rows read (a small graph): the full product
        return (total + spmm(adj, h)) / (num_layers + 1)
    last = spmm(csr_rows(adj, rows), h, csr_columns(adj, rows))
    if total is x:  # one layer: x is the caller's
        return total.index_add(0, rows, last) / (num_layers + 1)
    return total.index_add_(0, rows, last).div_(num_layers + 1)  # a fresh sum: in place (no [n, d] copies)


def graph_rows(users: Tensor, items: Tensor, num_users: int) -> Tensor:
    """Sorted unique user-item graph node ids of ``users`` and ``items`` (item ``i`` is node ``U + i``)."""
    return torch.unique(torch.cat([users.reshape(-1), items.reshape(-1) + num_users]))
