"""The full model: multimodal, knowledge-aware, heterogeneous GNN for user-item link prediction.

Pipeline (every stage switchable by :class:`MMKGOptions`, so ablations are configuration only):

1. **Items**: text / image / CLIP-text features projected to width ``d``, fused by masked attention
   (missing modalities masked out) and added to a learnable ID embedding through a zero-initialised gate
   (:class:`~gnn.modality_fusion.MultimodalEncoder`): training starts from the ID model and mixes content
   in as the gradient finds it useful. ``use_id=False`` gives the content-only variant that also serves
   cold-start items. ``item_id_dropout > 0`` (DropoutNet, Volkovs et al. 2017) replaces each item's
   ``ID + gate * content`` by the ungated fused content with that probability per training step, so the
   content path learns to stand in for the ID, and serves items without training interactions (cold
   items: their ID row was never trained) from content and KG alone.
2. **Knowledge**: items and entities (ID embedding, optionally entity text) propagate over the typed KG
   with relation-aware attention (:class:`~gnn.kg_propagation.KnowledgePropagation`); the result is added
   to the items through another zero-initialised gate.
3. **Users**: ID embedding plus (gated) the mean text of their training items and their profile text,
   plus a zero-initialised projection of the mean of their profile entities (age group, gender, ...).
4. **Collaborative**: LightGCN propagation over the normalised user-item graph, uniform layer average.
5. **Item-item graphs** (``item_graphs``): item embeddings propagated over frozen kNN graphs of the content
   features and the KG co-entity graph (:mod:`gnn.item_item_propagation`), added before (``pre``) or after
   (``post``, FREEDOM) the user-item propagation.
6. **Item-item**: each user adds the degree-normalised sum of its training items' *context* vectors
   (a separate item table, FISM-style), a learned low-rank item-item term as in EASE / SLIM.

Score: ``<user_emb[u], item_emb[i]>`` (cosine when ``normalize`` is set).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from gnn.adjacency import spmm, transpose_csr, user_history_matrix
from gnn.graph_inputs import GraphInputs
from gnn.item_item_propagation import ItemItemPropagation
from gnn.kg_propagation import KnowledgePropagation
from gnn.mmkg_loss_terms import mmkg_loss_terms
from gnn.mmkg_options import ITEM_MODALITIES, MMKGOptions, kept_entities
from gnn.mmkg_structure import model_structure
from gnn.modality_fusion import MultimodalEncoder
from gnn.propagation import graph_rows, layer_mean
from gnn.recommender import Batch, Rows, TrainableRecommender
from gnn.user_content import user_content_operator

__all__ = ["ITEM_MODALITIES", "MMKGModel", "MMKGOptions", "kept_entities"]


def _with_transpose(a: Tensor) -> tuple[Tensor, Tensor]:
    return a, transpose_csr(a)


def _plus(a: Tensor | None, b: Tensor | None) -> Tensor:
    return b if a is None else a if b is None else a + b  # type: ignore[return-value]


class MMKGModel(TrainableRecommender):
    """See the module docstring. Build with :meth:`from_inputs`.

    Args:
        num_users, num_items, num_entities, num_relations: graph sizes (``num_relations`` = ``2R``).
        item_feature_dims: item modality (``text`` / ``image`` / ``clip_text``) -> feature width.
        user_feature_dims: user modality (``content`` / ``profile_text``) -> feature width.
        entity_feature_dim: width of ``entity.text`` (0 = none).
        options: :class:`MMKGOptions`.
        kept_entity_ids: ``[num_entities]`` sorted KG entity ids the entity table embeds (default: all);
            stored as a buffer, so perturbed or masked inputs (robustness, explanations) keep the
            trained rows aligned.
        trained_items: ``[num_items]`` bool, the item has training interactions (with ``item_id_dropout > 0``:
            the others are served without their ID embedding); a buffer, like ``kept_entity_ids``.
    """

    def __init__(self, num_users: int, num_items: int, num_entities: int, num_relations: int,
                 item_feature_dims: dict[str, int], user_feature_dims: dict[str, int], entity_feature_dim: int,
                 options: MMKGOptions, kept_entity_ids: Tensor | None = None,
                 trained_items: Tensor | None = None) -> None:
        super().__init__()
        kept = torch.arange(num_entities) if kept_entity_ids is None else kept_entity_ids.long().cpu()
        if kept.numel() != num_entities:
            raise ValueError(f"kept_entity_ids has {kept.numel()} ids for {num_entities} entity rows")
        self.register_buffer("kept_entity_ids", kept.clone())
        o = self.options = options
        if not 0.0 <= o.item_id_dropout < 1.0:
            raise ValueError(f"item_id_dropout must be in [0, 1), got {o.item_id_dropout}")
        if o.item_id_dropout > 0 and o.use_id:
            trained = torch.ones(num_items, dtype=torch.bool) if trained_items is None else trained_items.bool()
            self.register_buffer("trained_items", trained.cpu().clone())
        else:
            self.trained_items = None
        d = o.embedding_dim
        self.num_users, self.num_items, self.num_entities = num_users, num_items, num_entities
        self.item_encoder = MultimodalEncoder(num_items, d, item_feature_dims, o.use_id, o.feature_dropout)
        self.user_encoder = MultimodalEncoder(num_users, d, user_feature_dims, o.use_id, o.feature_dropout)
        use_entities = (o.use_kg or o.use_profile) and num_entities > 0
        ent_dims = {"text": entity_feature_dim} if entity_feature_dim and o.use_text and o.use_entity_text else {}
        self.entity_encoder = MultimodalEncoder(num_entities, d, ent_dims, True, o.feature_dropout) \
            if use_entities else None
        self.kg = KnowledgePropagation(num_relations, d, o.kg_layers) \
            if o.use_kg and num_relations > 0 and num_entities > 0 else None
        self.kg_gate = nn.Parameter(torch.zeros(d)) if self.kg is not None else None
        self.profile_proj = nn.Linear(d, d) if o.use_profile and use_entities else None
        self.context = nn.Embedding(num_items, d) if o.use_item_item else None
        self.item_graphs = ItemItemPropagation(
            o.item_graph_names(), d, o.item_graph_k, o.item_graph_layers, o.item_graph_fusion, o.item_graph_weight,
            o.item_graph_learn_weight, o.item_graph_dropout) if o.item_graph_names() else None
        self.transe_rel = nn.Embedding(max(num_relations, 1), d) if o.kg_loss_weight > 0 and self.kg else None
        self._cache: dict[str, tuple[object, Tensor]] = {}
        self.reset_parameters()

    @classmethod
    def from_inputs(cls, inputs: GraphInputs, options: MMKGOptions) -> MMKGModel:
        """Size the model from ``inputs``: a modality is used when its switch is on and its feature exists."""
        switch = {"text": options.use_text, "image": options.use_image, "clip_text": options.use_clip_text}
        item_dims = {m: inputs.features[k].shape[1] for m, k in ITEM_MODALITIES.items()
                     if switch[m] and k in inputs.features}
        user_dims: dict[str, int] = {}
        if options.use_text and inputs.user_content is not None:
            user_dims["content"] = inputs.user_content.shape[1]
        if options.use_profile and options.use_text and "user.profile_text" in inputs.features:
            user_dims["profile_text"] = inputs.features["user.profile_text"].shape[1]
        ent = inputs.features.get("entity.text")
        kept = kept_entities(inputs, options)
        trained = torch.bincount(inputs.train_item.cpu(), minlength=inputs.num_items) > 0
        return cls(inputs.num_users, inputs.num_items, int(kept.numel()), inputs.num_relations, item_dims,
                   user_dims, 0 if ent is None else ent.shape[1], options, kept_entity_ids=kept,
                   trained_items=trained)

    def reset_parameters(self) -> None:
        for enc in (self.item_encoder, self.user_encoder, self.entity_encoder, self.kg, self.item_graphs):
            if enc is not None:
                enc.reset_parameters()
        if self.kg_gate is not None:
            nn.init.zeros_(self.kg_gate)
        if self.profile_proj is not None:  # starts at zero: the profile enters as the gradient finds it useful
            nn.init.zeros_(self.profile_proj.weight)
            nn.init.zeros_(self.profile_proj.bias)
        if self.context is not None:
            nn.init.normal_(self.context.weight, std=0.01)
        if self.transe_rel is not None:
            nn.init.normal_(self.transe_rel.weight, std=0.1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # noqa: ANN001
        # checkpoints written before the buffer existed: keep the ids computed from the same inputs
        state_dict.setdefault(prefix + "kept_entity_ids", self.kept_entity_ids)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _structure(self, inputs: GraphInputs) -> dict:
        """Kept entities, KG slot graphs, profile operator (:func:`gnn.mmkg_structure.model_structure`)."""
        return model_structure(self, inputs)

    def prepare(self, inputs: GraphInputs) -> None:
        """The KG slot graphs, the profile operator, the users' text operator and the item-item graphs."""
        if self.entity_encoder is not None:
            self._cached("structure", inputs, lambda: self._structure(inputs))
        self._user_views(inputs)
        if self.item_graphs is not None:
            self.item_graphs.graphs(inputs)

    def _cached(self, name: str, inputs: GraphInputs, build):
        hit = self._cache.get(name)
        if hit is None or hit[0] is not inputs.train_user:
            hit = self._cache[name] = (inputs.train_user, build())
        return hit[1]

    def _user_views(self, inputs: GraphInputs) -> dict[str, tuple[Tensor, Tensor]]:
        views: dict[str, tuple[Tensor, Tensor]] = {}
        if "content" in self.user_encoder.modalities:
            hit = self._cache.get("user_content")  # the mean item text, projected through the mean
            if hit is None or hit[0] is not inputs.user_content:
                hit = self._cache["user_content"] = (inputs.user_content, user_content_operator(inputs))
            views["content"] = (hit[1] or inputs.user_content, inputs.user_content_mask)
        if "profile_text" in self.user_encoder.modalities:
            views["profile_text"] = inputs.feature("user.profile_text")  # type: ignore[assignment]
        return views

    def _item_id_keep(self) -> Tensor | None:
        """``[I]`` bool, the item's ID embedding is used: trained items, each dropped with probability
        ``item_id_dropout`` while training; ``None`` = every item (no ID dropout)."""
        if self.trained_items is None:
            return None
        keep = self.trained_items
        if self.training:
            keep = keep & (torch.rand(keep.shape, device=keep.device) >= self.options.item_id_dropout)
        return keep

    reusable_content = ("item_content", "item_kg_term", "item_graph_term", "user_content")

    def content_terms(self, inputs: GraphInputs) -> dict[str, Tensor]:
        """The content side of the propagation's input, as :meth:`embed` adds it to the ID embeddings:
        ``item_content`` (gated item content), ``item_kg_term`` (gated KG propagation), ``item_graph_term`` (item-item
        graph propagation), ``user_content`` (gated user content plus the profile term), each ``[rows, d]`` when the
        model has it (:attr:`reusable_content`); and
        ``item_ego`` / ``entity_ego`` / ``view.*`` of this call. Training may reuse the reusable ones over a few
        steps (``content`` of :meth:`embed`, ``--content_refresh``)."""
        out: dict[str, Tensor] = {}
        item_feats = {m: inputs.feature(ITEM_MODALITIES[m]) for m in self.item_encoder.modalities}
        added, fused, views = self.item_encoder.content(item_feats)
        ids = self.item_encoder.id_emb.weight if self.item_encoder.id_emb is not None else None
        out.update({f"view.{k}": v for k, v in views.items()}, **({"view.id": ids} if ids is not None else {}))
        item_ego = ids if added is None else added if ids is None else ids + added
        keep = self._item_id_keep() if ids is not None else None
        if keep is not None:  # rows without their ID: the fused content, ungated
            item_ego = torch.where(keep.unsqueeze(1), item_ego, fused if fused is not None else torch.zeros_like(ids))
        if added is not None:
            out["item_content"] = added
        out["item_ego"] = item_ego
        st = self._cached("structure", inputs, lambda: self._structure(inputs)) \
            if self.entity_encoder is not None else {}
        entity_ego = None
        if self.entity_encoder is not None:
            ent_feats = {}
            if self.entity_encoder.modalities:
                x, present = inputs.feature("entity.text")  # type: ignore[misc]
                ent_feats["text"] = (x[st["kept"]], present[st["kept"]])
            entity_ego = out["entity_ego"] = self.entity_encoder(ent_feats)[0]
        if self.kg is not None and entity_ego is not None and "slots" in st:
            out["item_kg_term"] = self.kg_gate * self.kg(torch.cat([item_ego, entity_ego], dim=0), st["slots"])
        if self.item_graphs is not None:
            out["item_graph_term"] = self.item_graphs(_plus(item_ego, out.get("item_kg_term")), inputs)
        user = self.user_encoder.content(self._user_views(inputs))[0]
        if self.profile_proj is not None and entity_ego is not None and "profile" in st:
            profile = self.profile_proj(spmm(st["profile"][0], entity_ego, st["profile"][1]))
            user = profile if user is None else user + profile
        if user is not None:
            out["user_content"] = user
        return out

    def embed(self, inputs: GraphInputs, batch_rows: Rows | None = None,
              content: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Every intermediate representation: ``item_ego [I, d]``, ``entity_ego [N, d]`` (if any),
        ``item_kg [I, d]``, ``user_ego [U, d]``, ``user [U, d]``, ``item [I, d]``, plus the item views
        (``user`` / ``item`` exact at ``batch_rows`` only when given: see :mod:`gnn.propagation`). ``content``:
        the :attr:`reusable_content` terms of an earlier :meth:`content_terms` call, added to the current ID
        embeddings instead of computing them (no item ID dropout then)."""
        item_ids = self.item_encoder.id_emb.weight if self.item_encoder.id_emb is not None else None
        user_ids = self.user_encoder.id_emb.weight if self.user_encoder.id_emb is not None else None
        if content is None:
            out = self.content_terms(inputs)
            item_ego = out["item_ego"]
        else:
            if self.trained_items is not None:
                raise ValueError("reused content terms cannot be combined with item ID dropout")
            out = dict(content)
            item_ego = _plus(item_ids, content.get("item_content"))
            out["item_ego"] = item_ego
        item_kg = out["item_kg"] = _plus(item_ego, out.get("item_kg_term"))
        if self.item_graphs is not None and self.options.item_graph_stage == "pre":
            item_kg = item_kg + out["item_graph_term"]
        user_ego = out["user_ego"] = _plus(user_ids, out.get("user_content"))
        rows = None if batch_rows is None else graph_rows(batch_rows.users, batch_rows.items, self.num_users)
        final = layer_mean(inputs.ui_adj, torch.cat([user_ego, item_kg], dim=0), self.options.num_layers, rows)
        user, item = final.split([self.num_users, self.num_items])  # (two slices: two [U+I, d] zero grads)
        if self.item_graphs is not None and self.options.item_graph_stage == "post":
            item = item + out["item_graph_term"]
        if self.context is not None:
            hist, hist_t = self._cached("history", inputs, lambda: _with_transpose(user_history_matrix(
                inputs.train_user, inputs.train_item, self.num_users, self.num_items)))
            user = user + spmm(hist, self.context.weight, hist_t)
            out["history_weight"] = self._cached("history_weight", inputs, lambda: torch.bincount(
                inputs.train_user, minlength=self.num_users).clamp(min=1).float().pow(-0.5))
        if self.options.normalize:
            user, item = F.normalize(user, dim=-1), F.normalize(item, dim=-1)
        out["user"], out["item"] = user, item
        return out

    supports_rows = True

    def forward(self, inputs: GraphInputs, rows: Rows | None = None,
                content: dict[str, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """``(user_emb [U, d], item_emb [I, d])`` (exact at ``rows`` only when given; ``content``: :meth:`embed`)."""
        out = self.embed(inputs, rows, content)
        self._last = out
        return out["user"], out["item"]

    def positive_score_correction(self, batch: Batch, user_emb: Tensor, item_emb: Tensor) -> Tensor | None:
        """Remove the positive's own context vector from its user's item-item term while training
        (``- Q_i . item_i / |N(u)|^0.5``), as EASE's zero diagonal / FISM's target exclusion."""
        last = getattr(self, "_last", None)
        if self.context is None or self.options.normalize or last is None:
            return None
        weight = last["history_weight"][batch.users]
        return -weight * (self.context(batch.pos) * item_emb[batch.pos]).sum(-1)

    def ego_embeddings(self, batch: Batch) -> list[Tensor]:
        """ID / context embeddings of the batch's users, positives and negatives (LightGCN-style L2)."""
        found: list[Tensor] = []
        for table, idx in ((self.user_encoder.id_emb, [batch.users]),
                           (self.item_encoder.id_emb, [batch.pos, batch.neg]),
                           (self.context, [batch.pos, batch.neg])):
            if table is not None:
                found += [table(i) for i in idx]
        return found

    def loss_terms(self, inputs: GraphInputs, user_emb: Tensor, item_emb: Tensor, batch: Batch) -> dict[str, Tensor]:
        """Weighted cross-modal InfoNCE over the batch's positive items and the TransE KG loss
        (:func:`gnn.mmkg_loss_terms.mmkg_loss_terms`)."""
        return mmkg_loss_terms(self, inputs, item_emb, batch, getattr(self, "_last", None))
