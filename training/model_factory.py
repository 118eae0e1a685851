"""The model a training config names, and the node features it reads: shared by train.py and evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gnn.graph_inputs import GraphInputs
from gnn.recommender import FittedRecommender, TrainableRecommender
from kg.model.graph import KnowledgeGraph
from training.config import ConfigError, TrainConfig, config_dict


def build_model(cfg: TrainConfig | dict[str, Any], inputs: GraphInputs) -> TrainableRecommender | FittedRecommender:
    """The model named by ``cfg.model`` ("mmkg" or a key of ``gnn.baselines.BASELINES``), sized from ``inputs``."""
    c = config_dict(cfg) if isinstance(cfg, TrainConfig) else {**config_dict(TrainConfig(kg="-")), **cfg}
    if c["model"] == "mmkg":
        from gnn.mmkg_model import MMKGModel, MMKGOptions

        names = MMKGOptions.__dataclass_fields__
        return MMKGModel.from_inputs(inputs, MMKGOptions(**{k: c[k] for k in names}))
    from gnn.baselines import BASELINES

    if c["model"] not in BASELINES:
        raise ConfigError(f"unknown model {c['model']!r} (mmkg or one of {', '.join(sorted(BASELINES))})")
    try:
        return BASELINES[c["model"]](inputs, embedding_dim=c["embedding_dim"], num_layers=c["num_layers"],
                                     **c["baseline_options"])
    except TypeError as e:
        raise ConfigError(f"baseline_options for {c['model']}: {e}") from None


def load_features(cfg: TrainConfig, kg: KnowledgeGraph) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``<kg>/features`` when present and wanted, else no features."""
    fdir = Path(cfg.kg) / "features"
    if not cfg.use_features or not fdir.is_dir():
        return {}, {}
    from encoders.features import load_features as load

    feats = load(fdir, kg)
    return dict(feats), dict(feats.identities)
