"""The explanation pipeline of one trained model: :class:`Explainer` and :func:`load_explainer`.

Candidate paths come from :class:`kg.paths.path_search.PathIndex` (on the split's TRAINING interactions); each is
scored by the model's score drop when its edges are masked (:mod:`explanations.scoring`; candidates are first
ranked by the drop of their first hop alone), and the best ones are kept. ``explain.py`` and the Python API
(:mod:`mmkgrec`) both use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from explanations.pair_masking import Pairs, mask_pairs
from explanations.scoring import ScoreFor, model_scorers
from explanations.text import Explanation, rank_paths
from gnn.graph_inputs import GraphInputs
from kg.model.graph import KnowledgeGraph
from kg.paths.path_search import KGPath, PathIndex, path_pairs, pick_candidates

if TYPE_CHECKING:
    from evaluation.checkpoint_scoring import LoadedCheckpoint


class Explainer:
    """Explanation paths for one model: ``index`` on the TRAINING interactions, the model's ``inputs``,
    ``score_for(inputs) -> score_fn``, optional exact ``masked_scores(user, item, [pairs, ...])``,
    ``candidates`` scored per item, ``search`` options of :meth:`PathIndex.find_paths`."""

    def __init__(self, kg: KnowledgeGraph, index: PathIndex, inputs: GraphInputs, score_for: ScoreFor,
                 masked_scores: Callable[[int, int, list[Pairs]], list[float]] | None = None,
                 candidates: int = 8, **search) -> None:
        self.kg, self.index, self.inputs, self.score_for = kg, index, inputs, score_for
        self.masked_scores, self.candidates, self.search = masked_scores, candidates, search
        self._base, self._cache = score_for(inputs), (-1, torch.zeros(0))

    def scores(self, user: int) -> Tensor:
        """The model's scores ``[I]`` of every item for ``user`` (unmasked graph)."""
        if self._cache[0] != user:
            with torch.no_grad():
                self._cache = (user, self._base(torch.tensor([user])).reshape(-1).float().cpu())
        return self._cache[1]

    def masked(self, user: int, item: int, masks: list[Pairs]) -> list[float]:
        """``s(user, item)`` with every edge between each mask's node pairs removed (one score per mask)."""
        with torch.no_grad():
            if self.masked_scores is not None:
                return list(self.masked_scores(user, item, masks))
            return [float(self.score_for(mask_pairs(self.inputs, m))(torch.tensor([user]))[0, item]) for m in masks]

    def drops(self, user: int, item: int, paths: list[KGPath]) -> list[float]:
        """Score drop of each path (its edges masked)."""
        base = float(self.scores(user)[item])
        return [base - v for v in self.masked(user, item, [path_pairs(p) for p in paths])] if paths else []

    def pick(self, user: int, item: int, paths: list[KGPath]) -> list[KGPath]:
        """The candidates: each distinct first hop (the user's own interaction or profile edge) of ``paths`` is
        masked alone, paths rank by their first hop's score drop (then prior), spread over shapes."""
        if not paths:
            return []
        firsts = list(dict.fromkeys(path_pairs(p)[0] for p in paths))
        base = float(self.scores(user)[item])
        drop = dict(zip(firsts, (base - v for v in self.masked(user, item, [[h] for h in firsts])), strict=True))
        rank = sorted(range(len(paths)), key=lambda k: (-drop[path_pairs(paths[k])[0]], k))
        return pick_candidates([paths[k] for k in rank], self.candidates)

    def explain(self, user: int, item: int, top: int = 3) -> Explanation:
        """The ``top`` candidates by score drop (> 0 only); none -> an empty list, never an invented path."""
        t0 = time.perf_counter()
        found = self.index.find_paths(user, item, **self.search)
        cands = self.pick(user, item, found.paths)
        return Explanation(user, item, float(self.scores(user)[item]), rank_paths(cands, self.drops(user, item, cands),
                           top), len(found.paths), found.truncated, time.perf_counter() - t0)


def load_explainer(checkpoint: str | Path, kg_dir: str | Path | None = None, device: str = "cpu", candidates: int = 8,
                   **search) -> tuple[LoadedCheckpoint, Explainer]:
    """``(loaded checkpoint, Explainer)``: the checkpoint's KG and model (:mod:`evaluation.checkpoint_scoring`),
    a path index on its split's TRAINING interactions, the model's scorers (:func:`model_scorers`)."""
    from evaluation.checkpoint_scoring import load_checkpoint

    ck = load_checkpoint(checkpoint, kg_dir, device=device)
    index = PathIndex(ck.kg, ck.split.parts(ck.kg.interactions())[0])
    return ck, Explainer(ck.kg, index, ck.inputs, *model_scorers(ck), candidates=candidates, **search)
