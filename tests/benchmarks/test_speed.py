"""benchmarks/speed.py without running train.py: its variants are valid train.py configs, the table's ratios."""


from benchmarks.speed import COMMON, VARIANTS, render
from training.config import parse_config


def test_every_variant_is_a_valid_train_config():
    for _, flags in VARIANTS.values():
        merged = {**COMMON, **flags}
        args = [a for k, v in merged.items() for a in (f"--{k}", str(v).lower() if isinstance(v, bool) else str(v))]
        cfg = parse_config([*args, "--kg", "-", "--out", "-"])
        assert cfg.batch_size == 8192 and cfg.epochs == 1
    assert parse_config(["--kg", "-", "--config", "configs/ml100k.toml", "--use_image", "true"]).model == "mmkg"


def test_render_gives_ratios_against_our_lightgcn_and_the_old_code():
    data = {"runs": {"scale": {"lightgcn": {"epoch_time_s": 50.0, "peak_rss_mb": 3000.0, "valid_ndcg@20": 0.02},
                               "all": {"epoch_time_s": 150.0, "peak_rss_mb": 4500.0, "valid_ndcg@20": 0.03},
                               "lightgcn @ /old": {"epoch_time_s": 160.0, "peak_rss_mb": 3300.0},
                               "_when": "now"}}, "sizes": {"scale": "big"}}
    md = render(data)
    assert md.index("| LightGCN (ours) | this") < md.index("| Full model: all") < md.index("| LightGCN (ours) | /old")
    assert "| Full model: all parts, content terms every step | this | 150.0 | 3.00x | 4500 | 1.50x |  | 0.0300 |" in md
    assert "| LightGCN (ours) | /old | 160.0 | 3.20x | 3300 | 1.10x | 3.20x |  |" in md


def test_render_shows_the_one_time_preparation():
    data = {"runs": {"scale": {"lightgcn": {"epoch_time_s": 50.0, "peak_rss_mb": 3000.0, "prepare_s": 0.0},
                               "all_refresh8": {"epoch_time_s": 80.0, "peak_rss_mb": 5000.0, "prepare_s": 105.6},
                               "_when": "now"}}}
    md = render(data)
    row = ("| Full model: all parts, content terms reused for 8 steps (the default; the scale row) | this | 80.0 "
           "| 1.60x | 5000 | 1.67x |  |  | 105.6 |")
    assert row in md
