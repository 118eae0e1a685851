"""Post-hoc score terms for :mod:`benchmarks.quality_headroom`: what could be added to a trained model's scores.

Each family maps the binary training history ``X [U, I]`` (scipy CSR) and the model's inputs to candidate
terms ``T [U, I]`` (dense float64), one per parameter value; the headroom benchmark blends each with the model's
scores and chooses the parameter and the weight on validation.

* ``ease``: ``X B``, EASE's item-item weights (:func:`gnn.ease.ease_weights`) for each L2;
* ``cease``: EASE on ``[X; a E^T]``, the KG's item-entity incidence ``E [I, Ent]`` stacked under ``X`` as extra
  rows (each entity a pseudo-user of its items; "collective" EASE with side information), for each ``(a, L2)``;
* ``gfcf``: ``X R~^T R~``, ``R~ = D_u^-1/2 X D_i^-1/2`` (GF-CF's linear filter);
* ``lowpass``: ``X D_i^-1/2 V V^T D_i^1/2``, ``V`` the top-``k`` right singular vectors of ``R~`` (GF-CF's ideal
  low-pass filter), for each ``k``;
* ``content``: ``X S``, ``S`` the sum of the frozen item-item graphs of the model's content and the KG
  (:func:`gnn.item_item_graphs.build_item_graphs`: text, image, CLIP-text kNN and KG co-entity);
* ``kg``: ``X S_kg``, the KG co-entity graph alone;
* ``popularity``: ``log(1 + n_i)`` for every user (the items' training counts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from gnn.ease import ease_weights, item_gram
from gnn.graph_inputs import GraphInputs
from gnn.item_item_graphs import GRAPH_FEATURES, build_item_graphs, co_entity_incidence

EASE_REGS = (100.0, 300.0, 1000.0, 3000.0)
CEASE_GRID = tuple((a, r) for a in (0.3, 1.0, 3.0) for r in (200.0, 500.0, 1000.0))
LOWPASS_KS = (64, 256)
GRAPH_K = 10  # neighbours per item of the frozen graphs (configs/ml100k.toml's item_graph_k)

Terms = Iterator[tuple[str, np.ndarray]]


def normalized_history(x: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(R~, d_i)``: ``R~ = D_u^-1/2 X D_i^-1/2`` and the items' degrees ``d_i`` (zeros kept as 1)."""
    du = np.maximum(np.asarray(x.sum(1)).ravel(), 1.0)
    di = np.maximum(np.asarray(x.sum(0)).ravel(), 1.0)
    return sp.csr_matrix(sp.diags(du ** -0.5) @ x @ sp.diags(di ** -0.5)), di


def ease_terms(x: sp.csr_matrix, regs: tuple[float, ...] = EASE_REGS) -> Terms:
    gram = item_gram(x)
    for reg in regs:
        yield f"L2 {reg:g}", x @ ease_weights(gram, reg).double().numpy()


def cease_terms(x: sp.csr_matrix, incidence: sp.csr_matrix, grid: tuple = CEASE_GRID) -> Terms:
    gram, side = item_gram(x), torch.from_numpy((incidence @ incidence.T).toarray())
    for a, reg in grid:
        yield f"a {a:g}, L2 {reg:g}", x @ ease_weights(gram + a * a * side, reg).double().numpy()


def gfcf_terms(x: sp.csr_matrix) -> Terms:
    r, _ = normalized_history(x)
    yield "linear", np.asarray((x @ (r.T @ r)).todense())


def lowpass_terms(x: sp.csr_matrix, ks: tuple[int, ...] = LOWPASS_KS) -> Terms:
    r, di = normalized_history(x)
    top = max((k for k in ks if k < min(r.shape)), default=0)  # svds needs k < min(U, I)
    if not top:
        return
    _, s, vt = spla.svds(r, k=top, random_state=0)
    v = vt[np.argsort(-s)].T  # [I, top], by decreasing singular value
    for k in (k for k in ks if k <= top):
        yield f"k {k}", (x @ sp.diags(di ** -0.5)) @ v[:, :k] @ (v[:, :k].T * np.sqrt(di)[None, :])


def graph_terms(x: sp.csr_matrix, inputs: GraphInputs, names: list[str]) -> Terms:
    graphs = build_item_graphs(names, inputs.features, inputs.kg_head, inputs.kg_tail, inputs.num_items, GRAPH_K)
    if graphs:
        s = sum(g.to_dense().double().numpy() for g in graphs.values())
        yield "+".join(graphs), np.asarray(x @ s)


def popularity_terms(x: sp.csr_matrix) -> Terms:
    pop = np.log1p(np.asarray(x.sum(0)).ravel())
    yield "log(1 + n_i)", np.broadcast_to(pop, x.shape).copy()


def families(x: sp.csr_matrix, inputs: GraphInputs) -> dict[str, Callable[[], Terms]]:
    """``family -> () -> (parameter label, T [U, I])`` (lazy: one family's terms in memory at a time)."""
    incidence, _ = co_entity_incidence(inputs.kg_head, inputs.kg_tail, inputs.num_items)
    out: dict[str, Callable[[], Terms]] = {
        "ease": lambda: ease_terms(x), "gfcf": lambda: gfcf_terms(x), "lowpass": lambda: lowpass_terms(x),
        "popularity": lambda: popularity_terms(x)}
    if incidence.nnz:
        out["cease"] = lambda: cease_terms(x, incidence)
        out["kg"] = lambda: graph_terms(x, inputs, ["kg"])
    content = [g for g, key in GRAPH_FEATURES.items() if key in inputs.features]
    if content:
        out["content"] = lambda: graph_terms(x, inputs, content + (["kg"] if incidence.nnz else []))
    return out
