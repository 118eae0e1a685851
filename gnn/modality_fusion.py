"""Per-modality projections and attention fusion that copes with missing modalities.

Each node has several views (learnable ID, text, image, CLIP text, ...), each projected into one
width ``d``. Some views are missing for some nodes (an item without a poster): a presence mask marks
them, the attention softmax runs over the present views only, and a node with no view at all gets
a zero vector.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ModalityProjection(nn.Module):
    """``Linear -> LayerNorm``-free two-layer projection of one modality's features into width ``d``.

    Args:
        in_dim: feature width ``D`` (e.g. 384 for MiniLM text).
        out_dim: model width ``d``.
        dropout: dropout on the input features while training.
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.lin1 = nn.Linear(in_dim, out_dim)
        self.lin2 = nn.Linear(out_dim, out_dim)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.lin1, self.lin2):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, D] -> [N, d]``."""
        return self.lin2(torch.tanh(self.lin1(self.dropout(x))))


class AttentionFusion(nn.Module):
    """Masked attention over views: ``alpha_m = softmax_m(w^T tanh(W h_m))`` over the present ``m``,
    ``out = sum_m alpha_m h_m``.

    Args:
        dim: view width ``d``.
        hidden: attention hidden width.
    """

    def __init__(self, dim: int, hidden: int = 32) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.query = nn.Linear(hidden, 1, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        nn.init.normal_(self.query.weight, std=1.0 / math.sqrt(self.proj.out_features))

    def forward(self, views: list[Tensor], masks: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Fuse ``M`` views.

        Args:
            views: ``M`` tensors ``[N, d]``.
            masks: ``M`` bool tensors ``[N]`` (view present).

        Returns:
            ``(fused [N, d], alpha [N, M])``; rows without any present view are zero (alpha all zero).
        """
        h = torch.stack(views, dim=1)  # [N, M, d]
        present = torch.stack(masks, dim=1)  # [N, M]
        logits = self.query(torch.tanh(self.proj(h))).squeeze(-1)
        logits = logits.masked_fill(~present, float("-inf"))
        alpha = torch.softmax(logits, dim=1)
        alpha = torch.nan_to_num(alpha, nan=0.0) * present
        return (alpha.unsqueeze(-1) * h).sum(dim=1), alpha


class MultimodalEncoder(nn.Module):
    """Projects each available modality of one node type and fuses them with an optional ID embedding.

    Args:
        num_nodes: number of nodes ``N`` of the type.
        dim: width ``d``.
        feature_dims: modality name -> feature width, for the modalities in use.
        use_id: add a learnable ID embedding as one more (always present) view.
        dropout: feature dropout in the projections.
    """

    def __init__(self, num_nodes: int, dim: int, feature_dims: dict[str, int], use_id: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if not feature_dims and not use_id:
            raise ValueError("a node type needs an ID embedding or at least one feature modality")
        self.num_nodes = num_nodes
        self.modalities = sorted(feature_dims)
        self.proj = nn.ModuleDict({m: ModalityProjection(feature_dims[m], dim, dropout) for m in self.modalities})
        self.id_emb = nn.Embedding(num_nodes, dim) if use_id else None
        self.fusion = AttentionFusion(dim) if len(self.modalities) + int(use_id) > 1 else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.id_emb is not None:
            nn.init.normal_(self.id_emb.weight, std=0.1)
        for p in self.proj.values():
            p.reset_parameters()
        if self.fusion is not None:
            self.fusion.reset_parameters()

    def forward(self, features: dict[str, tuple[Tensor, Tensor]]) -> tuple[Tensor, dict[str, Tensor]]:
        """Fused node representations.

        Args:
            features: modality -> ``(x [N, D_m], present [N] bool)`` for every modality in use.

        Returns:
            ``(fused [N, d], views)`` with ``views`` modality -> ``[N, d]`` projection (``"id"`` included),
            used by the cross-modal contrastive loss.
        """
        views: dict[str, Tensor] = {}
        masks: list[Tensor] = []
        for m in self.modalities:
            x, present = features[m]
            views[m] = self.proj[m](x.float())
            masks.append(present)
        if self.id_emb is not None:
            views["id"] = self.id_emb.weight
            masks.append(torch.ones(self.num_nodes, dtype=torch.bool, device=self.id_emb.weight.device))
        order = self.modalities + (["id"] if self.id_emb is not None else [])
        if self.fusion is None:
            only = views[order[0]]
            return (only if order[0] == "id" else only * masks[0].unsqueeze(1).to(only.dtype)), views
        fused, _ = self.fusion([views[m] for m in order], masks)
        return fused, views
