"""The configuration of train.py: one dataclass, every field commented, loadable from TOML and
overridable by ``--key value`` flags (``--key=value``, dashes or underscores). An unknown key is an error."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from kg.errors import MMKGError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


class ConfigError(MMKGError):
    """A bad configuration file or flag (unknown key, wrong type)."""


@dataclass
class TrainConfig:
    # ---- data
    kg: str = ""  # saved KG directory (kg.model.storage layout); features are read from <kg>/features when present
    out: str = "runs/default"  # output directory: checkpoints, metrics, TensorBoard logs, embeddings
    use_features: bool = True  # load <kg>/features (False: ID / graph only)
    split: str = "random"  # random | temporal | cold_item (kg/model/splits.py)
    split_ratios: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train / valid / test, per user
    split_seed: int = 2020  # seed of the split (recorded in checkpoints)
    cold_fraction: float = 0.1  # share of items held out by the cold_item split
    train_fraction: float = 1.0  # < 1: keep this share of each user's training pairs (seeded, >= 1 kept; sparse regime)
    # ---- model
    model: str = "mmkg"  # "mmkg" (the full model) or a baseline name from gnn.baselines.BASELINES
    baseline_options: dict[str, Any] = field(default_factory=dict)  # extra keyword options of a baseline factory
    embedding_dim: int = 64  # width d of every embedding
    num_layers: int = 2  # LightGCN layers on the user-item graph
    kg_layers: int = 2  # relation-attention layers on the item-entity KG
    use_id: bool = True  # learnable user / item ID embeddings (False: content-only, serves cold items)
    use_kg: bool = True  # knowledge-aware propagation over the KG relations
    use_text: bool = True  # text-LM features (items, entities, user aggregates / profiles)
    use_image: bool = True  # image features of items
    use_clip_text: bool = True  # CLIP text-tower features of items
    use_profile: bool = True  # user -> profile-entity edges and profile text
    use_entity_text: bool = False  # text features of KG entities too (costly: one projection per entity)
    use_item_item: bool = False  # FISM-style learned item-item term (user = + sum of history context vectors)
    normalize: bool = False  # L2-normalise final embeddings (cosine scores; pair with softmax_temperature)
    feature_dropout: float = 0.0  # dropout on input features
    item_id_dropout: float = 0.0  # DropoutNet: drop item IDs w.p. p per step; > 0: untrained items served by content
    kg_prune_leaves: bool = True  # drop KG entities with a single neighbour (they only repeat its ID)
    item_graphs: str = ""  # frozen item-item graphs, comma list of text, image, clip_text (feature kNN), kg (co-entity)
    item_graph_k: int = 10  # neighbours per item in each item-item graph (top-k cosine / IDF-weighted co-entities)
    item_graph_layers: int = 1  # hops of item-embedding propagation over each item-item graph
    item_graph_fusion: str = "attention"  # attention (per item, over the graphs) | weights (learned, softmax) | mean
    item_graph_weight: float = 0.0  # initial (or fixed) scalar weight of the item-graph term added to the items
    item_graph_learn_weight: bool = True  # learn that weight (False: fixed at item_graph_weight, as FREEDOM's 1)
    item_graph_stage: str = "post"  # post: add after the user-item propagation (FREEDOM) | pre: before it (LATTICE)
    item_graph_dropout: float = 0.0  # share of item-item graph edges dropped per training step
    # ---- losses
    loss: str = "bpr"  # bpr | softmax (sampled softmax, num_negatives) | full_softmax (every item; L2 on all rows)
    num_negatives: int = 1  # negatives per positive
    shared_negatives: bool = False  # one negative set for the whole batch (cheap for many negatives)
    negative_sampling: str = "uniform"  # uniform | popularity (count ** 0.75)
    softmax_temperature: float = 1.0  # temperature of the softmax loss
    user_weight_power: float = 0.0  # weigh a user's pairs by n_items ** -p (0: every pair alike, 1: every user)
    l2_weight: float = 1e-4  # L2 on the batch's ego embeddings, sum ||x||^2 / (2B)
    contrastive_weight: float = 0.0  # cross-modal InfoNCE (image / text / collaborative views of items)
    contrastive_temperature: float = 0.2  # InfoNCE temperature
    kg_loss_weight: float = 0.0  # TransE loss on KG triples
    # ---- optimisation
    epochs: int = 300  # maximum number of epochs
    batch_size: int = 2048  # training edges per step (per process under --distributed)
    lr: float = 1e-3  # Adam learning rate
    weight_decay: float = 0.0  # Adam weight decay (all parameters)
    ema_decay: float = 0.0  # > 0: validate, select and keep an exponential moving average of the weights
    content_refresh: int = 1  # mmkg: content / KG / item-graph terms every N steps, reused between (training/epoch.py)
    # ---- closed-form item-item branch (gnn/closed_form_blend.py), fitted after training
    ease_blend: bool = False  # add w * X_u B (EASE's B, solved on the training pairs) to the trained model's scores
    ease_blend_regs: list[float] = field(default_factory=lambda: [100.0, 200.0, 300.0, 500.0, 1000.0, 2000.0])  # L2s
    ease_blend_weights: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0])  # w (x scale)
    # ---- validation, early stopping
    eval_every: int = 5  # validate every N epochs
    patience: int = 5  # stop after this many validations without improvement
    main_metric: str = "ndcg@20"  # validation metric for early stopping / model selection
    ks: list[int] = field(default_factory=lambda: [10, 20, 50])  # cut-offs reported
    eval_batch_size: int = 1024  # users ranked at once
    test_resamples: int = 1000  # bootstrap resamples for test confidence intervals
    # ---- runtime
    seed: int = 0  # seed of initialisation, shuffling and negative sampling
    deterministic: bool = True  # torch.use_deterministic_algorithms (warn-only)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch.set_num_threads (0 = torch default)
    resume: bool = False  # continue from <out>/last.pt
    distributed: bool = False  # DistributedDataParallel under torchrun (gloo on CPU, nccl on GPU)
    neighbor_sampling: bool = False  # neighbour-sampled mini-batches (needs pyg-lib or torch-sparse)
    tensorboard: bool = True  # write TensorBoard scalars to <out>/tb
    progress: bool = True  # tqdm bar per epoch


RESUME_INVARIANT = (  # fields --resume refuses to see changed
    "kg", "split", "split_ratios", "split_seed", "cold_fraction", "model", "embedding_dim", "num_layers", "kg_layers",
    "use_id", "use_kg", "use_text", "use_image", "use_clip_text", "use_profile", "use_entity_text", "use_item_item",
    "baseline_options", "seed", "batch_size", "loss", "ema_decay", "item_id_dropout", "train_fraction", "item_graphs",
    "item_graph_k", "item_graph_layers", "item_graph_fusion", "item_graph_stage")


FLOAT_LISTS = ("split_ratios", "ease_blend_regs", "ease_blend_weights")
CHOICES = {"split": ("random", "temporal", "cold_item"), "loss": ("bpr", "softmax", "full_softmax"),
           "negative_sampling": ("uniform", "popularity"), "item_graph_fusion": ("attention", "weights", "mean"),
           "item_graph_stage": ("pre", "post")}


def _field_types() -> dict[str, Any]:
    return {f.name: (f.default if f.default is not MISSING else f.default_factory()) for f in fields(TrainConfig)}


def _coerce(key: str, value: Any, default: Any, where: str) -> Any:
    """``value`` (a TOML value or a flag string) converted to the type of ``default``."""
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            low = str(value).lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"expected true/false, got {value!r}")
            return low in ("true", "1", "yes")
        if isinstance(default, int):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(f"expected an integer, got {value!r}")
            return int(value)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError(f"expected a number, got {value!r}")
            return float(value)
        if isinstance(default, list):
            items = value if isinstance(value, list) else [v for v in str(value).split(",") if v.strip()]
            kind = float if key in FLOAT_LISTS else int
            return [kind(v) for v in items]
        if isinstance(default, dict):
            out = value if isinstance(value, dict) else json.loads(value)
            if not isinstance(out, dict):
                raise ValueError("expected a table / JSON object")
            return out
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: bad value for {key!r}: {e}") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """The key/value pairs of a TOML config (flat, or grouped in tables whose keys are flattened;
    ``baseline_options`` stays a table)."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML ({e})") from None
    flat: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(v, dict) and k != "baseline_options":
            flat.update(v)
        else:
            flat[k] = v
    return flat


