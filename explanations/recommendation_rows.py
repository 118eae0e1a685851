"""Every user's top-k recommendations with the best explanation path of each, as plain rows in batches of users:
what ``python explain.py export`` writes to Neo4j (:mod:`kg.neo4j.recommendation_sink`).

A row: ``{"user", "item"`` (external ids), ``"rank"`` (1 = best), ``"score"``, the path fields of
:func:`explanations.path_record.path_record` and ``"explanation"`` (the path in words)``}``. Items the user
interacted with in the split's TRAINING part are never recommended (as in :mod:`evaluation`). Users are scored a
batch at a time, so memory holds one batch of scores and rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from evaluation.ranking import top_k_batch
from explanations.explainer import Explainer
from explanations.path_record import path_record
from explanations.text import NodeNamer, explanation_sentences

if TYPE_CHECKING:
    from evaluation.checkpoint_scoring import LoadedCheckpoint


def recommendation_batches(ck: LoadedCheckpoint, explainer: Explainer | None, users: Sequence[int], k: int,
                           batch_size: int = 256) -> Iterator[tuple[list[str], list[dict[str, Any]]]]:
    """``(user ids, rows)`` per batch of ``batch_size`` users (see the module docstring); ``explainer=None``
    leaves the path fields empty (no explanation search)."""
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be >= 1, got {k}, {batch_size}")
    kg = ck.kg
    user_ids, item_ids = kg.ids("user"), kg.ids("item")
    score_fn, train = ck.score_fn(), ck.sets[0]
    namer = NodeNamer(kg, explainer.index if explainer else None)
    num_items = kg.num_nodes("item")
    for start in range(0, len(users), batch_size):
        batch = torch.as_tensor(list(users[start : start + batch_size]), dtype=torch.long)
        with torch.no_grad():
            scores, items = top_k_batch(score_fn, batch, num_items, train, min(k, num_items))
        rows = []
        for user, u_scores, u_items in zip(batch.tolist(), scores.tolist(), items.tolist(), strict=True):
            for rank, (score, item) in enumerate(zip(u_scores, u_items, strict=True), 1):
                if item < 0:
                    break
                row = {"user": user_ids[user], "item": item_ids[item], "rank": rank, "score": float(score)}
                if explainer is not None:
                    ex = explainer.explain(user, item, top=1)
                    best = ex.paths[0] if ex.paths else None
                    row.update(path_record(kg, best))
                    row["explanation"] = explanation_sentences(namer.for_user(user), item,
                                                               [best.path] if best else [], ex.candidates)[0]
                rows.append(row)
        yield [user_ids[u] for u in batch.tolist()], rows
