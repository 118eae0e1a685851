"""The full model's extra loss terms: cross-modal InfoNCE over a batch's positive items and the TransE KG loss."""

from __future__ import annotations

import torch
from torch import Tensor

from gnn.graph_inputs import GraphInputs
from gnn.losses import info_nce, transe_loss
from gnn.mmkg_options import ITEM_MODALITIES
from gnn.recommender import Batch


def mmkg_loss_terms(model, inputs: GraphInputs, item_emb: Tensor, batch: Batch,  # noqa: ANN001 (MMKGModel)
                    last: dict[str, Tensor] | None) -> dict[str, Tensor]:
    """Name -> weighted scalar: ``contrastive`` (each item view vs the collaborative item embedding, and text vs
    image, InfoNCE over the batch's distinct positives) and ``kg`` (TransE on random triples with a random
    corrupted tail); ``last``: the model's :meth:`~gnn.mmkg_model.MMKGModel.embed` output of this step."""
    terms: dict[str, Tensor] = {}
    o = model.options
    if o.contrastive_weight > 0 and last is not None:
        items = torch.unique(batch.pos)
        collab = item_emb[items]
        total = collab.sum() * 0.0
        for m in model.item_encoder.modalities:
            _, present = inputs.feature(ITEM_MODALITIES[m])  # type: ignore[misc]
            total = total + info_nce(last[f"view.{m}"][items], collab, o.contrastive_temperature, present[items])
        if {"text", "image"} <= set(model.item_encoder.modalities):
            both = inputs.feature("item.text")[1][items] & inputs.feature("item.image")[1][items]
            total = total + info_nce(last["view.text"][items], last["view.image"][items],
                                     o.contrastive_temperature, both)
        terms["contrastive"] = o.contrastive_weight * total
    if model.transe_rel is not None and last is not None and inputs.kg_head.numel():
        n = batch.users.numel()
        pick = torch.randint(inputs.kg_head.numel(), (n,), device=inputs.kg_head.device)
        x = torch.cat([last["item_ego"], last["entity_ego"]], dim=0)
        neg = torch.randint(x.shape[0], (n,), device=x.device)
        h, t, r = inputs.kg_head[pick], inputs.kg_tail[pick], inputs.kg_rel[pick]
        terms["kg"] = o.kg_loss_weight * transe_loss(x[h], model.transe_rel(r), x[t], x[neg])
    return terms
