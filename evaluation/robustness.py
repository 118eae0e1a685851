"""Robustness of a trained model: score the same weights after perturbing its INPUTS (never retraining).

Perturbations are pure functions on a :class:`~gnn.graph_inputs.GraphInputs`: they return a new object and
leave the original (tensors, feature dict) untouched. Every random choice comes from ``seed``.

* ``drop_kg_edges``: remove ``round(level * T)`` of the ``T`` KG triples (each triple is stored forward and
  reversed; both directions go together);
* ``add_kg_edges``: add ``round(level * T)`` random triples (uniform head / tail over items + entities, a
  uniform forward relation; no self loop, none already present), with their reverses;
* ``no_image`` / ``no_text``: zero every image (text) feature and set its mask to False, as if no node had
  that input; ``no_text`` also empties the users' text-content aggregate. These have no level;
* ``noisy_interactions``: add ``round(level * E)`` random (user, item) pairs that are not training pairs to
  the propagation graph (``train_user`` / ``train_item`` / ``ui_adj``); the evaluation masks stay those of
  the split, so noise is an input, not history.

Level 0 is the unperturbed model (the clean row of the table). Every perturbed copy holds a new ``train_user``
tensor (equal values when unchanged), so a model that caches structures per inputs object rebuilds them
instead of silently reusing the clean graph. A model that cannot run on a perturbed input (e.g. one whose
parameter shapes depend on the KG's structure) gets its row marked failed with the error, never a number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from evaluation import EvaluationError
from gnn.graph_inputs import GraphInputs, normalized_bipartite_adjacency

LEVELLED: tuple[str, ...] = ("drop_kg_edges", "add_kg_edges", "noisy_interactions")
MODALITIES: tuple[str, ...] = ("image", "text")
PERTURBATIONS: tuple[str, ...] = LEVELLED + tuple(f"no_{m}" for m in MODALITIES)
SCHEMA_VERSION = 1


def _forward_triples(inputs: GraphInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(head, tail, rel)`` of the forward half of the KG edge list, checking the forward/reverse layout."""
    h, t, r = (x.detach().cpu().numpy() for x in (inputs.kg_head, inputs.kg_tail, inputs.kg_rel))
    n = h.size // 2
    n_rel = inputs.num_relations // 2
    if h.size % 2 or not (np.array_equal(h[n:], t[:n]) and np.array_equal(t[n:], h[:n])
                          and np.array_equal(r[n:], r[:n] + n_rel)):
        raise EvaluationError("KG edges are not laid out as forward triples followed by their reverses")
    return h[:n], t[:n], r[:n]


def _with_kg(inputs: GraphInputs, h: np.ndarray, t: np.ndarray, r: np.ndarray) -> GraphInputs:
    dev = inputs.kg_head.device
    n_rel = inputs.num_relations // 2
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)).to(dev)  # noqa: E731
    return replace(inputs, kg_head=as_t(np.concatenate([h, t])), kg_tail=as_t(np.concatenate([t, h])),
                   kg_rel=as_t(np.concatenate([r, r + n_rel])), features=dict(inputs.features),
                   train_user=inputs.train_user.clone())


def _count(level: float, total: int) -> int:
    if not 0.0 <= level:
        raise EvaluationError(f"perturbation level must be >= 0, got {level}")
    return int(round(level * total))


def drop_kg_edges(inputs: GraphInputs, level: float, seed: int = 0) -> GraphInputs:
    """A copy without ``round(level * T)`` randomly chosen KG triples (``level`` in [0, 1])."""
    if level > 1.0:
        raise EvaluationError(f"cannot drop more than all KG edges (level {level})")
    h, t, r = _forward_triples(inputs)
    n_drop = _count(level, h.size)
    keep = np.sort(np.random.default_rng(seed).permutation(h.size)[n_drop:])
    return _with_kg(inputs, h[keep], t[keep], r[keep])


