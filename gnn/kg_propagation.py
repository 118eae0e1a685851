"""Relation-aware attentive propagation over the item-entity knowledge graph (KGAT / KGIN style).

Nodes are the knowledge index space ``[I+N]`` (items, then entities) of
:class:`~gnn.graph_inputs.GraphInputs`; every triple is present forward and reversed. A node ``h``'s
neighbours are grouped into *slots*, one per relation ``r`` it has: ``z_{h,r} = mean_{t in N_r(h)} x_t``
(one constant sparse CSR product, fast and ``O(E d)`` without ``[E, d]`` temporaries). Then, with
KGIN's relational message and KGAT's knowledge-aware attention over the node's relations:

.. math::
    m_{h,r} = z_{h,r} \\odot e_r, \\qquad
    \\pi(h, r) = \\langle W x_h,\\, e_r \\rangle / \\sqrt{d}, \\qquad
    x'_h = \\sum_r \\mathrm{softmax}_r(\\pi(h, r))\\, m_{h,r}

The last layer only updates items (entities' outputs are not used downstream). The output is the
mean of the layers' item outputs (each rescaled to the input's mean norm; zero for items without KG
edges), which the model adds to the items through a learnable gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from gnn.adjacency import csr_from_coo, spmm, transpose_csr
from gnn.slot_attention import slot_attention, slot_chunks


def segment_softmax(logit: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """Softmax of ``logit [P]`` within each group of equal ``index [P]`` (``num_segments`` groups)."""
    top = torch.full((num_segments,), float("-inf"), dtype=logit.dtype, device=logit.device)
    top = top.scatter_reduce(0, index, logit.detach(), reduce="amax", include_self=True)
    ex = (logit - top[index]).exp()
    total = torch.zeros(num_segments, dtype=logit.dtype, device=logit.device).index_add(0, index, ex)
    return ex / total[index].clamp(min=1e-16)


@dataclass
class SlotGraph:
    """Neighbour slots of a KG, relation by relation (slots of relation ``r`` at ``rel_bounds[r]:rel_bounds[r+1]``,
    by head within a relation): ``mean_op`` sparse CSR ``[P, n]`` (``mean_op @ x`` -> slot means) and its
    transpose ``mean_op_t``, ``slot_head`` / ``slot_rel`` ``[P]`` int64; ``num_heads`` = rows of the output;
    ``rel_bounds`` empty: the layer takes the plain autograd path (the reference of the fused one)."""

    mean_op: Tensor
    mean_op_t: Tensor
    slot_head: Tensor
    slot_rel: Tensor
    num_heads: int
    rel_bounds: list[int] = field(default_factory=list)
    _chunks: list | None = field(default=None, repr=False, compare=False)

    def chunks(self) -> list:
        """:func:`gnn.slot_attention.slot_chunks` of this graph (built once)."""
        if self._chunks is None:
            self._chunks = slot_chunks(self.mean_op, self.slot_head, self.rel_bounds)
        return self._chunks

    @property
    def has_edges(self) -> Tensor:
        """``[num_heads]`` bool: the node has at least one neighbour."""
        return torch.bincount(self.slot_head, minlength=self.num_heads) > 0

    def to(self, device: torch.device | str) -> SlotGraph:
        return SlotGraph(self.mean_op.to(device), self.mean_op_t.to(device), self.slot_head.to(device),
                         self.slot_rel.to(device), self.num_heads, self.rel_bounds)


def build_slot_graph(head: Tensor, tail: Tensor, rel: Tensor, num_nodes: int, num_relations: int,
                     max_head: int | None = None) -> SlotGraph:
    """Group the edges ``tail -> head`` (relation ``rel``) into ``(head, relation)`` slots.

    Args:
        head, tail, rel: ``[E]`` int64 edges.
        num_nodes: ``n`` (columns of ``mean_op``).
        num_relations: relation ids ``2R``.
        max_head: keep only edges whose head is ``< max_head`` (e.g. items only); output rows = ``max_head``.
    """
    h = head.cpu().numpy().astype(np.int64)
    t = tail.cpu().numpy().astype(np.int64)
    r = rel.cpu().numpy().astype(np.int64)
    n_out = num_nodes if max_head is None else max_head
    if max_head is not None:
        keep = h < max_head
        h, t, r = h[keep], t[keep], r[keep]
    n_rel = max(num_relations, 1)
    key = r * max(n_out, 1) + h  # relation-major: each relation's slots contiguous
    slots, slot_of_edge = np.unique(key, return_inverse=True)
    count = np.bincount(slot_of_edge, minlength=slots.size).astype(np.float64)
    val = (1.0 / count[slot_of_edge]).astype(np.float32)
    mean_op = csr_from_coo(slot_of_edge, t, val, (slots.size, num_nodes))
    slot_head, slot_rel = slots % max(n_out, 1), slots // max(n_out, 1)
    bounds = np.searchsorted(slot_rel, np.arange(n_rel + 1)).tolist()
    return SlotGraph(mean_op, transpose_csr(mean_op), torch.from_numpy(slot_head), torch.from_numpy(slot_rel), n_out,
                     bounds)


class RelationAttentionLayer(nn.Module):
    """One relation-aware attention layer over slots (relations embedded by the caller).

    Args:
        dim: width ``d``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.query.weight)

    def forward(self, x: Tensor, rel_emb: Tensor, slots: SlotGraph) -> Tensor:
        """``x [n, d]``, ``rel_emb [2R, d]`` -> ``[slots.num_heads, d]`` (zero for nodes without edges)."""
        scores = self.query(x[: slots.num_heads]) @ rel_emb.T / math.sqrt(x.shape[1])  # [heads, 2R]
        logit = scores.flatten()[slots.slot_head * rel_emb.shape[0] + slots.slot_rel]
        alpha = segment_softmax(logit, slots.slot_head, slots.num_heads)
        if len(slots.rel_bounds) == rel_emb.shape[0] + 1:  # one fused op, chunk by chunk
            return slot_attention(x.contiguous(), alpha, rel_emb, slots.chunks(), slots.slot_head, slots.mean_op_t,
                                  slots.num_heads)
        z = spmm(slots.mean_op, x, slots.mean_op_t)  # [P, d] slot means
        out = x.new_zeros(slots.num_heads, x.shape[1])
        return out.index_add(0, slots.slot_head, z * rel_emb[slots.slot_rel] * alpha.unsqueeze(1))


