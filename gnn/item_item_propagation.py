"""Propagation of item embeddings over the frozen item-item graphs (FREEDOM, Zhou & Shen 2023; LATTICE).

Each graph (:mod:`gnn.item_item_graphs`: kNN by text / image / CLIP text, co-entity through the KG) carries
the items' embeddings ``L`` hops, ``h_g = A_g^L x``; the graphs' outputs are fused per item (masked attention,
as the modality fusion: an item chooses which neighbourhood to trust; or softmax-normalised learned graph
weights; or their mean) and enter through a scalar weight ``w`` (learned from ``weight_init`` unless fixed):
``x + w * fuse_g(h_g)``. The graphs are built once per inputs (per feature tensor, per KG edge tensor) and
kept; ``edge_dropout`` drops graph edges (rescaled) at random while training.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gnn.adjacency import spmm, transpose_csr
from gnn.item_item_graphs import GRAPH_FEATURES, GRAPH_NAMES, build_item_graphs
from gnn.modality_fusion import AttentionFusion

FUSIONS = ("attention", "weights", "mean")


class ItemItemPropagation(nn.Module):
    """See the module docstring.

    Args:
        graphs: graph names, a subset of ``text``, ``image``, ``clip_text``, ``kg``.
        dim: embedding width ``d``.
        k: neighbours per item when the graphs are built.
        layers: hops ``L`` (>= 1).
        fusion: ``attention`` | ``weights`` | ``mean``.
        weight_init: initial (or fixed) weight ``w`` of the fused output.
        learn_weight: ``w`` is a parameter (else a constant).
        edge_dropout: share of graph edges dropped per training forward pass.
    """

    def __init__(self, graphs: list[str], dim: int, k: int = 10, layers: int = 1, fusion: str = "attention",
                 weight_init: float = 0.0, learn_weight: bool = True, edge_dropout: float = 0.0) -> None:
        super().__init__()
        bad = [g for g in graphs if g not in GRAPH_NAMES]
        if bad or not graphs:
            raise ValueError(f"item graphs must be a non-empty subset of {', '.join(GRAPH_NAMES)}, got {graphs}")
        if fusion not in FUSIONS or layers < 1 or k < 1 or not 0.0 <= edge_dropout < 1.0:
            raise ValueError(f"bad item-graph options: fusion {fusion!r} (one of {FUSIONS}), layers {layers}, "
                             f"k {k}, edge_dropout {edge_dropout}")
        self.names, self.k, self.layers, self.fusion_kind = list(graphs), k, layers, fusion
        self.edge_dropout, self.weight_init = edge_dropout, weight_init
        self.attention = AttentionFusion(dim) if fusion == "attention" and len(graphs) > 1 else None
        self.graph_logits = nn.Parameter(torch.zeros(len(graphs))) if fusion == "weights" else None
        if learn_weight:
            self.weight = nn.Parameter(torch.tensor(float(weight_init)))
        else:
            self.register_buffer("weight", torch.tensor(float(weight_init)), persistent=False)
        self._graphs: dict[str, tuple[object, Tensor, Tensor, Tensor]] = {}

    def reset_parameters(self) -> None:
        if self.attention is not None:
            self.attention.reset_parameters()
        if self.graph_logits is not None:
            nn.init.zeros_(self.graph_logits)
        with torch.no_grad():
            self.weight.fill_(self.weight_init)

    def graphs(self, inputs) -> dict[str, tuple[Tensor, Tensor, Tensor]]:  # noqa: ANN001 (GraphInputs)
        """Name -> ``(A, A^T, has_edges [I] bool)`` on the inputs' device, built when their source changed
        (the feature tensor, or the KG edge tensor for ``kg``)."""
        out = {}
        for name in self.names:
            source = inputs.kg_head if name == "kg" else inputs.features.get(GRAPH_FEATURES[name])
            hit = self._graphs.get(name)
            if hit is None or hit[0] is not source:
                a = build_item_graphs([name], inputs.features, inputs.kg_head, inputs.kg_tail, inputs.num_items,
                                      self.k)[name].to(inputs.kg_head.device)
                has = torch.diff(a.crow_indices()) > 0
                hit = self._graphs[name] = (source, a, transpose_csr(a), has)
            out[name] = hit[1:]
        return out

    def _dropped(self, a: Tensor) -> tuple[Tensor, Tensor]:
        keep = (torch.rand(a.values().shape, device=a.device) >= self.edge_dropout).float()
        d = torch.sparse_csr_tensor(a.crow_indices(), a.col_indices(), a.values() * keep / (1 - self.edge_dropout),
                                    size=a.shape, check_invariants=False)
        return d, transpose_csr(d)

    def views(self, x: Tensor, inputs, graphs: dict | None = None) -> tuple[list[Tensor], list[Tensor]]:  # noqa: ANN001
        """``([A_g^L x [I, d] per graph], [has_edges [I] per graph])`` over ``graphs`` (as :meth:`graphs` returns
        them; default: those of ``inputs``)."""
        views, masks = [], []
        for a, a_t, has in (self.graphs(inputs) if graphs is None else graphs).values():
            if self.training and self.edge_dropout > 0:
                a, a_t = self._dropped(a)
            h = x
            for _ in range(self.layers):
                h = spmm(a, h, a_t)
            views.append(h)
            masks.append(has)
        return views, masks

    def fuse(self, views: list[Tensor], masks: list[Tensor]) -> tuple[Tensor, Tensor | None]:
        """``(fused [N, d], alpha [N, G] or None)`` of the graphs' ``views`` ``[N, d]`` (rows fuse independently,
        so any subset of items can be fused alone)."""
        if self.attention is not None:
            return self.attention(views, masks)
        if self.graph_logits is not None:
            alpha = torch.softmax(self.graph_logits, dim=0)
            return sum(w * v for w, v in zip(alpha, views, strict=True)), alpha.expand(views[0].shape[0], -1)
        return torch.stack(views, dim=0).mean(dim=0), None

    def propagate(self, x: Tensor, inputs, graphs: dict | None = None) -> tuple[Tensor, Tensor | None]:  # noqa: ANN001
        """``(fused [I, d], alpha [I, G] or None)`` before the weight ``w``, over ``graphs`` (as :meth:`graphs`
        returns them; default: those of ``inputs``)."""
        return self.fuse(*self.views(x, inputs, graphs))

    def forward(self, x: Tensor, inputs) -> Tensor:  # noqa: ANN001
        """``w * fuse_g(A_g^L x)``: ``[I, d]``, to add to the items' embeddings."""
        return self.weight * self.propagate(x, inputs)[0]
