"""Everything a recommender sees: graph structure from the KG and the TRAINING interactions, plus features.

:func:`build_graph_inputs` is the only place that turns a :class:`~kg.model.graph.KnowledgeGraph`, a split's
training interactions and the encoder features into tensors; models never read the KG themselves.
Validation / test interactions never enter a :class:`GraphInputs` (no leakage): the user-item adjacency
and the user content aggregate use the training interactions only.

Index spaces:
    * users ``0..U-1`` and items ``0..I-1`` as in the KG;
    * the user-item graph ``[U+I]``: users first, then item ``i`` at ``U + i``;
    * the knowledge graph ``[I+N]``: items first, then entity ``e`` at ``I + e`` (``N`` entities).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch
from torch import Tensor

from gnn.adjacency import csr_from_coo, normalized_bipartite_adjacency
from kg.model.graph import Interactions, KnowledgeGraph

REVERSE_PREFIX = "rev_"


@dataclass
class GraphInputs:
    """Model inputs built from the KG, the training interactions and the features.

    Attributes:
        num_users, num_items, num_entities: node counts ``U``, ``I``, ``N``.
        train_user, train_item: ``[E]`` int64, the (deduplicated) training interactions.
        ui_adj: sparse CSR ``[U+I, U+I]`` float32, ``D^-1/2 A D^-1/2`` of the bipartite
            user-item graph (LightGCN's normalisation); rows/cols of nodes without edges are empty.
        kg_head, kg_tail: ``[T]`` int64 node indices in the knowledge index space ``[I+N]``;
            every KG triple appears twice, forward with relation ``r`` and reversed with
            relation ``r + R`` (``R`` forward relations), so propagation reaches both ends.
        kg_rel: ``[T]`` int64 relation ids in ``0..2R-1``.
        relation_names: ``[2R]`` names; ``relation_names[r + R] == 'rev_' + relation_names[r]``.
        profile_user, profile_entity: ``[P]`` int64, user -> entity edges (age group, gender, ...).
        profile_rel: ``[P]`` int64 ids into ``profile_relation_names``.
        profile_relation_names: names of the user -> entity relations.
        features: encoder outputs (e.g. ``"item.text"`` ``[I, 384]``, ``"item.text_mask"`` ``[I]``
            bool); see ``encoders/features.py``. Empty when the KG has no features.
        user_content: ``[U, D_text]`` mean of ``features["item.text"]`` over each user's training
            items that have text (zeros for users with none), or ``None`` without item text.
        user_content_mask: ``[U]`` bool, the user has at least one training item with text.
    """

    num_users: int
    num_items: int
    num_entities: int
    train_user: Tensor
    train_item: Tensor
    ui_adj: Tensor
    kg_head: Tensor
    kg_tail: Tensor
    kg_rel: Tensor
    relation_names: list[str]
    profile_user: Tensor
    profile_entity: Tensor
    profile_rel: Tensor
    profile_relation_names: list[str]
    features: dict[str, Tensor] = field(default_factory=dict)
    user_content: Tensor | None = None
    user_content_mask: Tensor | None = None

    @property
    def num_relations(self) -> int:
        """Number of KG relation ids ``2R`` (forward + reverse)."""
        return len(self.relation_names)

    @property
    def num_kg_nodes(self) -> int:
        """``I + N``, the size of the knowledge index space."""
        return self.num_items + self.num_entities

    def feature(self, key: str) -> tuple[Tensor, Tensor] | None:
        """``(values, mask)`` of feature ``key`` (e.g. ``"item.image"``), or ``None`` when absent.
        A missing mask means every row is present."""
        x = self.features.get(key)
        if x is None:
            return None
        mask = self.features.get(f"{key}_mask")
        if mask is None:
            mask = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        return x, mask.bool()

    def train_matrix(self) -> Tensor:
        """The training interactions as a binary sparse CSR ``[U, I]`` float32 matrix."""
        return csr_from_coo(self.train_user.cpu().numpy(), self.train_item.cpu().numpy(),
                    np.ones(self.train_user.shape[0], dtype=np.float32),
                    (self.num_users, self.num_items)).to(self.train_user.device)

    def to(self, device: torch.device | str) -> GraphInputs:
        """A copy with every tensor on ``device``."""
        changes = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Tensor):
                changes[f.name] = v.to(device)
            elif f.name == "features":
                changes[f.name] = {k: t.to(device) for k, t in v.items()}
        return replace(self, **changes)


def build_graph_inputs(
    kg: KnowledgeGraph, train: Interactions, features: dict[str, Tensor] | None = None
) -> GraphInputs:
    """Build the :class:`GraphInputs` of ``kg`` given its TRAINING interactions ``train`` only.

    Relations between items / entities form the knowledge graph; user -> entity (or entity -> user)
    relations form the user-profile edges; other relations touching users (user-user, user-item)
    are not used. Features are checked against the node counts.
    """
    n_users, n_items, n_ent = kg.num_nodes("user"), kg.num_nodes("item"), kg.num_nodes("entity")
    pair = np.unique(train.user.astype(np.int64) * n_items + train.item.astype(np.int64))
    tu, ti = pair // max(n_items, 1), pair % max(n_items, 1)
    offset = {"item": 0, "entity": n_items}
    kg_types = [et for et in kg.edge_types() if et[0] in offset and et[2] in offset]
    names = sorted({et[1] for et in kg_types})
    rid = {n: r for r, n in enumerate(names)}
    heads, tails, rels = [], [], []
    for src_t, rel, dst_t in kg_types:
        s, d = kg.triples((src_t, rel, dst_t))
        heads.append(s + offset[src_t])
        tails.append(d + offset[dst_t])
        rels.append(np.full(s.shape[0], rid[rel], dtype=np.int64))
    h, t, r = (np.concatenate(a) if a else np.zeros(0, np.int64) for a in (heads, tails, rels))
    kg_head = np.concatenate([h, t])
    kg_tail = np.concatenate([t, h])
    kg_rel = np.concatenate([r, r + len(names)])
    prof_types = [et for et in kg.edge_types() if {et[0], et[2]} == {"user", "entity"}]
    pnames = sorted({et[1] for et in prof_types})
    pid = {n: k for k, n in enumerate(pnames)}
    pu, pe, pr = [], [], []
    for src_t, rel, dst_t in prof_types:
        s, d = kg.triples((src_t, rel, dst_t))
        u, e = (s, d) if src_t == "user" else (d, s)
        pu.append(u)
        pe.append(e)
        pr.append(np.full(s.shape[0], pid[rel], dtype=np.int64))
    pu, pe, pr = (np.concatenate(a) if a else np.zeros(0, np.int64) for a in (pu, pe, pr))
    feats = dict(features or {})
    _check_features(feats, {"user": n_users, "item": n_items, "entity": n_ent})
    ui_adj = normalized_bipartite_adjacency(tu, ti, n_users, n_items)
    tu_t, ti_t = torch.from_numpy(tu), torch.from_numpy(ti)
    content, content_mask = _user_content(feats, tu_t, ti_t, n_users)
    return GraphInputs(
        num_users=n_users, num_items=n_items, num_entities=n_ent, train_user=tu_t, train_item=ti_t, ui_adj=ui_adj,
        kg_head=torch.from_numpy(kg_head), kg_tail=torch.from_numpy(kg_tail), kg_rel=torch.from_numpy(kg_rel),
        relation_names=names + [REVERSE_PREFIX + n for n in names],
        profile_user=torch.from_numpy(pu), profile_entity=torch.from_numpy(pe), profile_rel=torch.from_numpy(pr),
        profile_relation_names=pnames, features=feats, user_content=content, user_content_mask=content_mask,
    )


def _check_features(feats: dict[str, Tensor], counts: dict[str, int]) -> None:
    from kg.errors import MMKGError

    for key, x in feats.items():
        ntype = key.split(".", 1)[0]
        if ntype in counts and x.shape[0] != counts[ntype]:
            raise MMKGError(f"feature {key!r} has {x.shape[0]} rows but the KG has {counts[ntype]} {ntype} nodes")


def _user_content(feats: dict[str, Tensor], tu: Tensor, ti: Tensor, num_users: int) -> tuple[Tensor | None, ...]:
    text = feats.get("item.text")
    if text is None:
        return None, None
    mask = feats.get("item.text_mask")
    keep = mask.bool()[ti] if mask is not None else torch.ones_like(ti, dtype=torch.bool)
    u, i = tu[keep], ti[keep]
    total = torch.zeros(num_users, text.shape[1], dtype=torch.float32).index_add_(0, u, text[i].float())
    count = torch.bincount(u, minlength=num_users).float()
    return total / count.clamp(min=1).unsqueeze(1), count > 0
