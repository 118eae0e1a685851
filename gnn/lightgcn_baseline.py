"""LightGCN (He et al., SIGIR 2020) as a :class:`~gnn.recommender.TrainableRecommender`.

It wraps PyG's :class:`torch_geometric.nn.models.LightGCN` class: one embedding table over the
``U + I`` nodes of the user-item graph, ``num_layers`` :class:`~torch_geometric.nn.conv.LGConv` layers and
the uniform layer average :math:`\\alpha_l = 1/(L+1)`. Propagation is full-graph over
``GraphInputs.ui_adj``, the already normalised ``D^-1/2 A D^-1/2`` sparse CSR matrix: ``LGConv`` accepts a
``torch.sparse`` adjacency directly (it dispatches to ``spmm`` instead of gathering ``[E, d]`` messages),
so the convolutions are built with ``normalize=False`` (the matrix is normalised once, in
:func:`gnn.graph_inputs.build_graph_inputs`; ``LGConv``'s own ``gcn_norm`` would normalise it a second time).
That is an order of magnitude faster than ``edge_index`` message passing, with the same result.

One change to PyG's layers: ``torch.sparse.mm``'s backward transposes the CSR matrix on every call
(a sort, ~80% of a training step on ml-100k). The normalised adjacency is symmetric, so
:class:`SymmetricLGConv` multiplies the incoming gradient by the same matrix instead (3x faster
forward + backward; equal gradients, checked against a dense reference in ``tests/gnn/test_baselines.py``).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torch.nn import ModuleList

with warnings.catch_warnings():  # PyG 2.8 calls the deprecated torch.jit.script while it imports
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=FutureWarning)
    from torch_geometric.nn.conv import LGConv
    from torch_geometric.nn.models import LightGCN

from gnn.adjacency import sparse_mm
from gnn.graph_inputs import GraphInputs
from gnn.propagation import graph_rows, layer_mean
from gnn.recommender import Batch, Rows, TrainableRecommender


class _SymmetricSpmm(torch.autograd.Function):
    """``adj @ x`` for a constant symmetric sparse ``adj``: the gradient w.r.t. ``x`` is ``adj @ grad``."""

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor) -> Tensor:
        ctx.adj = adj
        return sparse_mm(adj, x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor]:
        return None, sparse_mm(ctx.adj, grad.contiguous())


def symmetric_spmm(adj: Tensor, x: Tensor) -> Tensor:
    """``adj @ x`` ``[N, d]`` for a symmetric sparse ``adj`` ``[N, N]`` without gradient (a normalised
    adjacency), whose backward reuses ``adj`` rather than building its transpose."""
    if adj.requires_grad:
        raise ValueError("symmetric_spmm needs a constant adjacency (adj.requires_grad is True)")
    return _SymmetricSpmm.apply(adj, x)


class SymmetricLGConv(LGConv):
    """PyG's :class:`~torch_geometric.nn.conv.LGConv` (``normalize=False``) for a symmetric, already
    normalised ``torch.sparse`` adjacency ``[N, N]``; any other ``Adj`` goes through ``LGConv`` unchanged."""

    def __init__(self) -> None:
        super().__init__(normalize=False)

    def message_and_aggregate(self, adj_t: Tensor, x: Tensor) -> Tensor:
        if isinstance(adj_t, Tensor) and adj_t.layout == torch.sparse_csr:
            return symmetric_spmm(adj_t, x)
        return super().message_and_aggregate(adj_t, x)


class LightGCNBaseline(TrainableRecommender):
    r"""LightGCN on the bipartite training graph:
    :math:`\mathbf{E} = \sum_{l=0}^{L} \frac{1}{L+1} \hat{A}^l \mathbf{E}^{(0)}`.

    Args:
        num_users (int): number of users ``U`` (graph nodes ``0..U-1``).
        num_items (int): number of items ``I`` (graph nodes ``U..U+I-1``).
        embedding_dim (int): embedding size ``d``.
        num_layers (int): number of propagation layers ``L``.
    """

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        self.num_users = num_users
        self.num_items = num_items
        self.lightgcn = LightGCN(num_users + num_items, embedding_dim, num_layers, normalize=False)
        self.lightgcn.convs = ModuleList([SymmetricLGConv() for _ in range(num_layers)])

    def reset_parameters(self) -> None:
        """Xavier-uniform initialisation of the node embeddings (PyG's default)."""
        self.lightgcn.reset_parameters()

    def propagate(self, adj: Tensor) -> Tensor:
        """Layer-averaged embeddings ``[U+I, d]`` given the normalised adjacency ``adj`` ``[U+I, U+I]``
        (symmetric sparse CSR, or any ``Adj`` that PyG's ``LGConv`` takes with ``normalize=False``)."""
        return self.lightgcn.get_embedding(adj)

    supports_rows = True

    def forward(self, inputs: GraphInputs, rows: Rows | None = None) -> tuple[Tensor, Tensor]:
        """``(user_emb [U, d], item_emb [I, d])`` after propagation over ``inputs.ui_adj``; with ``rows`` (a
        training step), exact at those rows only, the last layer computed there alone (:mod:`gnn.propagation`)."""
        if rows is None:
            out = self.propagate(inputs.ui_adj)
        else:
            out = layer_mean(inputs.ui_adj, self.lightgcn.embedding.weight, self.lightgcn.num_layers,
                             graph_rows(rows.users, rows.items, self.num_users))
        return tuple(out.split([self.num_users, self.num_items]))  # type: ignore[return-value]

    def ego_embeddings(self, batch: Batch) -> list[Tensor]:
        """Layer-0 embeddings ``[B, d]`` of the batch's users, positives and negatives."""
        emb = self.lightgcn.embedding
        off = self.num_users
        return [emb(batch.users), emb(batch.pos + off), emb(batch.neg + off)]

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.num_users}, {self.num_items}, "
                f"{self.lightgcn.embedding_dim}, num_layers={self.lightgcn.num_layers})")


class PyGLightGCN(TrainableRecommender):
    """PyG's :class:`~torch_geometric.nn.models.LightGCN` as shipped (stock ``LGConv``, ``normalize=False``), the
    reference of ``benchmarks/speed.py``. Without torch-sparse, the fastest adjacency it takes is the normalised
    ``ui_adj`` as a coalesced COO ``torch.sparse`` tensor (at scale, forward + backward: COO 0.73 s, CSR 1.13 s,
    ``EdgeIndex`` + weights 1.15 s, ``edge_index`` + weights 1.54 s); converted once per inputs."""

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        self.num_users, self.num_items = num_users, num_items
        self.lightgcn = LightGCN(num_users + num_items, embedding_dim, num_layers, normalize=False)
        self._adj: tuple[Tensor, Tensor] | None = None

    def reset_parameters(self) -> None:
        self.lightgcn.reset_parameters()

    def forward(self, inputs: GraphInputs) -> tuple[Tensor, Tensor]:
        if self._adj is None or self._adj[0] is not inputs.ui_adj:
            self._adj = (inputs.ui_adj, inputs.ui_adj.to_sparse_coo().coalesce())
        with warnings.catch_warnings():  # PyG notes the COO -> CSR conversion on every call
            warnings.simplefilter("ignore", UserWarning)
            out = self.lightgcn.get_embedding(self._adj[1])
        return out[: self.num_users], out[self.num_users :]

    def ego_embeddings(self, batch: Batch) -> list[Tensor]:
        emb, off = self.lightgcn.embedding, self.num_users
        return [emb(batch.users), emb(batch.pos + off), emb(batch.neg + off)]
