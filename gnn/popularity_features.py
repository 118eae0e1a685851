r"""The content features a :class:`~gnn.popularity_prior.PopularityPrior` reads, per item ``[I, F]``:

- each modality's embedding (``item.text``, ``item.image``, ``item.clip_text``: zero rows where missing) and its
  presence mask as a 0/1 column (:func:`embedding_features`);
- per KG relation between items and entities :math:`r` (:func:`kg_popularity_features`): the log-degree
  :math:`\log(1 + |N_r(i)|)`, and the mean over the item's :math:`r`-neighbours :math:`e` of the mean
  :math:`\log(1 + n_j)` of the *other* warm items :math:`j \ne i` linked to :math:`e` by :math:`r` (how popular
  the films of this director, of these actors, of this genre are), the warm mean where none.

Only warm items' training counts enter, and never an item's own count, so the features of a warm item
are as a cold item's would be."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from kg.model.graph import KnowledgeGraph

ItemEntityPairs = Mapping[str, tuple[Tensor, Tensor]]
"""relation -> ``(item index [E], entity index [E])``."""


def embedding_features(blocks: Sequence[tuple[Tensor, Tensor | None]]) -> Tensor:
    """``[I, sum(D) + len(blocks)]``: every ``(embedding [I, D], mask [I] or None)`` with its mask column."""
    cols = []
    for emb, mask in blocks:
        m = torch.ones(emb.shape[0], dtype=torch.bool) if mask is None else mask.bool()
        cols += [emb.float() * m.unsqueeze(1), m.float().unsqueeze(1)]
    return torch.cat(cols, dim=1)


def item_entity_pairs(kg: KnowledgeGraph) -> dict[str, tuple[Tensor, Tensor]]:
    """Every relation between items and entities of ``kg`` (either direction, named by its direction:
    ``rel`` for item -> entity, ``rel (in)`` for entity -> item) as ``(item [E], entity [E])``."""
    out = {}
    for src_t, rel, dst_t in kg.edge_types():
        src, dst = kg.triples((src_t, rel, dst_t))
        if (src_t, dst_t) == ("item", "entity"):
            out[rel] = (torch.as_tensor(src, dtype=torch.long), torch.as_tensor(dst, dtype=torch.long))
        elif (src_t, dst_t) == ("entity", "item"):
            out[f"{rel} (in)"] = (torch.as_tensor(dst, dtype=torch.long), torch.as_tensor(src, dtype=torch.long))
    return out


def kg_popularity_features(pairs: ItemEntityPairs, counts: Tensor, warm_mask: Tensor) -> Tensor:
    """``[I, 2 R]``: per relation (sorted by name) the item's log-degree and its neighbours' leave-self-out warm
    popularity (see the module docstring); ``counts`` ``[I]`` training interactions, ``warm_mask`` ``[I]``."""
    n_items = counts.shape[0]
    warm = warm_mask.bool().double()
    y = torch.log1p(counts.double().clamp(min=0)) * warm
    fallback = float(y.sum() / warm.sum().clamp(min=1))
    cols = []
    for rel in sorted(pairs):
        item, ent = (t.long() for t in pairs[rel])
        if item.numel() and (int(item.min()) < 0 or int(item.max()) >= n_items):
            raise ValueError(f"relation {rel!r}: item index out of range [0, {n_items})")
        n_ent = int(ent.max()) + 1 if ent.numel() else 0
        degree = torch.zeros(n_items, dtype=torch.float64).index_add_(0, item, torch.ones(item.numel()).double())
        ent_sum = torch.zeros(n_ent, dtype=torch.float64).index_add_(0, ent, y[item])
        ent_cnt = torch.zeros(n_ent, dtype=torch.float64).index_add_(0, ent, warm[item])
        other_sum, other_cnt = ent_sum[ent] - y[item], ent_cnt[ent] - warm[item]
        has = other_cnt > 0
        value = torch.where(has, other_sum / other_cnt.clamp(min=1), torch.zeros_like(other_sum))
        tot = torch.zeros(n_items, dtype=torch.float64).index_add_(0, item, value)
        num = torch.zeros(n_items, dtype=torch.float64).index_add_(0, item, has.double())
        neighbour = torch.where(num > 0, tot / num.clamp(min=1), torch.full_like(tot, fallback))
        cols += [torch.log1p(degree), neighbour]
    if not cols:
        return torch.zeros(n_items, 0)
    return torch.stack(cols, dim=1).float()


EMBEDDING_KEYS: tuple[str, ...] = ("item.text", "item.image", "item.clip_text")


def prior_features(
    features: Mapping[str, Tensor], pairs: ItemEntityPairs, counts: Tensor, warm_mask: Tensor,
    keys: Sequence[str] = EMBEDDING_KEYS,
) -> tuple[Tensor, list[int]]:
    """``(features [I, F], groups)`` for :meth:`PopularityPrior.fit`: the embeddings of ``keys`` present in
    ``features`` (a node-feature dict with ``<key>_mask`` entries), one group each, then the KG columns of
    :func:`kg_popularity_features`, one group per column."""
    blocks = [(features[k], features.get(f"{k}_mask")) for k in keys if k in features]
    emb = [embedding_features([b]) for b in blocks]
    kg_cols = kg_popularity_features(pairs, counts, warm_mask)
    groups = [e.shape[1] for e in emb] + [1] * kg_cols.shape[1]
    return torch.cat([*emb, kg_cols], dim=1), groups