def parse_config(argv: list[str]) -> TrainConfig:
    """``[--config FILE] [--key value ...]`` -> :class:`TrainConfig` (flags override the file)."""
    defaults = _field_types()
    if "-h" in argv or "--help" in argv:
        print("usage: train.py [--config FILE.toml] [--key value ...]   (every key: training.config.py TrainConfig)")
        for f in fields(TrainConfig):
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            print(f"  --{f.name} {default!r}")
        raise SystemExit(0)
    values: dict[str, Any] = {}
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(argv):
        tok = argv[pos]
        pos += 1
        if not tok.startswith("--"):
            raise ConfigError(f"unexpected argument {tok!r} (flags are --key value)")
        key, eq, val = tok[2:].partition("=")
        key = key.replace("-", "_")
        if not eq:
            nxt = argv[pos] if pos < len(argv) else None
            if nxt is None or (nxt.startswith("--") and isinstance(defaults.get(key), bool)):
                if not isinstance(defaults.get(key), bool):
                    raise ConfigError(f"flag --{key} needs a value")
                val = "true"  # a bare boolean flag
            else:
                val = nxt
                pos += 1
        pairs.append((key, val))
    for key, val in pairs:
        if key == "config":
            for k, v in load_toml(val).items():
                if k not in defaults:
                    raise ConfigError(f"{val}: unknown config key {k!r}")
                values[k] = _coerce(k, v, defaults[k], val)
    for key, val in pairs:
        if key == "config":
            continue
        if key not in defaults:
            raise ConfigError(f"unknown flag --{key}")
        values[key] = _coerce(key, val, defaults[key], f"--{key}")
    cfg = TrainConfig(**values)
    check_config(cfg)
    return cfg


