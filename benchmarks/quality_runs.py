"""How benchmarks/quality.py and benchmarks/quality_coldstart.py run train.py: one cached subprocess per run
(keyed by the effective config and the features it reads), with its peak RSS, plus the flag sets they share."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from kg.errors import MMKGError
from training.config import TrainConfig, config_dict, parse_config

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "work"
COMMON = {"threads": 1, "progress": False, "tensorboard": False, "test_resamples": 0, "ks": "10,20"}
ON = {"use_id": True, **{f"use_{k}": True for k in ("kg", "profile", "text", "image", "clip_text")}}
FULL = {"config": "configs/ml100k.toml"}  # the full model as its authors configure it (pinned by content per run)
# ablations, cold start and scale were measured at the previous tuning point (before weight averaging was
# selected); pinned so their rows stay those runs. KEY_DEFAULTS: fields newer than cached runs, left out of a
# run's key while at their default.
# content_refresh 1: those rows compute every step, as measured (and the cold rows' item ID dropout needs it).
# ease_blend false: those rows have no closed-form item-item branch (it came after them).
PREV = {"lr": 0.002, "ema_decay": 0.0, "content_refresh": 1, "ease_blend": False}
KEY_DEFAULTS = {"ema_decay": 0.0, "item_id_dropout": 0.0, "content_refresh": 1, "ease_blend": False,
                **{k: config_dict(TrainConfig(kg="-"))[k] for k in ("ease_blend_regs", "ease_blend_weights")}}


def train_run(kg: Path, flags: dict, tag: str, key_extra: str | None = None) -> dict:
    """Run train.py with ``flags`` (cached by their hash under benchmarks/work/runs, plus ``key_extra`` when
    given: a code change that invalidates earlier runs); its metrics.json plus ``peak_rss_mb`` (the
    process's maximum resident set, from ``os.wait4``)."""
    args = [a for k, v in flags.items() for a in (f"--{k}", json.dumps(v) if isinstance(v, dict | bool) else str(v))]
    if "config" in flags:  # keyed by the effective config: rows that resolve to the same run share it
        effective = config_dict(parse_config([*args, "--kg", str(kg), "--out", "-"]))
        effective.pop("out")
        effective = {k: v for k, v in effective.items() if KEY_DEFAULTS.get(k, object()) != v}
        feats = kg / "features" / "features.json"  # and by the features it reads
        sha = json.loads(feats.read_text()).get("sha256") if feats.exists() else None
        key = hashlib.sha1(json.dumps([effective, sha] + ([key_extra] if key_extra else []),
                                      sort_keys=True).encode()).hexdigest()[:10]
        out = WORK / "runs" / f"mmkg-{key}"
    else:
        effective = None
        key = hashlib.sha1(json.dumps({"kg": str(kg), **flags}, sort_keys=True).encode()).hexdigest()[:10]
        out = WORK / "runs" / f"{tag}-{key}"
    done = out / "metrics.json"
    if not done.exists() or not (out / "peak_rss_mb").exists():
        out.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, str(ROOT / "train.py"), "--kg", str(kg), "--out", str(out), *args]
        print(f"[{tag}] {' '.join(argv[2:])}", flush=True)
        with open(out / "train.log", "w") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                    env={**os.environ, "OMP_NUM_THREADS": "1"})
            _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise MMKGError(f"train.py failed ({tag}); see {out / 'train.log'}")
        (out / "peak_rss_mb").write_text(f"{usage.ru_maxrss / 1024:.1f}")
    rss = float((out / "peak_rss_mb").read_text())
    return json.loads(done.read_text()) | {"peak_rss_mb": rss, "out": str(out), "config": effective}


def available_item_graphs(kg: Path, config: Path = ROOT / "configs" / "ml100k.toml") -> str:
    """The config's item-item graphs whose feature ``kg`` has (the scale graph has text only): the full model
    builds the graphs it can, as it uses the modalities it has."""
    import tomllib

    from gnn.item_item_graphs import GRAPH_FEATURES

    names = tomllib.loads(config.read_text()).get("model", {}).get("item_graphs", "")
    have = set(json.loads((kg / "features" / "features.json").read_text())["counts"]) \
        if (kg / "features" / "features.json").is_file() else set()
    return ",".join(g for g in names.split(",") if g and (g == "kg" or GRAPH_FEATURES.get(g) in have))
