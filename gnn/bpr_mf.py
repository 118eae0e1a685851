"""BPR-MF (Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009):
one free ID embedding per user and per item, scored by the dot product."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import Embedding

from gnn.graph_inputs import GraphInputs
from gnn.recommender import Batch, TrainableRecommender


class BPRMF(TrainableRecommender):
    r"""Matrix factorisation :math:`s_{ui} = \mathbf{p}_u^\top \mathbf{q}_i`, trained with the BPR loss by ``train.py``.

    Args:
        num_users (int): number of users ``U``.
        num_items (int): number of items ``I``.
        embedding_dim (int): embedding size ``d``.
    """

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64) -> None:
        super().__init__()
        self.num_users = num_users
        self.num_items = num_items
        self.embedding_dim = embedding_dim
        self.user_embedding = Embedding(num_users, embedding_dim)
        self.item_embedding = Embedding(num_items, embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform initialisation of both tables (as PyG's LightGCN)."""
        torch.nn.init.xavier_uniform_(self.user_embedding.weight)
        torch.nn.init.xavier_uniform_(self.item_embedding.weight)

    def forward(self, inputs: GraphInputs) -> tuple[Tensor, Tensor]:
        """The embedding tables ``(user_emb [U, d], item_emb [I, d])``; ``inputs`` is not read."""
        return self.user_embedding.weight, self.item_embedding.weight

    def ego_embeddings(self, batch: Batch) -> list[Tensor]:
        """The batch's rows ``[B, d]`` of users, positives and negatives (L2-regularised by ``train.py``)."""
        return [self.user_embedding(batch.users), self.item_embedding(batch.pos), self.item_embedding(batch.neg)]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.num_users}, {self.num_items}, {self.embedding_dim})"
