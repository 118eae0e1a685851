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

from gnn.adjacency import spmm
from gnn.user_content import MeanOfRows


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

    def forward(self, x: Tensor | MeanOfRows) -> Tensor:
        """``[N, D] -> [N, d]``; for :class:`~gnn.user_content.MeanOfRows` ``op @ x`` (without input dropout while
        training), the first layer runs on ``x``'s rows and the mean after it (same values)."""
        if isinstance(x, MeanOfRows):
            if self.training and self.dropout.p > 0:
                return self.forward(torch.sparse.mm(x.op, x.x.float()))
            h = spmm(x.op, x.x.float() @ self.lin1.weight.T, x.op_t) + self.lin1.bias
            return self.lin2(torch.tanh(h))
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
    """Projects each available modality of one node type, fuses them by masked attention and adds
    them to an optional ID embedding through a learnable gate (ReZero-style, starting at ``gate_init``):
    ``out = id + g * fused_content`` (``out = fused_content`` without IDs).

    With IDs, training starts from the ID model and lets the gradient decide how much content to mix
    in; content-only nodes (``use_id=False``, e.g. cold-start items) rely on the content entirely.

    Args:
        num_nodes: number of nodes ``N`` of the type.
        dim: width ``d``.
        feature_dims: modality name -> feature width, for the modalities in use.
        use_id: add a learnable ID embedding.
        dropout: feature dropout in the projections.
        gate_init: initial content gate (with IDs).
    """

    def __init__(self, num_nodes: int, dim: int, feature_dims: dict[str, int], use_id: bool = True,
                 dropout: float = 0.0, gate_init: float = 0.0) -> None:
        super().__init__()
        if not feature_dims and not use_id:
            raise ValueError("a node type needs an ID embedding or at least one feature modality")
        self.num_nodes = num_nodes
        self.modalities = sorted(feature_dims)
        self.proj = nn.ModuleDict({m: ModalityProjection(feature_dims[m], dim, dropout) for m in self.modalities})
        self.id_emb = nn.Embedding(num_nodes, dim) if use_id else None
        self.fusion = AttentionFusion(dim) if len(self.modalities) > 1 else None
        self.gate_init = gate_init
        self.gate = nn.Parameter(torch.zeros(dim)) if use_id and self.modalities else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.id_emb is not None:
            nn.init.normal_(self.id_emb.weight, std=0.1)
        for p in self.proj.values():
            p.reset_parameters()
        if self.fusion is not None:
            self.fusion.reset_parameters()
        if self.gate is not None:
            nn.init.constant_(self.gate, self.gate_init)

    def forward(self, features: dict[str, tuple[Tensor, Tensor]],
                id_keep: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Node representations.

        Args:
            features: modality -> ``(x [N, D_m], present [N] bool)`` for every modality in use.
            id_keep: ``[N]`` bool, rows whose ID embedding is used (the others rely on content alone,
                ungated); ``None`` = all.

        Returns:
            ``(out [N, d], views)`` with ``views`` modality -> ``[N, d]`` projection (``"id"`` included),
            used by the cross-modal contrastive loss. Rows without any view are zero.
        """
        added, content, views = self.content(features)
        ids = None if self.id_emb is None else self.id_emb.weight
        if ids is not None:
            views["id"] = ids
        out = ids if added is None else added if ids is None else ids + added
        if id_keep is not None and ids is not None:  # rows without their ID: the fused content, ungated
            out = torch.where(id_keep.unsqueeze(1), out, content if content is not None else torch.zeros_like(out))
        return out, views

    def content(self, features: dict[str, tuple[Tensor, Tensor]]
                ) -> tuple[Tensor | None, Tensor | None, dict[str, Tensor]]:
        """``(added, fused, views)``: what the content adds to the ID embedding (``gate * fused``; ``fused`` itself
        without IDs; ``None`` without modalities), the fused content ``[N, d]`` and the projected views."""
        views: dict[str, Tensor] = {}
        masks: list[Tensor] = []
        for m in self.modalities:
            x, present = features[m]
            views[m] = self.proj[m](x if isinstance(x, MeanOfRows) else x.float())
            masks.append(present)
        fused = self.fuse([views[m] for m in self.modalities], masks)
        if fused is None or self.gate is None:
            return fused, fused, views
        return self.gate * fused, fused, views

    def fuse(self, views: list[Tensor], masks: list[Tensor]) -> Tensor | None:
        """Fuse projected ``views`` (``[n, d]`` each, in :attr:`modalities` order, ``masks`` ``[n]`` bool):
        ``[n, d]``, or ``None`` without modalities."""
        if self.fusion is not None:
            return self.fusion(views, masks)[0]
        return views[0] * masks[0].unsqueeze(1).to(views[0].dtype) if views else None

    def combine(self, views: list[Tensor], masks: list[Tensor], ids: Tensor | None) -> Tensor:
        """Fuse projected ``views`` (as :meth:`fuse`) and add them to ``ids [n, d]`` (or ``None``) through
        the gate: ``[n, d]`` (any subset of rows)."""
        return self._add_ids(self.fuse(views, masks), ids)

    def _add_ids(self, content: Tensor | None, ids: Tensor | None) -> Tensor:
        if ids is None or content is None:
            return ids if content is None else content  # type: ignore[return-value]
        return ids + self.gate * content
