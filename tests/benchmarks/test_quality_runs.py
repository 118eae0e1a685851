"""benchmarks/quality_runs.py: which of the config's item-item graphs a dataset's features allow."""

import json

from benchmarks.quality_coldstart import COLD_VARIANTS
from benchmarks.quality_runs import FULL, ON, PREV, available_item_graphs
from training.config import parse_config


def test_item_graphs_are_the_configs_whose_features_the_dataset_has(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[model]\nitem_graphs = "text,image,clip_text,kg"\n')
    (tmp_path / "kg" / "features").mkdir(parents=True)
    (tmp_path / "kg" / "features" / "features.json").write_text(json.dumps({"counts": {"item.text": 5}}))
    assert available_item_graphs(tmp_path / "kg", config) == "text,kg"
    assert available_item_graphs(tmp_path / "none", config) == "kg"  # no features at all: the KG graph only


def test_the_pinned_rows_are_valid_configs_with_the_refreshing_default():
    """configs/ml100k.toml reuses content terms (content_refresh 8), which item ID dropout refuses: the cold-start
    rows (PREV + dropout) must still parse, and PREV must pin the every-step training the stored rows measured."""
    flags = {**FULL, **ON, **PREV, **COLD_VARIANTS[next(k for k in COLD_VARIANTS if "dropout" in k)]}
    args = [a for k, v in flags.items() for a in (f"--{k}", str(v).lower() if isinstance(v, bool) else str(v))]
    cfg = parse_config([*args, "--kg", "-"])
    assert cfg.item_id_dropout > 0 and cfg.content_refresh == 1
    assert parse_config(["--config", FULL["config"], "--kg", "-"]).content_refresh > 1
