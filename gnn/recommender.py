"""The interface every recommender implements, and :func:`recommend` / :func:`make_score_fn`.

Two kinds of recommenders:

* :class:`TrainableRecommender` (an ``nn.Module``): ``forward(inputs) -> (user_emb [U, d], item_emb [I, d])``,
  scored by the dot product. ``train.py`` trains it with BPR on the training edges; a model adds its own
  terms through :meth:`~TrainableRecommender.ego_embeddings` (L2-regularised, as LightGCN) and
  :meth:`~TrainableRecommender.loss_terms` (extra weighted losses, e.g. contrastive).
* :class:`FittedRecommender`: closed-form / counting models (MostPop, EASE, content KNN):
  ``fit(train_user, train_item, num_users, num_items)`` then ``score(users) -> [B, I]``.

Baselines register in ``gnn.baselines.BASELINES: dict[str, RecommenderFactory]``; ``train.py`` calls
``BASELINES[name](inputs, embedding_dim=..., num_layers=..., **baseline_options)``. A factory must accept
(and may ignore) ``embedding_dim`` and ``num_layers``; other keywords come from the config's
``baseline_options`` table, and an unknown one raises ``TypeError`` (reported as a config error).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gnn.graph_inputs import GraphInputs

ScoreFn = Callable[[Tensor], Tensor]
"""``score_fn(users [B] int64) -> scores [B, I]`` float, higher is better (what evaluation ranks)."""


@dataclass
class Batch:
    """A BPR mini-batch: ``users`` ``[B]``, positive items ``pos`` ``[B]``, negatives ``neg`` ``[B]``."""

    users: Tensor
    pos: Tensor
    neg: Tensor


@dataclass
class Rows:
    """The final-embedding rows a training step reads: ``users`` and ``items`` (positives and negatives), int64
    of any shape, repeats allowed."""

    users: Tensor
    items: Tensor


class TrainableRecommender(nn.Module, ABC):
    """Base class of embedding models trained by gradient descent."""

    supports_rows = False
    """``forward(inputs, rows=Rows(...))`` is accepted (training steps pass it): the result need only be exact at
    those users' and items' rows, which is all a step reads (its ranking loss, :meth:`loss_terms` and
    :meth:`positive_score_correction` read the batch's rows only); a model may skip work for the others."""

    def prepare(self, inputs: GraphInputs) -> None:
        """Build what the model derives from ``inputs`` once (graph structure, frozen item-item graphs), before
        the first training step (``train.py`` times it apart from the epochs); default: nothing. Forward builds
        it too when it is missing or the inputs changed."""

    @abstractmethod
    def forward(self, inputs: GraphInputs) -> tuple[Tensor, Tensor]:
        """Final embeddings ``(user_emb [U, d], item_emb [I, d])``; ``score(u, i) = <user_emb[u], item_emb[i]>``."""

    def ego_embeddings(self, batch: Batch) -> list[Tensor]:
        """The batch's layer-0 parameters to L2-regularise (``train.py`` adds
        ``l2_weight * sum(||x||^2) / (2 B)``); default: none."""
        return []

    def loss_terms(
        self, inputs: GraphInputs, user_emb: Tensor, item_emb: Tensor, batch: Batch
    ) -> dict[str, Tensor]:
        """Extra loss terms, already weighted, added to BPR (name -> scalar); default: none."""
        return {}

    def positive_score_correction(self, batch: Batch, user_emb: Tensor, item_emb: Tensor) -> Tensor | None:
        """``[B]`` added to the training score of each ``(users, pos)`` pair, e.g. to remove the positive's
        own contribution to its user's embedding (no self-reconstruction); default: ``None`` (nothing)."""
        return None

    def score_fn(self, inputs: GraphInputs) -> ScoreFn:
        """A scorer over all items; computes the embeddings once (no grad, eval mode). With an active
        ``closed_form`` branch (:class:`gnn.closed_form_blend.ClosedFormBlend`) its term over the inputs'
        training rows is added to the dot products."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            user_emb, item_emb = self(inputs)
        self.train(was_training)
        base = embedding_score_fn(user_emb, item_emb)
        branch = getattr(self, "closed_form", None)  # gnn.closed_form_blend.ClosedFormBlend, train.py attaches it
        if branch is None or not branch.active:
            return base
        return branch.blended(base, branch.history(inputs.train_user, inputs.train_item, inputs.num_users))


class FittedRecommender(ABC):
    """Base class of non-trainable recommenders (fit once, then score)."""

    @abstractmethod
    def fit(self, train_user: Tensor, train_item: Tensor, num_users: int, num_items: int) -> None:
        """Fit on the training interactions ``train_user``, ``train_item`` ``[E]`` int64."""

    @abstractmethod
    def score(self, users: Tensor) -> Tensor:
        """Scores ``[B, I]`` of every item for ``users`` ``[B]`` (higher is better)."""


RecommenderFactory = Callable[..., TrainableRecommender | FittedRecommender]


def embedding_score_fn(user_emb: Tensor, item_emb: Tensor) -> ScoreFn:
    """Dot-product scorer ``users [B] -> user_emb[users] @ item_emb.T [B, I]``."""

    def score(users: Tensor) -> Tensor:
        return user_emb[users.to(user_emb.device)] @ item_emb.T

    return score


def make_score_fn(model: TrainableRecommender | FittedRecommender | tuple[Tensor, Tensor],
                  inputs: GraphInputs | None = None) -> ScoreFn:
    """A :data:`ScoreFn` for a trainable model (needs ``inputs``), a fitted one, or ``(user_emb, item_emb)``."""
    if isinstance(model, tuple):
        return embedding_score_fn(*model)
    if isinstance(model, TrainableRecommender):
        if inputs is None:
            raise ValueError("a trainable recommender needs the GraphInputs to score")
        return model.score_fn(inputs)
    if isinstance(model, FittedRecommender):
        return model.score
    raise TypeError(f"not a recommender: {type(model).__name__}")


def recommend(
    model_or_embs: TrainableRecommender | FittedRecommender | tuple[Tensor, Tensor],
    users: Tensor,
    k: int,
    exclude: tuple[Tensor, Tensor] | None = None,
    inputs: GraphInputs | None = None,
) -> tuple[Tensor, Tensor]:
    """Top-``k`` items for ``users`` ``[B]``.

    Args:
        model_or_embs: a recommender or final ``(user_emb [U, d], item_emb [I, d])``.
        users: ``[B]`` int64 user indices.
        k: list length (clipped to the number of items).
        exclude: ``(user [E], item [E])`` pairs never recommended (typically the training interactions).
        inputs: the :class:`GraphInputs`, needed by trainable models.

    Returns:
        ``(scores [B, k], items [B, k])``, best first; excluded items score ``-inf``.
    """
    scores = make_score_fn(model_or_embs, inputs)(users).float().clone()
    if exclude is not None:
        mask_scores(scores, users, *exclude)
    return torch.topk(scores, min(k, scores.shape[1]), dim=1)


def mask_scores(scores: Tensor, users: Tensor, ex_user: Tensor, ex_item: Tensor) -> Tensor:
    """Set ``scores[b, i] = -inf`` (in place) wherever ``(users[b], i)`` is an ``(ex_user, ex_item)`` pair."""
    dev = scores.device
    users, ex_user, ex_item = users.to(dev), ex_user.to(dev), ex_item.to(dev)
    size = int(max(users.max().item() if users.numel() else 0, ex_user.max().item() if ex_user.numel() else 0)) + 1
    row_of = torch.full((size,), -1, dtype=torch.long, device=dev)
    row_of[users] = torch.arange(users.shape[0], device=dev)
    rows = row_of[ex_user]
    keep = rows >= 0
    scores[rows[keep], ex_item[keep]] = float("-inf")
    return scores
