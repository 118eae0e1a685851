"""Load a train.py checkpoint with its KG, rebuild its split and inputs, and score with its weights.

:func:`load_checkpoint` reads the checkpoint with ``torch.load(weights_only=True)`` (no pickled code runs),
loads the KG directory (``--kg`` or the one the checkpoint records), refuses a KG whose external ids differ
from the checkpoint's id maps, rebuilds the split from the recorded method / ratios / seed, loads the
features (checking the encoder identities) and builds the model the way train.py does (its builder
functions are imported, not copied), then loads the weights.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from evaluation.ranking import UserItemSets, build_user_item_sets
from gnn.graph_inputs import GraphInputs
from gnn.recommender import FittedRecommender, ScoreFn, TrainableRecommender, make_score_fn
from kg.errors import MMKGError
from kg.model.graph import NODE_TYPES, KnowledgeGraph
from kg.model.splits import Split, make_split
from training.config import TrainConfig
from training.model_factory import build_model as build_configured_model
from training.model_factory import load_features


class CheckpointError(MMKGError):
    """A checkpoint is missing, unreadable, or does not match the KG / features it is evaluated with."""


@dataclass
class LoadedCheckpoint:
    """A trained model ready to score, with the data it was trained on.

    ``sets`` holds the ``(train, valid, test)`` per-user item sets of the rebuilt split; ``inputs`` the model
    inputs built from the training interactions only.
    """

    path: Path
    kg_dir: Path
    checkpoint: dict[str, Any]
    kg: KnowledgeGraph
    split: Split
    sets: tuple[UserItemSets, UserItemSets, UserItemSets]
    inputs: GraphInputs
    model: TrainableRecommender | FittedRecommender
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    def score_fn(self, inputs: GraphInputs | None = None) -> ScoreFn:
        """``users [B] -> scores [B, I]`` of the trained model on ``inputs`` (default: the clean inputs)."""
        inp = (inputs or self.inputs).to(self.device)
        if isinstance(self.model, TrainableRecommender):
            self.model.eval()
        return make_score_fn(self.model, inp)

    def score_fn_for_inputs(self):
        """``inputs -> score_fn`` for robustness runs; only models that read their inputs qualify."""
        if not isinstance(self.model, TrainableRecommender):
            raise CheckpointError(f"{self.path}: {type(self.model).__name__} is fitted once and does not read "
                                  "GraphInputs when scoring; robustness needs a trainable model")
        return self.score_fn

    def recorded_metrics(self, split: str) -> dict[str, float]:
        """The ``split`` metrics train.py stored in the checkpoint (``{"ndcg@20": ...}``), if any."""
        metrics = self.checkpoint.get("metrics") or {}
        found = metrics.get(split, {}) if isinstance(metrics.get(split), dict) else \
            {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith(f"{split}/")}
        return {k: float(v) for k, v in found.items() if isinstance(v, int | float)}

    def describe(self) -> dict[str, Any]:
        """JSON-ready metadata for reports: checkpoint, KG, split, model, encoders."""
        c = self.checkpoint
        return {"checkpoint": str(self.path), "checkpoint_sha256": self.extra.get("sha256"), "kg_dir": str(self.kg_dir),
                "model": _model_name(c), "split": {"method": self.split.method, "seed": self.split.seed,
                                                   **({"ratios": list(_split_info(c).get("ratios", []))})},
                "encoders": dict(c.get("encoders") or {}), "dataset": {t: self.kg.num_nodes(t) for t in NODE_TYPES},
                "train_config": dict(c.get("config") or {})}


def _model_name(c: dict[str, Any]) -> str:
    return str((c.get("config") or {}).get("model") or c.get("model") or "?")


def _split_info(c: dict[str, Any]) -> dict[str, Any]:
    info = c.get("split")
    return info if isinstance(info, dict) else {}


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint dict, loaded without running pickled code; errors name the file."""
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several unrelated types for a bad file
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") \
            from e
    if not isinstance(ck, dict) or "model_state" not in ck:
        raise CheckpointError(f"{path}: not a train.py checkpoint (no 'model_state')")
    return ck


def check_id_maps(ck: dict[str, Any], kg: KnowledgeGraph, path: Path, kg_dir: Path) -> None:
    """Raise :class:`CheckpointError` unless the KG's external ids equal the checkpoint's, type by type."""
    maps = ck.get("id_maps")
    if not isinstance(maps, dict):
        raise CheckpointError(f"{path}: the checkpoint records no id maps")
    for t in NODE_TYPES:
        want, have = maps.get(t), kg.ids(t)
        if want is None:
            continue
        if isinstance(want, str):  # a digest of the ids
            if want != ids_digest(have):
                raise CheckpointError(f"{kg_dir}: {t} ids differ from those of checkpoint {path}")
            continue
        if list(want) != list(have):
            i = next((j for j, (a, b) in enumerate(zip(want, have, strict=False)) if a != b), min(len(want), len(have)))
            raise CheckpointError(f"{kg_dir}: {t} ids differ from those of checkpoint {path} ({len(have)} vs "
                                  f"{len(want)} {t}s, first difference at index {i})")


