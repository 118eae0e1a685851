"""Hyper-parameters and ablation switches of :class:`~gnn.mmkg_model.MMKGModel`, and the entities it embeds."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gnn.graph_inputs import GraphInputs

ITEM_MODALITIES = {"text": "item.text", "image": "item.image", "clip_text": "item.clip_text"}


@dataclass
class MMKGOptions:
    """Hyper-parameters and ablation switches of :class:`MMKGModel` (see train.py for their meaning)."""

    embedding_dim: int = 64
    num_layers: int = 2
    kg_layers: int = 2
    use_id: bool = True
    use_kg: bool = True
    use_text: bool = True
    use_image: bool = True
    use_clip_text: bool = True
    use_profile: bool = True
    use_entity_text: bool = False
    use_item_item: bool = False
    normalize: bool = False
    feature_dropout: float = 0.0
    item_id_dropout: float = 0.0
    kg_prune_leaves: bool = True
    contrastive_weight: float = 0.0
    contrastive_temperature: float = 0.2
    kg_loss_weight: float = 0.0
    item_graphs: str = ""
    item_graph_k: int = 10
    item_graph_layers: int = 1
    item_graph_fusion: str = "attention"
    item_graph_weight: float = 0.0
    item_graph_learn_weight: bool = True
    item_graph_stage: str = "post"
    item_graph_dropout: float = 0.0

    def item_graph_names(self) -> list[str]:
        """The item-item graphs in use (``item_graphs``, a comma list)."""
        return [g.strip() for g in self.item_graphs.split(",") if g.strip()]


def kept_entities(inputs: GraphInputs, options: MMKGOptions) -> Tensor:
    """Sorted entity ids the model embeds: entities with >= 2 distinct KG neighbours (a leaf only
    repeats its single neighbour's ID; all of them when ``kg_prune_leaves`` is off) and profile entities."""
    n_ent, ni = inputs.num_entities, inputs.num_items
    keep = torch.zeros(n_ent, dtype=torch.bool)
    if options.use_kg and inputs.kg_head.numel():
        head, tail = inputs.kg_head.cpu(), inputs.kg_tail.cpu()
        pairs = torch.unique(head * inputs.num_kg_nodes + tail)
        deg = torch.bincount(pairs // inputs.num_kg_nodes, minlength=inputs.num_kg_nodes)[ni:]
        keep |= deg >= (2 if options.kg_prune_leaves else 1)
    if options.use_profile and inputs.profile_entity.numel():
        keep[inputs.profile_entity.cpu()] = True
    return torch.nonzero(keep).flatten()
