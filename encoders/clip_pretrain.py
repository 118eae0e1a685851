"""Self-supervised CLIP pre-training (or fine-tuning) on a catalog's own image-text pairs.

``pretrain_clip(pairs, config, out_path)`` trains an open_clip model with the symmetric
InfoNCE loss (learnable logit scale), AdamW with linear warmup and cosine decay, random
resized crops and flips of images decoded once into a uint8 tensor, and token dropout on
the texts (the unique titles are otherwise learnt by heart). Pairs are
``(group_key, image_path, text)``; the held-out split is by group (one film: its
normalised title + year), so two posters of a film never straddle it. Every epoch visits
each training group once, through one of its pairs drawn at random (no duplicate film in
a batch). It reports image->text and text->image Recall@1/5/10 on one pair per held-out
group, ranked among all held-out texts / images, against chance (K / n), and saves a
checkpoint (``format``, ``model_cfg``, ``state_dict``, ``meta``) that
:func:`encoders.clip.load_clip` loads.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from tqdm.auto import tqdm

from encoders.clip import CATALOG_FORMAT, load_clip, quiet_open_clip, register_model_config
from encoders.clip_configs import MODEL_CONFIGS, model_config, train_preset
from encoders.clip_pairs import Pair, retrieval_recall, split_by_group
from encoders.image_loading import ImageFailure, decode_uint8, normalize, open_rgb, random_resized_crop
from kg.errors import MMKGError

log = logging.getLogger(__name__)


@dataclass
class ClipPretrainConfig:
    """Pre-training settings; ``None`` takes the preset of ``config`` (see :mod:`encoders.clip_configs`)."""

    config: str = "small"
    checkpoint: str | None = None  # fine-tune these weights (a catalog checkpoint, or a file for clip_model)
    clip_model: str | None = None  # open_clip model name of a non-catalog checkpoint
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None  # default: the preset's, x0.1 when fine-tuning
    weight_decay: float = 0.2
    warmup_frac: float = 0.1
    heldout_frac: float = 0.1
    crop_scale: tuple[float, float] = (0.5, 1.0)
    token_dropout: float = 0.15  # fraction of a training text's word tokens replaced by token 0
    seed: int = 0
    device: str | None = None
    show_progress: bool = True

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ClipPretrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise MMKGError(f"unknown CLIP pre-training option {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**values)


def _build_model(config: ClipPretrainConfig, device: torch.device):
    """``(model, model_cfg, preprocess, tokenizer, mode)`` from the checkpoint or a fresh architecture."""
    import open_clip

    if config.checkpoint:
        bundle = load_clip(config.clip_model or config.checkpoint, config.checkpoint, device)
        if not bundle.model_cfg:
            raise MMKGError(f"CLIP checkpoint {config.checkpoint!r}: its architecture is unknown, cannot fine-tune")
        log.info("CLIP: fine-tuning %s (%s)", config.checkpoint, bundle.identity)
        return bundle.model, bundle.model_cfg, bundle.preprocess, bundle.tokenizer, "fine-tune"
    cfg = model_config(config.config)
    name = register_model_config(cfg)
    quiet_open_clip()
    torch.manual_seed(config.seed)
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None, device=device)
    log.info("CLIP: pre-training from scratch (config %s, random initialisation)", config.config)
    return model, cfg, preprocess, open_clip.get_tokenizer(name), "scratch"


def _encode_all(model, images: torch.Tensor, tokens: torch.Tensor, device, bs: int = 256):
    outs_i, outs_t = [], []
    with torch.inference_mode(), _autocast(device):
        for s in range(0, images.shape[0], bs):
            outs_i.append(F.normalize(model.encode_image(images[s : s + bs].to(device)).float(), dim=-1).cpu())
            outs_t.append(F.normalize(model.encode_text(tokens[s : s + bs].to(device)).float(), dim=-1).cpu())
    return torch.cat(outs_i), torch.cat(outs_t)


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def drop_tokens(tokens: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``tokens`` ``[B, L]`` with a fraction ``p`` of the word tokens (not padding, start or end,
    which is the largest id) replaced by token 0, so titles cannot be memorised whole."""
    if p <= 0:
        return tokens
    words = (tokens > 0) & (tokens < tokens.max(dim=1, keepdim=True).values)
    words[:, 0] = False
    drop = (torch.rand(tokens.shape, generator=generator) < p) & words
    return tokens.masked_fill(drop, 0)


