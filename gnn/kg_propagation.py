"""Relation-aware attentive propagation over the item-entity knowledge graph (KGAT / KGIN style).

Nodes are the knowledge index space ``[I+N]`` (items, then entities) of
:class:`~gnn.graph_inputs.GraphInputs`; every triple is present forward and reversed. One layer:

.. math::
    m_{h \\leftarrow (r, t)} = x_t \\odot e_r, \\qquad
    \\pi(h, r, t) = \\frac{\\langle \\tanh(W x_h + e_r),\\, m_{h \\leftarrow (r, t)} \\rangle}{\\sqrt{d}}, \\qquad
    x'_h = \\sum_{(r, t) \\in \\mathcal{N}(h)} \\mathrm{softmax}_{\\mathcal{N}(h)}(\\pi)\\, m_{h \\leftarrow (r, t)}

(KGIN's relational message ``e_r * e_t`` weighted by KGAT's knowledge-aware attention), computed on
edge lists with ``index_add`` (full graph; no neighbour sampler). The layer outputs are averaged
with the input. Memory is ``O(E d)`` per layer; ``checkpoint=True`` recomputes the layers in the
backward pass to keep only their inputs (for graphs with millions of triples).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as activation_checkpoint
from torch_geometric.utils import softmax as segment_softmax


class RelationAttentionLayer(nn.Module):
    """One relation-aware attention layer (no own node parameters; relations embedded by the caller).

    Args:
        dim: width ``d``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.query.weight)

    def forward(self, x: Tensor, rel_emb: Tensor, head: Tensor, tail: Tensor, rel: Tensor) -> Tensor:
        """``x [n, d]``, ``rel_emb [R, d]``, edges ``head/tail/rel [E]`` -> ``[n, d]`` (zero for nodes without edges)."""
        r = rel_emb[rel]
        msg = x[tail] * r
        q = torch.tanh(self.query(x)[head] + r)
        logit = (q * msg).sum(-1) / math.sqrt(x.shape[1])
        alpha = segment_softmax(logit, head, num_nodes=x.shape[0])
        return torch.zeros_like(x).index_add_(0, head, msg * alpha.unsqueeze(1))


class KnowledgePropagation(nn.Module):
    """``num_layers`` relation-attention layers over the KG; output = mean of the input and the layer outputs.

    Args:
        num_relations: relation ids ``2R`` (forward + reverse).
        dim: width ``d``.
        num_layers: propagation depth ``L_kg``.
        dropout: message dropout (edges dropped while training).
        checkpoint: recompute layers in backward (saves memory on big graphs).
    """

    def __init__(self, num_relations: int, dim: int, num_layers: int = 2, dropout: float = 0.0,
                 checkpoint: bool = False) -> None:
        super().__init__()
        self.rel_emb = nn.Embedding(max(num_relations, 1), dim)
        self.layers = nn.ModuleList(RelationAttentionLayer(dim) for _ in range(num_layers))
        self.dropout = dropout
        self.checkpoint = checkpoint
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.rel_emb.weight, mean=1.0, std=0.1)
        for layer in self.layers:
            layer.reset_parameters()

    def forward(self, x: Tensor, head: Tensor, tail: Tensor, rel: Tensor) -> Tensor:
        """Knowledge-aware node representations.

        Args:
            x: ``[I+N, d]`` layer-0 item / entity representations.
            head, tail, rel: ``[E]`` int64 edges (message flows ``tail -> head``) and relation ids.

        Returns:
            ``[I+N, d]``: mean over ``x`` and each layer's (L2-normalised) output.
        """
        if self.training and self.dropout > 0 and head.numel():
            keep = torch.rand(head.shape[0], device=head.device) >= self.dropout
            head, tail, rel = head[keep], tail[keep], rel[keep]
        outs = [x]
        h = x
        for layer in self.layers:
            if self.checkpoint and self.training:
                h = activation_checkpoint(layer, h, self.rel_emb.weight, head, tail, rel, use_reentrant=False)
            else:
                h = layer(h, self.rel_emb.weight, head, tail, rel)
            h = F.normalize(h, dim=-1) * x.norm(dim=-1, keepdim=True).mean().detach()
            outs.append(h)
        return torch.stack(outs, dim=0).mean(dim=0)