def _sample_new_keys(n_new: int, existing: np.ndarray, sample: Callable[[np.random.Generator, int], np.ndarray],
                     capacity: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """``n_new`` distinct int64 keys drawn by ``sample`` that are not in ``existing`` (sorted unique)."""
    if n_new > capacity - existing.size:
        raise EvaluationError(f"cannot add {n_new} {what}: only {capacity - existing.size} are possible")
    chosen = np.zeros(0, np.int64)
    while chosen.size < n_new:
        draw = sample(rng, 2 * (n_new - chosen.size) + 16)
        draw = draw[draw >= 0]
        draw = draw[~np.isin(draw, existing) & ~np.isin(draw, chosen)]
        _, first = np.unique(draw, return_index=True)
        chosen = np.concatenate([chosen, draw[np.sort(first)][: n_new - chosen.size]])
    return chosen


def add_kg_edges(inputs: GraphInputs, level: float, seed: int = 0) -> GraphInputs:
    """A copy with ``round(level * T)`` new random KG triples (forward + reverse) appended."""
    h, t, r = _forward_triples(inputs)
    n_add = _count(level, h.size)
    n_nodes, n_rel = inputs.num_kg_nodes, inputs.num_relations // 2
    if n_add == 0:
        return _with_kg(inputs, h, t, r)
    if n_rel == 0:
        raise EvaluationError("cannot add KG edges: the inputs have no KG relation")
    width = n_nodes * n_nodes

    def sample(rng: np.random.Generator, n: int) -> np.ndarray:
        hh, tt, rr = rng.integers(0, n_nodes, n), rng.integers(0, n_nodes, n), rng.integers(0, n_rel, n)
        return np.where(hh == tt, -1, rr * width + hh * n_nodes + tt)

    existing = np.unique(r * width + h * n_nodes + t)
    new = _sample_new_keys(n_add, existing, sample, n_rel * n_nodes * (n_nodes - 1),
                           np.random.default_rng(seed), "KG edges")
    rest = new % width
    return _with_kg(inputs, np.concatenate([h, rest // n_nodes]), np.concatenate([t, rest % n_nodes]),
                    np.concatenate([r, new // width]))


def modality_keys(inputs: GraphInputs, modality: str) -> list[str]:
    """Feature keys (masks excluded) of ``modality``: ``"image"`` or ``"text"`` in the part after the node type."""
    if modality not in MODALITIES:
        raise EvaluationError(f"unknown modality {modality!r} (expected one of {', '.join(MODALITIES)})")
    return sorted(k for k in inputs.features
                  if not k.endswith("_mask") and modality in k.split(".", 1)[-1])


def remove_modality(inputs: GraphInputs, modality: str) -> GraphInputs:
    """A copy where every ``modality`` feature is zero and masked out (the text aggregate too for text)."""
    keys = modality_keys(inputs, modality)
    feats = dict(inputs.features)
    for key in keys:
        x = feats[key]
        feats[key] = torch.zeros_like(x)
        feats[f"{key}_mask"] = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    changes: dict[str, Any] = {"features": feats, "train_user": inputs.train_user.clone()}
    if modality == "text" and inputs.user_content is not None:
        changes["user_content"] = torch.zeros_like(inputs.user_content)
        changes["user_content_mask"] = torch.zeros(inputs.num_users, dtype=torch.bool,
                                                   device=inputs.user_content.device)
    return replace(inputs, **changes)


def add_noisy_interactions(inputs: GraphInputs, level: float, seed: int = 0) -> GraphInputs:
    """A copy whose propagation graph holds ``round(level * E)`` extra random non-training (user, item) pairs."""
    u, i = inputs.train_user.cpu().numpy(), inputs.train_item.cpu().numpy()
    n_users, n_items = inputs.num_users, inputs.num_items
    n_add = _count(level, u.size)
    existing = np.unique(u.astype(np.int64) * n_items + i)
    new = _sample_new_keys(n_add, existing, lambda rng, n: rng.integers(0, n_users * n_items, n),
                           n_users * n_items, np.random.default_rng(seed), "interactions")
    nu, ni = np.concatenate([u, new // n_items]), np.concatenate([i, new % n_items])
    dev = inputs.train_user.device
    return replace(inputs, train_user=torch.from_numpy(nu).to(dev), train_item=torch.from_numpy(ni).to(dev),
                   ui_adj=normalized_bipartite_adjacency(nu, ni, n_users, n_items).to(inputs.ui_adj.device),
                   features=dict(inputs.features))


def perturb(inputs: GraphInputs, name: str, level: float = 1.0, seed: int = 0) -> GraphInputs:
    """Apply perturbation ``name`` (one of :data:`PERTURBATIONS`) at ``level``."""
    if name == "drop_kg_edges":
        return drop_kg_edges(inputs, level, seed)
    if name == "add_kg_edges":
        return add_kg_edges(inputs, level, seed)
    if name == "noisy_interactions":
        return add_noisy_interactions(inputs, level, seed)
    if name.startswith("no_") and name[3:] in MODALITIES:
        return remove_modality(inputs, name[3:])
    raise EvaluationError(f"unknown perturbation {name!r} (expected one of {', '.join(PERTURBATIONS)})")


def run_robustness(inputs: GraphInputs, score_for: Callable[[GraphInputs], Callable],
                   evaluate: Callable[[Callable, str], Mapping[str, float]], levels: Sequence[float],
                   perturbations: Sequence[str] = PERTURBATIONS, seed: int = 0, progress: bool = True,
                   meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score the model on the clean inputs and on every perturbation x level.

    Args:
        inputs: the clean model inputs.
        score_for: ``inputs -> score_fn`` (the trained model run on those inputs, weights unchanged).
        evaluate: ``(score_fn, tag) -> {"recall@20": mean, ...}`` on the evaluation split.
        levels: perturbation levels (fractions); 0 is the clean row, computed once.

    Returns the JSON-ready table ``{"schema_version", "meta", "clean": {metric: v}, "rows": [{"perturbation",
    "level", "metrics", "kg_triples", "train_interactions"}], "skipped": {perturbation: reason}}``.
    """
    unknown = [p for p in perturbations if p not in PERTURBATIONS]
    if unknown:
        raise EvaluationError(f"unknown perturbation {unknown[0]!r} (expected one of {', '.join(PERTURBATIONS)})")
    levels = sorted({float(x) for x in levels} - {0.0})
    jobs = [(p, lv) for p in perturbations if p in LEVELLED for lv in levels]
    skipped: dict[str, str] = {}
    for p in perturbations:
        if p not in LEVELLED:
            if modality_keys(inputs, p[3:]):
                jobs.append((p, 1.0))
            else:
                skipped[p] = f"the model inputs hold no {p[3:]} feature"
    clean = dict(evaluate(score_for(inputs), "clean"))
    rows = [_row("none", 0.0, clean, inputs)]
    for p, lv in tqdm(jobs, desc="robustness", unit="run", disable=not progress):
        perturbed = perturb(inputs, p, lv, seed)
        try:
            rows.append(_row(p, lv, dict(evaluate(score_for(perturbed), f"{p}@{lv:g}")), perturbed))
        except RuntimeError as e:  # the model cannot run on this input: reported in the table, not hidden
            rows.append({**_row(p, lv, {}, perturbed), "error": f"{type(e).__name__}: {str(e).splitlines()[0]}"})
    return {"schema_version": SCHEMA_VERSION, "meta": {**dict(meta or {}), "seed": seed, "levels": [0.0, *levels]},
            "clean": clean, "rows": rows, "skipped": skipped}


def _row(name: str, level: float, metrics: dict[str, float], inputs: GraphInputs) -> dict[str, Any]:
    return {"perturbation": name, "level": level, "metrics": metrics,
            "kg_triples": int(inputs.kg_head.numel() // 2), "train_interactions": int(inputs.train_user.numel())}


def render_robustness(table: Mapping[str, Any], markdown: bool = False) -> str:
    """The table as fixed-width text (or Markdown): one row per perturbation and level, each metric with its
    change relative to the clean model."""
    names = list(table["clean"])
    header = ["perturbation", "level", "KG triples", "train pairs"] + names
    body = []
    for r in table["rows"]:
        cells = []
        for n in names:
            v, c = r["metrics"].get(n), table["clean"].get(n)
            rel = f" ({v / c - 1:+.1%})" if v is not None and c and r["perturbation"] != "none" else ""
            cells.append(("failed" if "error" in r else "n/a") if v is None else f"{v:.4f}{rel}")
        level = "removed" if r["perturbation"].startswith("no_") else f"{r['level']:g}"
        body.append([r["perturbation"], level, str(r["kg_triples"]), str(r["train_interactions"])] + cells)
    notes = [f"{p}: skipped ({why})" for p, why in table.get("skipped", {}).items()]
    notes += [f"{r['perturbation']} @ {r['level']:g}: failed ({r['error']})" for r in table["rows"] if "error" in r]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines + ([""] + [f"- {n}" for n in notes] if notes else []))
    rows = [header] + body
    widths = [max(len(x[i]) for x in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(x, widths, strict=True)).rstrip() for x in rows]
    return "\n".join(lines + notes)