def _clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    logits = scale * img @ txt.T
    target = torch.arange(img.shape[0], device=img.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def pretrain_clip(pairs: list[Pair], config: ClipPretrainConfig, out_path: str | os.PathLike) -> dict[str, Any]:
    """Train on ``pairs``, save the checkpoint to ``out_path`` (atomically); returns the metrics."""
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    preset = train_preset(config.config if config.config in MODEL_CONFIGS else "small")
    epochs = preset["epochs"] if config.epochs is None else config.epochs
    bs = preset["batch_size"] if config.batch_size is None else config.batch_size
    model, cfg, preprocess, tokenizer, mode = _build_model(config, device)
    lr = config.lr if config.lr is not None else preset["lr"] * (0.1 if mode == "fine-tune" else 1.0)
    size = int(cfg["vision_cfg"]["image_size"])
    pp = model.visual.preprocess_cfg
    train_idx, held_idx = split_by_group(pairs, config.heldout_frac, config.seed)
    seen: set[str] = set()
    held_idx = [i for i in held_idx if not (pairs[i][0] in seen or seen.add(pairs[i][0]))]  # one pair per group
    show = config.show_progress
    cache, ok, failures = decode_uint8([pairs[i][1] for i in train_idx], round(size * 1.25), show)
    keep = ok.nonzero().flatten().tolist()
    cache, train_idx = cache[keep], [train_idx[k] for k in keep]
    held_imgs, held_keep = [], []
    for i in tqdm(held_idx, desc="held-out images", unit="img", disable=not show):
        try:
            held_imgs.append(preprocess(open_rgb(pairs[i][1])))
            held_keep.append(i)
        except MMKGError as e:
            failures.append(ImageFailure(pairs[i][1], str(e)))
    if len(train_idx) < 2:
        raise MMKGError(f"CLIP pre-training needs at least 2 readable training pairs, got {len(train_idx)}")
    held_idx = held_keep
    if failures:
        log.warning("CLIP: %d image(s) unreadable, their pairs dropped (first: %s)", len(failures), failures[0])
    tok_train = tokenizer([pairs[i][2] for i in train_idx])
    held_x = torch.stack(held_imgs) if held_imgs else torch.zeros(0, 3, size, size)
    tok_held = tokenizer([pairs[i][2] for i in held_idx])
    groups: dict[str, list[int]] = {}
    for row, i in enumerate(train_idx):
        groups.setdefault(pairs[i][0], []).append(row)
    group_rows = list(groups.values())
    steps_per_epoch = max(1, len(group_rows) // bs + (len(group_rows) % bs >= 2))
    total = epochs * steps_per_epoch
    decay = [p for p in model.parameters() if p.ndim >= 2 and p.requires_grad]
    no_decay = [p for p in model.parameters() if p.ndim < 2 and p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.98), eps=1e-6,
    )
    warm = max(1, int(total * config.warmup_frac))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm)))
    )
    rng, gen = random.Random(config.seed), torch.Generator().manual_seed(config.seed)
    probe = list(range(min(len(train_idx), 512)))
    probe_x = normalize(random_resized_crop(cache[probe], size, (1.0, 1.0), (1.0, 1.0), False), pp["mean"], pp["std"])

    def probe_loss() -> float:
        model.eval()
        img, txt = _encode_all(model, probe_x, tok_train[probe], device)
        return float(_clip_loss(img, txt, model.logit_scale.exp().detach().cpu()))

    def evaluate() -> dict[str, dict[str, float]]:
        model.eval()
        return retrieval_recall(*_encode_all(model, held_x, tok_held, device)) if held_idx else {}

    loss_before, history, start = probe_loss(), [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = [rng.choice(rows) for rows in group_rows]
        rng.shuffle(order)
        batches = [order[s : s + bs] for s in range(0, len(order), bs) if len(order[s : s + bs]) >= 2]
        losses = []
        bar = tqdm(batches, desc=f"CLIP {mode} epoch {epoch}/{epochs}", unit="batch", disable=not show)
        for rows in bar:
            x = random_resized_crop(cache[rows].to(device), size, config.crop_scale, generator=gen)
            x = normalize(x, pp["mean"], pp["std"])
            with _autocast(device):
                txt = drop_tokens(tok_train[rows], config.token_dropout, gen).to(device)
                img_f, txt_f, scale = model(x, txt)[:3]
                loss = _clip_loss(img_f.float(), txt_f.float(), scale.float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        metrics = evaluate()
        r10 = metrics.get("image_to_text", {}).get("R@10", float("nan"))
        history.append({"epoch": epoch, "train_loss": sum(losses) / max(1, len(losses)), "heldout_i2t_R@10": r10,
                        "seconds": round(time.perf_counter() - start, 1), "cpu_seconds": round(time.process_time(), 1)})
        log.info("CLIP epoch %d: train loss %.4f, held-out image->text R@10 %.3f",
                 epoch, history[-1]["train_loss"], r10)
    train_seconds = time.perf_counter() - start
    result = {
        "mode": mode, "config": config.config if mode == "scratch" else config.checkpoint, "device": str(device),
        "pairs": len(pairs), "train_pairs": len(train_idx), "train_groups": len(group_rows),
        "heldout_groups": len(held_idx), "unreadable_images": len(failures), "epochs": epochs, "batch_size": bs,
        "lr": lr, "train_seconds": round(train_seconds, 1), "loss_before": loss_before, "loss_after": probe_loss(),
        "history": history, **evaluate(),
    }
    save_checkpoint(out_path, model, cfg, {"pretrain": asdict(config), "metrics": result})
    result["out"] = str(out_path)
    return result


def save_checkpoint(out_path: str | os.PathLike, model: torch.nn.Module, model_cfg: dict, meta: dict) -> Path:
    """Write ``{format, model_cfg, state_dict, meta}`` to a temporary file beside ``out_path``, then rename it."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        torch.save({"format": CATALOG_FORMAT, "model_cfg": model_cfg, "state_dict": state, "meta": meta}, tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out
