"""benchmarks/quality_runs.py: which of the config's item-item graphs a dataset's features allow."""

import json

from benchmarks.quality_runs import PREV, available_item_graphs


def test_item_graphs_are_the_configs_whose_features_the_dataset_has(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[model]\nitem_graphs = "text,image,clip_text,kg"\n')
    (tmp_path / "kg" / "features").mkdir(parents=True)
    (tmp_path / "kg" / "features" / "features.json").write_text(json.dumps({"counts": {"item.text": 5}}))
    assert available_item_graphs(tmp_path / "kg", config) == "text,kg"
    assert available_item_graphs(tmp_path / "none", config) == "kg"  # no features at all: the KG graph only


def test_the_ablation_rows_compute_the_content_terms_every_step():
    assert PREV["content_refresh"] == 1  # the rows measured before the default reused them (and cold rows need it)
