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
    model = _named_model(c, inputs)
    if c["ease_blend"]:  # the closed-form item-item branch, off (weight 0) until train.py fits it after training
        if not isinstance(model, TrainableRecommender):
            raise ConfigError(f"ease_blend adds a closed-form branch to a trained embedding model; {c['model']!r} "
                              "is fitted, not trained: set ease_blend false")
        from gnn.closed_form_blend import ClosedFormBlend

        try:
            model.closed_form = ClosedFormBlend(inputs.num_items)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return model


def _named_model(c: dict[str, Any], inputs: GraphInputs) -> TrainableRecommender | FittedRecommender:
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
