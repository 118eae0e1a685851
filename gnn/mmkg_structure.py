"""The structure the full model derives from its inputs once: kept entities, KG slot graphs, profile operator."""

from __future__ import annotations

import torch
from torch import Tensor

from gnn.adjacency import mean_aggregation_matrix, transpose_csr
from gnn.graph_inputs import GraphInputs


def model_structure(model, inputs: GraphInputs) -> dict:  # noqa: ANN001 (MMKGModel)
    """``kept`` (the KG entity ids the entity table embeds, on the inputs' device), ``slots`` (the KG slot graphs
    of :meth:`~gnn.kg_propagation.KnowledgePropagation.prepare`, over kept entities) and ``profile`` (the users'
    mean operator over their kept profile entities and its transpose), the latter two when the model uses them."""
    kept = model.kept_entity_ids.to(inputs.kg_head.device)
    remap = torch.full((inputs.num_entities,), -1, dtype=torch.long, device=kept.device)
    remap[kept] = torch.arange(kept.numel(), device=kept.device)
    st: dict = {"kept": kept}
    ni = model.num_items

    def local(node: Tensor) -> tuple[Tensor, Tensor]:
        ent = remap[(node - ni).clamp(min=0)]
        return torch.where(node < ni, node, ent + ni), (node < ni) | (ent >= 0)

    (head, ok_h), (tail, ok_t) = local(inputs.kg_head), local(inputs.kg_tail)
    ok = ok_h & ok_t
    if model.kg is not None and bool(ok.any()):
        st["slots"] = model.kg.prepare(head[ok], tail[ok], inputs.kg_rel[ok], ni + kept.numel(), ni)
    if model.profile_proj is not None and inputs.profile_user.numel():
        ent = remap[inputs.profile_entity]
        agg = mean_aggregation_matrix(inputs.profile_user[ent >= 0], ent[ent >= 0], model.num_users,
                                      model.num_entities)
        st["profile"] = (agg, transpose_csr(agg))
    return st
