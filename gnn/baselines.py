"""The baseline recommenders and the :data:`BASELINES` registry that ``train.py`` builds them from.

``BASELINES[name](inputs, embedding_dim=..., num_layers=..., **options)`` returns an unfitted
:class:`~gnn.recommender.FittedRecommender` (``mostpop``, ``ease``, ``content_knn``) or a freshly
initialised :class:`~gnn.recommender.TrainableRecommender` (``bpr_mf``, ``lightgcn``, ``lightgcn_pyg``). Every factory
accepts and may ignore ``embedding_dim`` / ``num_layers``; an unknown option raises ``TypeError``.
"""

from __future__ import annotations

from gnn.bpr_mf import BPRMF
from gnn.content_knn import ContentKNN
from gnn.ease import EASE
from gnn.graph_inputs import GraphInputs
from gnn.lightgcn_baseline import LightGCNBaseline, PyGLightGCN
from gnn.mostpop import MostPop
from gnn.recommender import RecommenderFactory
from kg.errors import MMKGError

__all__ = ["BASELINES", "BPRMF", "ContentKNN", "EASE", "LightGCNBaseline", "MostPop", "PyGLightGCN"]


def _mostpop(inputs: GraphInputs, embedding_dim: int = 64, num_layers: int = 3) -> MostPop:
    return MostPop()


def _ease(inputs: GraphInputs, embedding_dim: int = 64, num_layers: int = 3, reg_weight: float = 250.0) -> EASE:
    return EASE(reg_weight)


def _bpr_mf(inputs: GraphInputs, embedding_dim: int = 64, num_layers: int = 3) -> BPRMF:
    return BPRMF(inputs.num_users, inputs.num_items, embedding_dim)


def _lightgcn(inputs: GraphInputs, embedding_dim: int = 64, num_layers: int = 3) -> LightGCNBaseline:
    return LightGCNBaseline(inputs.num_users, inputs.num_items, embedding_dim, num_layers)


def _lightgcn_pyg(inputs: GraphInputs, embedding_dim: int = 64, num_layers: int = 3) -> PyGLightGCN:
    return PyGLightGCN(inputs.num_users, inputs.num_items, embedding_dim, num_layers)


def _content_knn(inputs: GraphInputs, embedding_dim: int = 64, num_layers: int = 3,
                 feature: str = "item.text") -> ContentKNN:
    found = inputs.feature(feature)
    if found is None:
        have = ", ".join(sorted(inputs.features)) or "none"
        raise MMKGError(f"content_knn needs the {feature!r} feature (features present: {have}); run the encoders")
    return ContentKNN(*found)


BASELINES: dict[str, RecommenderFactory] = {
    "mostpop": _mostpop,
    "ease": _ease,
    "bpr_mf": _bpr_mf,
    "lightgcn": _lightgcn,
    "lightgcn_pyg": _lightgcn_pyg,
    "content_knn": _content_knn,
}
"""Baseline name -> factory ``(inputs, embedding_dim=, num_layers=, **options) -> recommender``."""