def check_config(cfg: TrainConfig) -> None:
    for key, allowed in CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {getattr(cfg, key)!r}")
    if not cfg.kg:
        raise ConfigError("no KG directory: pass --kg DIR (or set kg in the config file)")
    for key in ("epochs", "batch_size", "eval_every", "patience", "num_negatives", "embedding_dim", "content_refresh"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    for key in ("ema_decay", "item_id_dropout", "item_graph_dropout"):
        if not 0.0 <= getattr(cfg, key) < 1.0:
            raise ConfigError(f"{key} must be in [0, 1), got {getattr(cfg, key)}")
    if not 0.0 < cfg.train_fraction <= 1.0:
        raise ConfigError(f"train_fraction must be in (0, 1], got {cfg.train_fraction}")
    from gnn.item_item_graphs import GRAPH_NAMES

    bad = [g for g in cfg.item_graphs.split(",") if g.strip() and g.strip() not in GRAPH_NAMES]
    if bad:
        raise ConfigError(f"item_graphs: unknown graph {bad[0]!r} (a comma list of {', '.join(GRAPH_NAMES)})")
    if cfg.item_graph_k < 1 or cfg.item_graph_layers < 1:
        raise ConfigError("item_graph_k and item_graph_layers must be >= 1")
    if cfg.item_id_dropout > 0 and not cfg.use_id:
        raise ConfigError("item_id_dropout drops item ID embeddings: it needs use_id true")
    clash = [k for k, on in (("model other than mmkg", cfg.model != "mmkg"), ("item_id_dropout", cfg.item_id_dropout),
                             ("contrastive_weight", cfg.contrastive_weight), ("kg_loss_weight", cfg.kg_loss_weight),
                             ("distributed", cfg.distributed)) if on]
    if cfg.content_refresh > 1 and clash:
        raise ConfigError(f"content_refresh > 1 reuses the mmkg content terms across steps: not with {clash[0]}")
    if cfg.ease_blend and (not cfg.ease_blend_regs or min(cfg.ease_blend_regs) <= 0 or not cfg.ease_blend_weights
                           or min(cfg.ease_blend_weights) < 0):
        raise ConfigError("ease_blend: ease_blend_regs must be positive numbers and ease_blend_weights numbers >= 0, "
                          f"both non-empty (got {cfg.ease_blend_regs}, {cfg.ease_blend_weights})")


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as plain data (str / numbers / lists / dicts), safe for ``torch.load(weights_only=True)``."""
    return asdict(cfg)


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available on this machine")
        return torch.device(f"cuda:{local_rank}" if name == "cuda" else name)
    if name != "cpu":
        raise ConfigError(f"--device must be auto, cpu or cuda[:N], got {name!r}")
    return torch.device("cpu")
