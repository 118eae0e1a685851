"""The Python API: a trained checkpoint as an object that recommends and explains, by external ids.

    from mmkgrec import Recommender

    rec = Recommender.load("runs/train/best.pt", kg="runs/kg")
    rec.recommend("196", k=5)                        # [Recommendation(item=..., score=..., rank=1), ...]
    rec.recommend(["196", "186"], k=5, exclude=["50"])   # {user id: [Recommendation, ...]}
    rec.recommend("196", k=5, only=["1", "2", "3"])  # rank only among these items
    rec.explain("196", "50")                         # [ExplanationPath(nodes=[...], relations=[...], ...), ...]

Ids are external ids, or their last path segment (``196`` for ``http://mmkgrec.dev/movielens/user/196``); what
comes back are full external ids. An unknown or ambiguous id raises :class:`UnknownIdError` naming it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from evaluation.checkpoint_scoring import LoadedCheckpoint
from evaluation.ranking import top_k_batch
from explanations.explainer import Explainer, load_explainer
from explanations.path_record import path_record
from explanations.text import NodeNamer, explanation_sentences
from kg.errors import MMKGError
from kg.model.node_ids import resolve_id


class UnknownIdError(MMKGError, LookupError):
    """A user or item id the checkpoint's KG does not hold (or that several ids end with)."""


@dataclass(frozen=True)
class Recommendation:
    """One recommended item: its external id, the model's score and its rank (1 = best)."""

    item: str
    score: float
    rank: int


@dataclass(frozen=True)
class ExplanationPath:
    """A path through the KG from the user to the item (the :mod:`kg.neo4j.recommendation_sink` fields).

    ``nodes``: external ids, user first, item last; ``labels``: ``User`` / ``Item`` / ``Entity`` of each node;
    ``relations``: the relation of each hop (``RATED`` for an interaction); ``directions``: ``out`` when the
    hop follows the KG edge, ``in`` against it; ``drop``: how much the model's score falls without the path's
    edges; ``text``: the path in words.
    """

    nodes: list[str]
    labels: list[str]
    relations: list[str]
    directions: list[str]
    drop: float
    text: str


class Recommender:
    """A trained model with its KG; build it with :meth:`load`."""

    def __init__(self, checkpoint: LoadedCheckpoint, explainer: Explainer) -> None:
        self.checkpoint, self.explainer, self.kg = checkpoint, explainer, checkpoint.kg
        self._score_fn = checkpoint.score_fn()
        self._namer = NodeNamer(self.kg, explainer.index)

    @classmethod
    def load(cls, checkpoint: str | Path, kg: str | Path | None = None, device: str = "cpu", candidates: int = 8,
             max_hops: int = 4) -> Recommender:
        """Load a ``train.py`` checkpoint with its KG directory (``kg``, default the one the checkpoint records).

        ``candidates`` paths per item are scored by the model when explaining, up to ``max_hops`` long. Raises
        :class:`kg.errors.MMKGError` (one line, naming the file) on a missing, corrupt or mismatched checkpoint.
        """
        ck, explainer = load_explainer(checkpoint, kg, device, candidates=candidates, max_hops=max_hops)
        return cls(ck, explainer)

    @property
    def users(self) -> list[str]:
        """Every user's external id."""
        return self.kg.ids("user")

    @property
    def items(self) -> list[str]:
        """Every item's external id."""
        return self.kg.ids("item")

    def _index(self, ntype: str, ext: str) -> int:
        try:
            return resolve_id(self.kg, ntype, str(ext))
        except MMKGError as e:
            raise UnknownIdError(str(e)) from None

    def recommend(self, user_ids: str | Iterable[str], k: int = 10, only: Iterable[str] | None = None,
                  exclude: Iterable[str] | None = None,
                  exclude_seen: bool = True) -> list[Recommendation] | dict[str, list[Recommendation]]:
        """The top ``k`` items of one user (a list) or of several (a dict: full user id -> list), best first.

        Args:
            user_ids: one user id or an iterable of them.
            k: list length (fewer when fewer items are left).
            only: rank only these items (``None``: the whole catalogue).
            exclude: never return these items.
            exclude_seen: leave out the items each user interacted with in training (default ``True``).

        Raises :class:`UnknownIdError` naming the first unknown user or item id; ``ValueError`` on ``k < 1``.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        single = isinstance(user_ids, str)
        users = [self._index("user", u) for u in ([user_ids] if single else list(user_ids))]
        n_items = self.kg.num_nodes("item")
        allowed = torch.ones(n_items, dtype=torch.bool)
        if only is not None:
            allowed = torch.zeros(n_items, dtype=torch.bool)
            allowed[[self._index("item", i) for i in only]] = True
        if exclude is not None:
            allowed[[self._index("item", i) for i in exclude]] = False
        out: dict[str, list[Recommendation]] = {}
        if users:
            with torch.no_grad():
                scores, items = top_k_batch(self._score_fn, torch.tensor(users), n_items,
                                            self.checkpoint.sets[0] if exclude_seen else None, min(k, n_items),
                                            allowed)
            for user, u_scores, u_items in zip(users, scores.tolist(), items.tolist(), strict=True):
                out[self.users[user]] = [Recommendation(self.items[i], float(s), r) for r, (s, i) in
                                         enumerate(zip(u_scores, u_items, strict=True), 1) if i >= 0]
        return next(iter(out.values())) if single else out

    def explain(self, user: str, item: str, paths: int = 3) -> list[ExplanationPath]:
        """Up to ``paths`` paths that carry ``item``'s score for ``user``, largest score drop first; an empty list
        when no path lowers the score (never an invented reason). Raises :class:`UnknownIdError`."""
        u, i = self._index("user", user), self._index("item", item)
        ex = self.explainer.explain(u, i, top=paths)
        namer = self._namer.for_user(u)
        words = explanation_sentences(namer, i, [sp.path for sp in ex.paths], ex.candidates)
        out = []
        for sp, text in zip(ex.paths, words, strict=False):
            rec = path_record(self.kg, sp)
            out.append(ExplanationPath(rec["path_nodes"], rec["path_labels"], rec["path_relations"],
                                       rec["path_directions"], float(sp.drop), text))
        return out
