"""Content kNN for cold-start items: a user is the mean of the (L2-normalised) text embeddings of the
items in their training history, and every item is scored by its cosine similarity to that profile.

Items never seen in training (cold items) are scored like any other, from their text alone; items
without text score ``-1`` (below every item that has text)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gnn.recommender import FittedRecommender


class ContentKNN(FittedRecommender):
    r"""Score :math:`s_{ui} = \cos\big(\tfrac{1}{|H_u|}\sum_{j \in H_u} \hat{\mathbf{t}}_j,\ \mathbf{t}_i\big)`,
    :math:`H_u` the user's training items with text, :math:`\hat{\mathbf{t}}` unit-normalised text embeddings.

    Args:
        item_text (Tensor): item text embeddings ``[I, D]``.
        item_text_mask (Tensor, optional): ``[I]`` bool, the item has text (default: every item).
    """

    def __init__(self, item_text: Tensor, item_text_mask: Tensor | None = None) -> None:
        if item_text.dim() != 2:
            raise ValueError(f"item_text must be [I, D], got shape {tuple(item_text.shape)}")
        mask = torch.ones(item_text.shape[0], dtype=torch.bool) if item_text_mask is None else item_text_mask.bool()
        self.mask = mask.cpu()
        self.items = F.normalize(item_text.detach().float().cpu(), dim=1) * self.mask.unsqueeze(1)
        self.profile: Tensor | None = None  # [U, D], unit norm (zero for users without text history)

    def fit(self, train_user: Tensor, train_item: Tensor, num_users: int, num_items: int) -> None:
        """Build each user's profile ``[D]`` from their training items ``[E]`` that have text."""
        if num_items != self.items.shape[0]:
            raise ValueError(f"ContentKNN has text for {self.items.shape[0]} items, fit got {num_items}")
        user = torch.as_tensor(train_user, dtype=torch.long)
        item = torch.as_tensor(train_item, dtype=torch.long)
        keep = self.mask[item]
        total = torch.zeros(num_users, self.items.shape[1]).index_add_(0, user[keep], self.items[item[keep]])
        self.profile = F.normalize(total, dim=1)  # the mean's direction; cosine ignores the 1/|H_u|

    def score(self, users: Tensor) -> Tensor:
        """Cosine similarities ``[B, I]`` of the users' profiles to every item (``-1`` for items without text)."""
        if self.profile is None:
            raise RuntimeError("ContentKNN.score called before fit")
        scores = self.profile[users.long().cpu()] @ self.items.T
        return scores.masked_fill(~self.mask.unsqueeze(0), -1.0)