def ids_digest(ids: list[str]) -> str:
    """sha256 of the ids joined by newlines (how checkpoints record the long entity id list)."""
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rebuild_split(ck: dict[str, Any], kg: KnowledgeGraph, path: Path) -> Split:
    """The split train.py used, rebuilt from the recorded method / ratios / seed (and checked on cold items)."""
    info = _split_info(ck)
    if "seed" not in info:
        raise CheckpointError(f"{path}: the checkpoint records no split seed")
    split = make_split(kg.interactions(), str(info.get("method", info.get("kind", "random"))),
                       tuple(info.get("ratios", (0.8, 0.1, 0.1))), int(info["seed"]),
                       float(info.get("cold_fraction", 0.1)), float(info.get("train_fraction", 1.0)))
    if "cold_items" in info and list(info["cold_items"]) != split.cold_items.tolist():
        raise CheckpointError(f"{path}: the rebuilt {split.method} split holds other cold items than the recorded ones")
    return split


def load_features_for(ck: dict[str, Any], kg: KnowledgeGraph, kg_dir: Path, path: Path) -> dict[str, torch.Tensor]:
    """The features the model was trained with (train.py's loader on ``kg_dir``), checked against the
    encoder identities the checkpoint records; no features when it records none."""
    identities = dict(ck.get("encoders") or {})
    if not identities:
        return {}
    feats, found = load_features(TrainConfig(kg=str(kg_dir), use_features=True), kg)
    if not feats:
        raise CheckpointError(f"{kg_dir / 'features'}: no features, but checkpoint {path} was trained with "
                              f"{', '.join(sorted(identities))}")
    for key in sorted(set(identities) | set(found)):
        if found.get(key) != identities.get(key):
            raise CheckpointError(f"{kg_dir / 'features'}: feature {key!r} was made by {found.get(key)!r}, "
                                  f"checkpoint {path} used {identities.get(key)!r}")
    return feats


def load_checkpoint(path: str | Path, kg_dir: str | Path | None = None, device: str = "cpu") -> LoadedCheckpoint:
    """Everything needed to score a checkpoint; see the module docstring."""
    path = Path(path)
    ck = read_checkpoint(path)
    recorded = ck.get("kg_dir") or (ck.get("config") or {}).get("kg")
    if kg_dir is None and not recorded:
        raise CheckpointError(f"{path}: the checkpoint records no KG directory; pass --kg")
    kg_path = Path(kg_dir if kg_dir is not None else recorded)
    kg = KnowledgeGraph.load(kg_path)
    check_id_maps(ck, kg, path, kg_path)
    split = rebuild_split(ck, kg, path)
    inter = kg.interactions()
    nu, ni = kg.num_nodes("user"), kg.num_nodes("item")
    parts = split.parts(inter)
    sets = tuple(build_user_item_sets(p.user, p.item, nu, ni) for p in parts)
    feats = load_features_for(ck, kg, kg_path, path)
    inputs, model = build_model(ck, kg, parts[0], feats, path)
    if isinstance(model, torch.nn.Module):
        model.to(device)
    return LoadedCheckpoint(path, kg_path, ck, kg, split, sets, inputs, model, device,  # type: ignore[arg-type]
                            {"sha256": _file_sha256(path)})


def build_model(ck: dict[str, Any], kg: KnowledgeGraph, train_part, feats: dict[str, torch.Tensor], path: Path):
    """``(inputs, model)``: train.py's ``build_graph_inputs`` + ``build_model`` with the checkpoint's weights
    (a fitted baseline, stored without weights, is refitted on the same training interactions)."""
    from gnn.graph_inputs import build_graph_inputs

    inputs = build_graph_inputs(kg, train_part, feats)
    try:
        model = build_configured_model(dict(ck.get("config") or {"model": _model_name(ck)}), inputs)
    except MMKGError as e:
        raise CheckpointError(f"{path}: {e}") from e
    if isinstance(model, FittedRecommender):
        model.fit(inputs.train_user, inputs.train_item, inputs.num_users, inputs.num_items)
    else:
        try:
            model.load_state_dict(ck["model_state"])
        except RuntimeError as e:
            raise CheckpointError(f"{path}: weights do not fit the model ({str(e).splitlines()[0]})") from e
    return inputs, model
