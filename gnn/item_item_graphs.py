"""Frozen item-item graphs from content features and from the KG (LATTICE / FREEDOM), built once per inputs.

* :func:`knn_graph`: each item's ``k`` most cosine-similar items by one modality's features (``item.text``,
  ``item.image``, ``item.clip_text``); items without the feature have no edges.
* :func:`co_entity_graph`: items linked through the KG entities they share, each shared entity weighted by
  its IDF ``log(I / deg(e))`` (a genre shared by 700 films says less than a director shared by 3); the
  ``k`` heaviest per item.

Both are symmetrised (an edge when either end chose the other, :func:`symmetric_normalized`) and
degree-normalised ``D^-1/2 A D^-1/2`` with binary ``A`` (FREEDOM's form), as sparse CSR ``[I, I]`` without
self-loops. The top-k runs over row blocks, so the dense similarity never exceeds ``block x I``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

GRAPH_FEATURES = {"text": "item.text", "image": "item.image", "clip_text": "item.clip_text"}
GRAPH_NAMES = (*GRAPH_FEATURES, "kg")


def symmetric_normalized(row: np.ndarray, col: np.ndarray, n: int) -> Tensor:
    """Sparse CSR ``[n, n]``: ``D^-1/2 A D^-1/2`` of ``A = max(B, B^T)`` with ``B[row, col] = 1`` (self-loops
    and duplicates dropped); rows of nodes without edges are empty."""
    row, col = np.asarray(row, np.int64), np.asarray(col, np.int64)
    keep = row != col
    b = sp.csr_matrix((np.ones(int(keep.sum()), np.int32), (row[keep], col[keep])), shape=(n, n))
    a = (b + b.T).tocsr()  # the pattern of max(B, B^T), duplicates summed into one entry
    a.sum_duplicates()
    a.sort_indices()
    crow, c = a.indptr.astype(np.int64), a.indices.astype(np.int64)
    deg = np.diff(crow).astype(np.float64)
    inv = np.zeros(n)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    r = np.repeat(np.arange(n), np.diff(crow))
    return torch.sparse_csr_tensor(torch.from_numpy(crow), torch.from_numpy(c),
                                   torch.from_numpy((inv[r] * inv[c]).astype(np.float32)), size=(n, n),
                                   dtype=torch.float32, check_invariants=False)


def knn_graph(x: Tensor, k: int, present: Tensor | None = None, block: int = 1024) -> Tensor:
    """The symmetric, normalised ``k``-nearest-neighbour graph (cosine) of the rows of ``x [n, D]``; rows
    with ``present`` false (or an all-zero feature) are neither chosen nor choose."""
    n = x.shape[0]
    x = F.normalize(x.detach().float().cpu(), dim=1)
    ok = x.norm(dim=1) > 0
    if present is not None:
        ok &= present.detach().bool().cpu()
    k = min(k, int(ok.sum()) - 1)
    if k < 1:
        return symmetric_normalized(np.zeros(0), np.zeros(0), n)
    rows, cols = [], []
    for start in range(0, n, block):
        sim = x[start:start + block] @ x.T
        sim[:, ~ok] = float("-inf")
        idx = torch.arange(start, min(start + block, n))
        sim[idx - start, idx] = float("-inf")  # no self-loops
        top = sim.topk(k, dim=1).indices
        use = ok[idx]
        rows.append(idx[use].repeat_interleave(k))
        cols.append(top[use].flatten())
    return symmetric_normalized(torch.cat(rows).numpy(), torch.cat(cols).numpy(), n)


def co_entity_incidence(kg_head: Tensor, kg_tail: Tensor, num_items: int):
    """``(B, idf)``: ``scipy.sparse`` CSR ``B [I, E]``, ``B[i, e] = 1`` when item ``i`` links to entity ``e``
    (either direction, distinct pairs), and ``idf [E] = log(I / deg(e))``."""

    h, t = kg_head.detach().cpu().numpy().astype(np.int64), kg_tail.detach().cpu().numpy().astype(np.int64)
    is_pair = (h < num_items) & (t >= num_items)
    item, ent = h[is_pair], t[is_pair] - num_items
    n_ent = int(ent.max()) + 1 if ent.size else 0
    key = np.unique(item * max(n_ent, 1) + ent)
    item, ent = key // max(n_ent, 1), key % max(n_ent, 1)
    deg = np.bincount(ent, minlength=n_ent).astype(np.float64)
    idf = np.log(num_items / np.maximum(deg, 1.0))
    return sp.csr_matrix((np.ones(item.size), (item, ent)), shape=(num_items, n_ent)), idf


def co_entity_weights(kg_head: Tensor, kg_tail: Tensor, num_items: int):
    """``scipy.sparse`` CSR ``[I, I]``: ``W[i, j] = sum_e idf(e)`` over the entities ``e`` both items link to
    (:func:`co_entity_incidence`); zero diagonal. Whole: for small graphs (:func:`co_entity_graph` builds it
    block by block)."""

    b, idf = co_entity_incidence(kg_head, kg_tail, num_items)
    w = (b @ sp.diags(idf) @ b.T).tocsr()
    w.setdiag(0.0)
    w.eliminate_zeros()
    return w


def co_entity_graph(kg_head: Tensor, kg_tail: Tensor, num_items: int, k: int, block: int = 512) -> Tensor:
    """The symmetric, normalised graph of each item's ``k`` heaviest co-entity neighbours
    (:func:`co_entity_weights`; ties broken by the lower item id), ``block`` rows of ``W`` at a time: ``W`` is
    never whole (popular entities make it dense: at 1M triples over 50k items it would not fit in memory)."""

    b, idf = co_entity_incidence(kg_head, kg_tail, num_items)
    bw, bt = (b @ sp.diags(idf)).tocsr(), b.T.tocsr()
    rows, cols = [], []
    for start in range(0, num_items, block):
        r, c = top_k_edges(torch.from_numpy((bw[start:start + block] @ bt).toarray()), k, start)
        rows.append(r)
        cols.append(c)
    return symmetric_normalized(np.concatenate(rows), np.concatenate(cols), num_items)


def top_k_edges(w: Tensor, k: int, start: int = 0, rows: Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` of each row's ``k`` largest positive entries of the dense block ``w [b, I]`` (rows
    ``start..start+b-1``, or the item ids ``rows [b]``; the diagonal skipped; ties broken by the lower column)."""
    b, n = w.shape
    rows = torch.arange(start, start + b) if rows is None else rows.long()
    key = w.to(torch.float64, copy=True)
    key[torch.arange(b), rows] = 0.0
    off = ~(key > 0)
    key.mul_(1e8).round_().masked_fill_(off, float("-inf"))  # rounded: sums in another order tie alike
    if key.numel() and float(key.max().clamp(min=0.0)) * n < 2.0 ** 52:
        # equal weights: the lower column first, as one exact float64 key, so top-k needs no full sort
        unique = key.mul_(n).add_(n - 1 - torch.arange(n, dtype=torch.float64))
        values, idx = torch.topk(unique, min(k, n), dim=1)
    else:
        values, idx = torch.sort(key, dim=1, descending=True, stable=True)
        values, idx = values[:, :k], idx[:, :k]
    ok = torch.isfinite(values)
    return rows.unsqueeze(1).expand_as(ok)[ok].numpy(), idx[ok].numpy()


def build_item_graphs(names: list[str], features: dict[str, Tensor], kg_head: Tensor, kg_tail: Tensor,
                      num_items: int, k: int) -> dict[str, Tensor]:
    """Graph name (``text`` / ``image`` / ``clip_text`` / ``kg``) -> normalised CSR ``[I, I]``."""
    out = {}
    for name in names:
        if name == "kg":
            out[name] = co_entity_graph(kg_head, kg_tail, num_items, k)
            continue
        key = GRAPH_FEATURES[name]
        if key not in features:
            raise ValueError(f"item graph {name!r} needs the {key!r} feature, which these inputs lack")
        out[name] = knn_graph(features[key], k, features.get(f"{key}_mask"))
    return out
