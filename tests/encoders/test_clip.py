"""CLIP loading and encoders on a tiny random-config model saved as a catalog checkpoint
(loaded through the same open_clip path as real weights); no network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image

from encoders.clip import ClipImageEncoder, ClipTextEncoder, load_clip, register_model_config
from encoders.clip_configs import model_config
from encoders.clip_pretrain import save_checkpoint
from kg.errors import MMKGError


def save_tiny_clip(path: Path, seed: int = 0) -> Path:
    """A random ``tiny`` CLIP (32 px ViT, width 32, 2 layers) saved as a catalog checkpoint."""
    cfg = model_config("tiny")
    torch.manual_seed(seed)
    model = open_clip.create_model(register_model_config(cfg), pretrained=None)
    return save_checkpoint(path, model, cfg, {"note": "test"})


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny.pt")


@pytest.fixture(scope="module")
def bundle(tiny_ckpt: Path):
    return load_clip(str(tiny_ckpt), None, device="cpu")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("images")
    good = d / "red.png"
    Image.new("RGB", (40, 60), (220, 20, 20)).save(good)
    full = d / "full.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(full, quality=90)
    truncated = d / "truncated.jpg"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    text = d / "notes.jpg"
    text.write_text("this is not an image\n")
    grey = d / "grey.png"
    Image.new("L", (32, 32), 128).save(grey)
    return {"good": good, "truncated": truncated, "text": text, "missing": d / "missing.jpg", "grey": grey}


def test_catalog_checkpoint_loads_through_open_clip(tiny_ckpt: Path, bundle) -> None:
    saved = torch.load(tiny_ckpt, weights_only=True)
    assert saved["format"] == "mmkgrec-clip-v1" and saved["model_cfg"] == model_config("tiny")
    for name, tensor in bundle.model.state_dict().items():
        assert torch.equal(tensor, saved["state_dict"][name]), name
    assert (bundle.embed_dim, bundle.image_size) == (32, 32)
    assert bundle.meta == {"note": "test"}
    assert bundle.tokenizer(["a red square"]).shape == (1, 32)  # the config's context length
    # given as `pretrained` with an open_clip model name (what `encoders encode` does): same model
    again = load_clip("ViT-B-32", str(tiny_ckpt), device="cpu")
    assert again.identity == bundle.identity and again.embed_dim == 32


def test_identity_tracks_the_weights(tmp_path: Path, bundle) -> None:
    other = load_clip(str(save_tiny_clip(tmp_path / "other.pt", seed=1)), None, device="cpu")
    assert other.identity != bundle.identity
    assert bundle.identity.split("|weights:")[1][:16] != other.identity.split("|weights:")[1][:16]


def test_unknown_models_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(MMKGError, match="no-such-dir/clip.pt"):
        load_clip("/no-such-dir/clip.pt", None)
    with pytest.raises(MMKGError, match="missing.pt"):
        load_clip("ViT-B-32", str(tmp_path / "missing.pt"))
    with pytest.raises(MMKGError, match="'NoSuchCLIP-99'"):
        load_clip("NoSuchCLIP-99", None)
    with pytest.raises(MMKGError, match="'no-such-tag'"):
        load_clip("ViT-B-32", "no-such-tag")
    junk = tmp_path / "junk.pt"
    junk.write_text("not torch")
    with pytest.raises(MMKGError, match="junk.pt"):
        load_clip(str(junk), None)


def test_register_model_config_is_idempotent() -> None:
    name = register_model_config(model_config("tiny"))
    assert name == register_model_config(model_config("tiny")) and name in open_clip.list_models()
    assert open_clip.get_model_config(name) == model_config("tiny")
    with pytest.raises(MMKGError, match="embed_dim"):
        register_model_config({"vision_cfg": {}})


def test_image_encoder_masks_and_reports_failures(bundle, images: dict[str, Path]) -> None:
    enc = ClipImageEncoder(bundle, batch_size=2, show_progress=False)
    order = ["good", "missing", "truncated", "text", "grey"]
    emb, mask = enc([str(images[k]) for k in order] + [None])
    assert emb.shape == (6, 32) and emb.dtype == torch.float32 and emb.device.type == "cpu"
    assert mask.tolist() == [True, False, False, False, True, False]
    assert torch.allclose(emb[mask].norm(dim=1), torch.ones(2), atol=1e-5)
    assert not emb[~mask].any()
    reasons = {Path(f.path).name if f.path else None: f.reason for f in enc.failures}
    assert reasons["missing.jpg"] == "missing file"
    assert reasons["truncated.jpg"].startswith("unreadable image") and "truncated" in reasons["truncated.jpg"]
    assert reasons["notes.jpg"].startswith("not an image")
    assert reasons[None] == "no image"
    assert enc.last_stats == {"encoded": 2, "cached": 0, "failed": 4}
    # the good row is the model's own output on the preprocessed image (RGB-converted)
    with torch.inference_mode():
        x = torch.stack([bundle.preprocess(Image.open(images[k]).convert("RGB")) for k in ("good", "grey")])
        expected = F.normalize(bundle.model.encode_image(x), dim=-1)
    assert torch.allclose(emb[[0, 4]], expected, atol=1e-5)


def test_image_cache_serves_repeats_by_content(bundle, images: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "same-bytes.png"
    copy.write_bytes(images["good"].read_bytes())
    first = ClipImageEncoder(bundle, cache_dir=tmp_path / "cache", show_progress=False)
    emb1, _ = first([str(images["good"]), str(images["truncated"])])
    second = ClipImageEncoder(bundle, cache_dir=tmp_path / "cache", show_progress=False)
    emb2, mask2 = second([str(copy), str(images["truncated"])])
    assert second.last_stats == {"encoded": 0, "cached": 1, "failed": 1}  # a failure is never cached
    assert torch.equal(emb1[0], emb2[0]) and mask2.tolist() == [True, False]


def test_text_encoder_shapes_and_normalisation(bundle, tmp_path: Path) -> None:
    enc = ClipTextEncoder(bundle, batch_size=2, cache_dir=tmp_path / "cache", show_progress=False)
    texts = ["a red square", "a blue circle", "a red square", " ".join(["word"] * 500)]
    emb = enc(texts)
    assert emb.shape == (4, 32) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.equal(emb[0], emb[2]) and not torch.allclose(emb[0], emb[1])
    with torch.inference_mode():
        expected = F.normalize(bundle.model.encode_text(bundle.tokenizer(texts[:2])), dim=-1)
    assert torch.allclose(emb[:2], expected, atol=1e-5)
    assert enc.last_stats == {"encoded": 3, "cached": 0}
    assert enc(texts[:1]).shape == (1, 32) and enc.last_stats == {"encoded": 0, "cached": 1}
    assert enc([]).shape == (0, 32)
