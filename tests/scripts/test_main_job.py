"""scripts/main_job.sh's plan, with every step recorded instead of run (a stand-in ``$PYTHON`` that logs
its arguments and runs only the script's inline ``-c`` config check): CLIP pre-training and CLIP
encoding happen only when the training config reads an image feature."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _plan(tmp_path: Path, config: str, **env: str) -> tuple[int, list[str], str]:
    log = tmp_path / "calls.log"
    fake = tmp_path / "python"
    fake.write_text(f'#!/usr/bin/env bash\nif [ "$1" = -c ]; then exec {sys.executable} "$@"; fi\n'
                    f'echo "$*" >> {log}\n')
    fake.chmod(0o755)
    cfg = tmp_path / "train.toml"
    cfg.write_text(config)
    run_env = {**os.environ, "PYTHON": str(fake), "SKIP_SETUP": "1", "OUT": str(tmp_path / "out"),
               "CONFIG": str(cfg), "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "main_job.sh")], env=run_env, capture_output=True,
                          text=True, timeout=120)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc.returncode, calls, proc.stdout + proc.stderr


def _encode_calls(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith("-m encoders")]


NO_IMAGE = '[data]\nkg = "x"\n[model]\nuse_image = false\nuse_clip_text = false\n'


def test_no_clip_when_the_config_reads_no_image_feature(tmp_path: Path) -> None:
    rc, calls, out = _plan(tmp_path, NO_IMAGE)
    assert rc == 0, out
    enc = _encode_calls(calls)
    assert len(enc) == 1 and enc[0].startswith("-m encoders encode ") and enc[0].endswith("--no-clip"), enc
    assert "no CLIP pre-training or encoding" in out
    assert any(c.startswith("train.py --config " + str(tmp_path / "train.toml")) for c in calls)


@pytest.mark.parametrize("config", ['[data]\nkg = "x"\n[model]\nuse_image = false\nuse_clip_text = true\n',
                                    '[data]\nkg = "x"\n',  # absent keys: TrainConfig's defaults (true)
                                    NO_IMAGE + 'item_graphs = "text,image"\n'])  # an image item-item graph
def test_clip_pretrained_and_encoded_when_an_image_feature_is_read(tmp_path: Path, config: str) -> None:
    rc, calls, out = _plan(tmp_path, config)
    assert rc == 0, out
    enc = _encode_calls(calls)
    assert enc[0].startswith("-m encoders pretrain-clip --kg") and "--no-clip" not in enc[1], enc


def test_given_clip_weights_are_used_even_without_image_features(tmp_path: Path) -> None:
    rc, calls, out = _plan(tmp_path, NO_IMAGE, CLIP_MODEL="ViT-B-32", CLIP_PRETRAINED="/w/clip.bin")
    assert rc == 0, out
    assert _encode_calls(calls) == [f"-m encoders encode --kg {tmp_path}/out/kg --threads 1 --clip-model ViT-B-32 "
                                    "--clip-pretrained /w/clip.bin"]


def test_a_bad_config_stops_the_job_with_one_error_line(tmp_path: Path) -> None:
    rc, calls, out = _plan(tmp_path, '[model]\nuse_imagez = false\n')
    assert rc != 0 and "error:" in out and "use_imagez" in out
    assert not _encode_calls(calls) and not any(c.startswith("train.py") for c in calls)