class KnowledgePropagation(nn.Module):
    """``num_layers`` relation-attention layers over the KG (the last one updating items only).

    Args:
        num_relations: relation ids ``2R`` (forward + reverse).
        dim: width ``d``.
        num_layers: propagation depth ``L_kg`` (>= 1).
    """

    def __init__(self, num_relations: int, dim: int, num_layers: int = 2) -> None:
        super().__init__()
        self.num_relations = max(num_relations, 1)
        self.rel_emb = nn.Embedding(self.num_relations, dim)
        self.layers = nn.ModuleList(RelationAttentionLayer(dim) for _ in range(max(num_layers, 1)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.rel_emb.weight, mean=1.0, std=0.1)
        for layer in self.layers:
            layer.reset_parameters()

    def prepare(self, head: Tensor, tail: Tensor, rel: Tensor, num_nodes: int, num_items: int
                ) -> tuple[SlotGraph | None, SlotGraph]:
        """The slot graphs ``(all nodes, items only)`` of a KG (build once, reuse every step); the first is
        ``None`` with one layer (only the items-only last layer runs)."""
        full = build_slot_graph(head, tail, rel, num_nodes, self.num_relations).to(head.device) \
            if len(self.layers) > 1 else None
        return full, build_slot_graph(head, tail, rel, num_nodes, self.num_relations, num_items).to(head.device)

    def forward(self, x: Tensor, graphs: tuple[SlotGraph | None, SlotGraph]) -> Tensor:
        """Knowledge-aware item representations.

        Args:
            x: ``[I+N, d]`` layer-0 item / entity representations.
            graphs: :meth:`prepare`'s output.

        Returns:
            ``[I, d]``: mean of the layers' item outputs (zero for items without KG edges; inner layers
            keep the previous representation of nodes without neighbours).
        """
        full, items = graphs
        num_items = items.num_heads
        scale = x.norm(dim=-1, keepdim=True).mean().detach().clamp(min=1e-6)
        outs = []
        h = x
        for k, layer in enumerate(self.layers):
            g = items if k == len(self.layers) - 1 else full
            new = F.normalize(layer(h, self.rel_emb.weight, g), dim=-1) * scale
            h = torch.where(g.has_edges.unsqueeze(1), new, h[: g.num_heads]) if k < len(self.layers) - 1 else new
            outs.append(h[:num_items])
        return torch.stack(outs, dim=0).mean(dim=0) * items.has_edges.unsqueeze(1)
