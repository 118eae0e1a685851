"""``python -m encoders pretrain-clip``: collect the KG's image-text pairs, pre-train CLIP, print the report."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch

from encoders.clip_configs import MODEL_CONFIGS
from encoders.clip_pairs import KS, catalog_pairs
from encoders.clip_pretrain import ClipPretrainConfig, pretrain_clip
from kg.errors import MMKGError

log = logging.getLogger(__name__)


def add_pretrain_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``pretrain-clip`` subcommand (see :func:`run_pretrain`)."""
    p = subparsers.add_parser("pretrain-clip", help="pre-train (or fine-tune) CLIP on the KG's image-text pairs")
    p.add_argument("--kg", required=True, help="the KG directory (items with images)")
    p.add_argument("--config", default="small", choices=sorted(MODEL_CONFIGS), help="architecture (default: small)")
    p.add_argument("--epochs", type=int, default=None, help="default: the config's preset")
    p.add_argument("--batch-size", type=int, default=None, help="default: the config's preset")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: preset, x0.1 to fine-tune)")
    p.add_argument("--checkpoint", default=None, help="fine-tune these weights instead of training from scratch")
    p.add_argument("--clip-model", default=None, help="open_clip model name of a non-catalog --checkpoint")
    p.add_argument("--extra-posters", default=None, help="an ml-1m posters folder (movies.dat + posters/) "
                   "to add as pairs (default: ml-1m-posters beside the data dir, when found)")
    p.add_argument("--no-extra-posters", action="store_true", help="use the KG's pairs only")
    p.add_argument("--out", default=None, help="checkpoint path (default: <kg>/clip/catalog_clip.pt)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: on a busy 2-core "
                   "machine 2 threads were 5x slower per step; raise it on an idle many-core one)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_pretrain)
    return p


def run_pretrain(args: argparse.Namespace) -> int:
    """Collect the pairs, train, save and print the held-out retrieval metrics."""
    from kg.data_dir import find_data_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    kg_dir = Path(args.kg)
    if not kg_dir.is_dir():
        raise MMKGError(f"KG directory {str(kg_dir)!r} does not exist")
    extra = args.extra_posters
    if extra is None and not args.no_extra_posters:
        try:
            extra = str(find_data_dir(None, "ml-1m-posters"))
        except MMKGError:
            log.info("CLIP: no ml-1m-posters folder found; training on the KG's pairs only")
    pairs = catalog_pairs(kg_dir, None if args.no_extra_posters else extra)
    log.info("CLIP: %d image-text pairs (%d groups)%s", len(pairs), len({p[0] for p in pairs}),
             f", with the extra posters of {extra}" if extra and not args.no_extra_posters else "")
    config = ClipPretrainConfig(
        config=args.config, checkpoint=args.checkpoint, clip_model=args.clip_model, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device, show_progress=not args.quiet,
    )
    out = Path(args.out) if args.out else kg_dir / "clip" / "catalog_clip.pt"
    result = pretrain_clip(pairs, config, out)
    print(format_report(result))
    return 0


def format_report(result: dict[str, Any]) -> str:
    """A few lines: mode, sizes, time and the held-out recall table against chance."""
    lines = [
        f"CLIP {result['mode']} ({result['config']}) on {result['device']}: {result['train_pairs']} training pairs "
        f"({result['train_groups']} films), {result['epochs']} epochs in {result['train_seconds']:.0f}s; "
        f"probe loss {result['loss_before']:.3f} -> {result['loss_after']:.3f}",
        f"held-out retrieval over {result['heldout_groups']} films:      R@1     R@5    R@10",
    ]
    for key in ("image_to_text", "text_to_image", "chance"):
        if key in result:
            lines.append(f"  {key:<14}" + "".join(f"{result[key][f'R@{k}']:8.3f}" for k in KS))
    if "p_value" in result:  # how likely a random model does at least this well
        lines.append(f"  R@{max(KS)} above chance? one-sided binomial p-value: image->text "
                     f"{result['p_value']['image_to_text']:.1e}, text->image {result['p_value']['text_to_image']:.1e}")
    lines.append(f"checkpoint: {result['out']}")
    return "\n".join(lines)
