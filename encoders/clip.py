"""CLIP image and text towers through open_clip.

:func:`load_clip` accepts

- an open_clip model name and a pretrained tag (``"ViT-B-32", "laion2b_s34b_b79k"``:
  the weights are downloaded only where the machine is online) or a local weights file;
- a catalog checkpoint written by :mod:`encoders.clip_pretrain` (as ``model_name`` or as
  ``pretrained``): it records its own architecture, which is registered with open_clip
  (``open_clip.add_model_config``) so the model is built by the same
  ``open_clip.create_model_and_transforms`` call as a built-in one; a model name given
  with it is ignored.

:class:`ClipImageEncoder` (image paths -> L2-normalised embeddings + mask, failures
reported, never raised) and :class:`ClipTextEncoder` (texts -> L2-normalised
embeddings) batch, run under ``inference_mode`` (bf16 autocast on CUDA) and cache to
disk through :class:`encoders.cache.EmbeddingCache` when given a ``cache_dir``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import tempfile
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from tqdm.auto import tqdm

from encoders.cache import EmbeddingCache, cached_encode, content_key, file_key
from encoders.image_loading import ImageFailure, ImageLoadError, open_rgb
from kg.errors import MMKGError

log = logging.getLogger(__name__)
CATALOG_FORMAT = "mmkgrec-clip-v1"
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")


@dataclass
class ClipBundle:
    """A loaded CLIP model with its eval preprocessing (PIL -> ``[3, S, S]``), tokenizer
    (texts -> ``[N, context_length]``) and identity (name, weights hash, image size)."""

    model: torch.nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    identity: str
    model_name: str
    device: torch.device
    embed_dim: int
    image_size: int
    model_cfg: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def register_model_config(model_cfg: dict[str, Any]) -> str:
    """Register an open_clip architecture config; returns its name (``mmkgrec-<hash>``)."""
    import open_clip

    if not all(k in model_cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise MMKGError("CLIP model config needs embed_dim, vision_cfg and text_cfg")
    text = json.dumps(model_cfg, sort_keys=True)
    name = "mmkgrec-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    if name not in open_clip.list_models():
        with tempfile.TemporaryDirectory() as d:
            Path(d, f"{name}.json").write_text(text)
            open_clip.add_model_config(Path(d, f"{name}.json"))
    return name


def read_catalog_checkpoint(path: str | os.PathLike) -> dict[str, Any] | None:
    """The contents of a catalog checkpoint (``format``, ``model_cfg``, ``state_dict``, ``meta``),
    or ``None`` for any other file (left to open_clip, which reports what is wrong with it)."""
    if str(path).endswith((".safetensors", ".npz")):
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError):
        return None
    if isinstance(data, dict) and data.get("format") == CATALOG_FORMAT:
        return data
    return None


def looks_like_path(name: str) -> bool:
    """True for a file path (has a separator, starts with ``.``/``~`` or ends like a weights file)."""
    if name.startswith(("hf-hub:", "local-dir:")):
        return False
    return "/" in name or os.sep in name or name.startswith((".", "~")) or name.endswith(_WEIGHT_SUFFIXES)


def weights_fingerprint(model: torch.nn.Module) -> str:
    """16 hex digits of the sha256 of the model's state dict (names and bytes)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class _OpenClipInfoFilter(logging.Filter):
    """Drops open_clip's INFO chatter (it logs through the root logger); warnings pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or f"{os.sep}open_clip{os.sep}" not in record.pathname


def quiet_open_clip() -> None:
    """Install :class:`_OpenClipInfoFilter` on the root logger (once)."""
    if not any(isinstance(f, _OpenClipInfoFilter) for f in logging.root.filters):
        logging.root.addFilter(_OpenClipInfoFilter())


def load_clip(model_name: str, pretrained: str | None, device: str | torch.device | None = None) -> ClipBundle:
    """Load a CLIP model (see the module docstring for what ``model_name`` / ``pretrained`` may be).

    Raises:
        MMKGError: an unknown model name, a missing checkpoint file, an unknown tag or a
            download that fails; the message names it.
    """
    import open_clip

    quiet_open_clip()
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    checkpoint = None
    for what, value in (("CLIP model", model_name), ("CLIP checkpoint", pretrained)):
        if value and looks_like_path(value):
            path = Path(value).expanduser()
            if not path.is_file():
                raise MMKGError(f"{what} {value!r}: no such file")
            checkpoint = str(path)
            break
    catalog = read_catalog_checkpoint(checkpoint) if checkpoint else None
    name, display, model_cfg = model_name, model_name, None
    if catalog is not None:
        model_cfg = catalog["model_cfg"]
        name, display = register_model_config(model_cfg), f"catalog:{Path(checkpoint).name}"
        if model_name and model_name != checkpoint:
            log.info("CLIP: %s is a catalog checkpoint; its own architecture is used, not %s", checkpoint, model_name)
    elif checkpoint == model_name:
        raise MMKGError(
            f"CLIP model {model_name!r} is not a catalog checkpoint; pass an open_clip model name with it as pretrained"
        )
    if name not in open_clip.list_models() and not name.startswith(("hf-hub:", "local-dir:")):
        raise MMKGError(f"unknown CLIP model {model_name!r}: not an open_clip model name nor a checkpoint file")
    weights = checkpoint or pretrained
    schema = name.startswith(("hf-hub:", "local-dir:"))
    if weights and checkpoint is None and not schema and not open_clip.get_pretrained_cfg(name, weights):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise MMKGError(f"CLIP pretrained {pretrained!r} is neither a tag of {name} (tags: {tags}) nor a file")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=weights, device=device)
    except (RuntimeError, OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as e:
        raise MMKGError(f"CLIP {display} (weights {weights!r}): cannot load ({_first_line(e)})") from e
    if weights is None:
        log.warning("CLIP %s: no weights given, the model is randomly initialised", display)
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)
    image_size = model.visual.image_size
    image_size = int(image_size[0] if isinstance(image_size, (tuple, list)) else image_size)
    cfg = model_cfg or (None if schema else open_clip.get_model_config(name)) or {}
    embed_dim = cfg.get("embed_dim")
    if not embed_dim:
        with torch.inference_mode():
            embed_dim = model.encode_text(tokenizer([""]).to(device)).shape[-1]
    tag = weights if catalog is None and weights and not looks_like_path(weights) else "file"
    ident = f"clip:{display}|{tag}|weights:{weights_fingerprint(model)}|image:{image_size}"
    meta = dict(catalog.get("meta", {})) if catalog else {}
    return ClipBundle(model, preprocess, tokenizer, ident, display, device, int(embed_dim), image_size, cfg, meta)


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


class ClipImageEncoder:
    """Image paths (or ``None``) -> ``(embeddings [N, D] float32 CPU, L2-normalised; mask [N] bool)``.

    A missing, unreadable or non-image file gives a zero row with mask False and an
    entry in :attr:`failures` (path + reason); it never raises. Embeddings are cached by
    the sha256 of the file's bytes when ``cache_dir`` is given.
    """

    def __init__(
        self, bundle: ClipBundle, batch_size: int = 32, cache_dir: str | os.PathLike | None = None,
        show_progress: bool = True,
    ) -> None:
        self.bundle = bundle
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.identity = f"{bundle.identity}|image-tower|norm:l2"
        self.dim = bundle.embed_dim
        self.cache = EmbeddingCache(cache_dir, self.identity) if cache_dir is not None else None
        self.failures: list[ImageFailure] = []
        self.last_stats: dict[str, int] = {"encoded": 0, "cached": 0, "failed": 0}

    def __call__(self, paths: Sequence[str | os.PathLike | None]) -> tuple[torch.Tensor, torch.Tensor]:
        self.failures = []
        keys: dict[int, str] = {}
        for i, path in enumerate(paths):
            try:
                if path is None or not os.path.isfile(path):
                    open_rgb(path)  # raises with the reason (no image, missing file, not a file)
                keys[i] = file_key(path)
            except (ImageLoadError, OSError) as e:
                self.failures.append(ImageFailure(None if path is None else str(path), str(e)))
        found = self.cache.get_many(sorted(set(keys.values()))) if self.cache is not None else {}
        todo: dict[str, int] = {}
        for i, key in keys.items():
            if key not in found:
                todo.setdefault(key, i)
        new = self._encode_files({key: str(paths[i]) for key, i in todo.items()})
        found.update(new)
        out = torch.zeros(len(paths), self.dim)
        mask = torch.zeros(len(paths), dtype=torch.bool)
        for i, key in keys.items():
            if key in found:
                out[i], mask[i] = found[key], True
        self.last_stats = {"encoded": len(new), "cached": len(set(keys.values())) - len(todo),
                           "failed": len(paths) - int(mask.sum())}
        if self.failures:
            first = "; ".join(f"{f.path}: {f.reason}" for f in self.failures[:3])
            log.warning("CLIP image: %d of %d image(s) failed, masked (%s)", len(self.failures), len(paths), first)
        return out, mask

    @torch.inference_mode()
    def _encode_files(self, files: dict[str, str]) -> dict[str, torch.Tensor]:
        """``{content key: embedding}`` of the files that decode; the others go to :attr:`failures`."""
        items = list(files.items())
        result: dict[str, torch.Tensor] = {}
        model, device = self.bundle.model, self.bundle.device
        starts = range(0, len(items), self.batch_size)
        for start in tqdm(starts, desc="CLIP image", unit="batch", disable=not self.show_progress or not items):
            batch_keys, tensors = [], []
            for key, path in items[start : start + self.batch_size]:
                try:
                    tensors.append(self.bundle.preprocess(open_rgb(path)))
                    batch_keys.append(key)
                except ImageLoadError as e:
                    self.failures.append(ImageFailure(path, str(e)))
            if not tensors:
                continue
            with _autocast(device):
                emb = model.encode_image(torch.stack(tensors).to(device))
            emb = F.normalize(emb.float(), dim=-1).cpu()
            if self.cache is not None:
                self.cache.put_many(batch_keys, emb)
            result.update(zip(batch_keys, emb, strict=True))
        return result


class ClipTextEncoder:
    """Texts -> L2-normalised embeddings ``[N, D]`` (float32, CPU) of the CLIP text tower;
    texts longer than the context are truncated by open_clip's tokenizer."""

    def __init__(
        self, bundle: ClipBundle, batch_size: int = 64, cache_dir: str | os.PathLike | None = None,
        show_progress: bool = True,
    ) -> None:
        self.bundle = bundle
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.identity = f"{bundle.identity}|text-tower|norm:l2"
        self.dim = bundle.embed_dim
        self.cache = EmbeddingCache(cache_dir, self.identity) if cache_dir is not None else None
        self.last_stats: dict[str, int] = {"encoded": 0, "cached": 0}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        texts = list(texts)
        keys = [content_key(t) for t in texts]
        found, self.last_stats = cached_encode(self.cache, keys, lambda pos: self._encode([texts[p] for p in pos]))
        return torch.stack([found[k] for k in keys]) if texts else torch.zeros(0, self.dim)

    @torch.inference_mode()
    def _encode(self, texts: list[str]) -> torch.Tensor:
        out = []
        model, device = self.bundle.model, self.bundle.device
        starts = range(0, len(texts), self.batch_size)
        for start in tqdm(starts, desc="CLIP text", unit="batch", disable=not self.show_progress):
            tokens = self.bundle.tokenizer(texts[start : start + self.batch_size]).to(device)
            with _autocast(device):
                emb = model.encode_text(tokens)
            out.append(F.normalize(emb.float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
