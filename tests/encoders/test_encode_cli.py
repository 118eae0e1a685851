from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from encoders.__main__ import build_parser, default_cache_dir, main, resolve_clip_checkpoint
from encoders.features import load_features
from kg.model.graph import KnowledgeGraph


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_encode_then_rerun_from_cache(small_kg_dir: Path, tiny_bert: Path, tmp_path: Path, capsys) -> None:
    argv = ["encode", "--kg", str(small_kg_dir), "--text-model", str(tiny_bert), "--no-clip",
            "--cache-dir", str(tmp_path / "cache"), "--threads", "1", "--quiet"]
    rc, out, _ = run(argv, capsys)
    assert rc == 0
    kg = KnowledgeGraph.load(small_kg_dir)
    feats = load_features(small_kg_dir / "features", kg)
    assert feats["item.text"].shape == (3, 32) and "item.image" not in feats
    assert "item.text: total 3, present 3, encoded 3, cached 0, empty 0" in out
    assert "user.profile_text: total 3, present 2, encoded 2, cached 0, empty 1" in out
    rc, out, _ = run(argv, capsys)
    assert rc == 0 and "item.text: total 3, present 3, encoded 0, cached 3, empty 0" in out
    assert "entity.text: total 10, present 9, encoded 0, cached 9, empty 1" in out
    meta = json.loads((small_kg_dir / "features" / "features.json").read_text())
    assert meta["counts"]["user.profile_text_mask"] == 3


def test_encode_uses_the_catalog_clip_checkpoint(
    small_kg_dir: Path, tiny_bert: Path, tiny_catalog_clip: Path, tmp_path: Path, capsys, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="encoders")
    (small_kg_dir / "clip").mkdir()
    shutil.copy(tiny_catalog_clip, small_kg_dir / "clip" / "catalog_clip.pt")
    argv = ["encode", "--kg", str(small_kg_dir), "--text-model", str(tiny_bert), "--cache-dir", str(tmp_path / "c"),
            "--quiet"]
    rc, out, _ = run(argv, capsys)
    assert rc == 0 and "catalog-pretrained checkpoint" in caplog.text
    feats = load_features(small_kg_dir / "features")
    assert feats["item.image"].shape == (3, 32) and feats["item.image_mask"].tolist() == [True, False, False]
    assert feats["item.clip_text"].shape == (3, 32) and feats["item.clip_text_mask"].all()
    torch.testing.assert_close(feats["item.image"][0].norm(), torch.tensor(1.0))
    assert feats.identities["item.image"].startswith("clip:catalog:catalog_clip.pt")
    assert "item.image: total 3, with_image 2, present 1, failed 1, encoded 1, cached 0" in out
    rc, out, _ = run(argv, capsys)
    assert "item.image: total 3, with_image 2, present 1, failed 1, encoded 0, cached 1" in out
    assert "item.clip_text: total 3, present 3, encoded 0, cached 3" in out


def test_clip_tag_without_model_is_an_error(small_kg_dir: Path, tiny_bert: Path, tmp_path: Path, capsys) -> None:
    argv = ["encode", "--kg", str(small_kg_dir), "--text-model", str(tiny_bert), "--cache-dir", str(tmp_path / "c"),
            "--clip-pretrained", "laion2b_s34b_b79k", "--quiet"]
    rc, _, err = run(argv, capsys)
    assert rc == 2 and "give --clip-model" in err


def test_pretrain_clip_subcommand_is_registered() -> None:
    parser = build_parser()
    args = parser.parse_args(["pretrain-clip", "--kg", "d"])
    assert args.command == "pretrain-clip" and callable(args.func)


def test_bad_kg_dir_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    rc, out, err = run(["encode", "--kg", str(tmp_path / "nope"), "--no-clip"], capsys)
    assert rc == 2 and err.startswith("error: ") and "nope" in err and "Traceback" not in err


def test_unknown_text_model_is_an_error(small_kg_dir: Path, tmp_path: Path, capsys) -> None:
    argv = ["encode", "--kg", str(small_kg_dir), "--text-model", str(tmp_path / "no-model"), "--no-clip",
            "--cache-dir", str(tmp_path / "c")]
    rc, _, err = run(argv, capsys)
    assert rc == 2 and "no-model" in err and "error:" in err
    assert not (small_kg_dir / "features").exists()


def test_clip_checkpoint_choice(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="encoders")
    assert resolve_clip_checkpoint(tmp_path, None, no_clip=False) is None
    assert "CLIP: skipped (no --clip-pretrained" in caplog.text
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "catalog_clip.pt").write_bytes(b"x")
    assert resolve_clip_checkpoint(tmp_path, None, no_clip=False) == str(tmp_path / "clip" / "catalog_clip.pt")
    assert "catalog-pretrained checkpoint" in caplog.text
    assert resolve_clip_checkpoint(tmp_path, "laion2b_s34b_b79k", no_clip=False) == "laion2b_s34b_b79k"
    assert resolve_clip_checkpoint(tmp_path, "laion2b_s34b_b79k", no_clip=True) is None


def test_parser_and_cache_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    parser = build_parser()
    args = parser.parse_args(["encode", "--kg", "d"])
    assert args.clip_pretrained is None and args.batch_size == 64 and not args.no_clip
    with pytest.raises(SystemExit):
        parser.parse_args(["encode", "--kg", "d", "--bogus"])
    monkeypatch.setenv("MMKGREC_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("MMKGREC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "mmkgrec" / "embeddings"
