"""``mmkgrec-encode`` / ``python -m encoders``: encode a KG's node features.

    python -m encoders encode --kg DIR [--text-model PATH_OR_ID]
        [--clip-model NAME --clip-pretrained TAG_OR_PATH | --no-clip]
        [--cache-dir DIR] [--threads N] [--batch-size N]

writes ``DIR/features/features.safetensors`` + ``features.json`` and prints a
summary (inputs encoded, served from the cache, missing / failed). The embedding
cache lives outside the KG directory (default ``$MMKGREC_CACHE``, else
``$XDG_CACHE_HOME/mmkgrec/embeddings`` or ``~/.cache/mmkgrec/embeddings``) so it
survives re-ingesting the KG. Without ``--clip-pretrained``, the catalog-pretrained
checkpoint ``DIR/clip/catalog_clip.pt`` is used when it exists, else CLIP is skipped.

The ``pretrain-clip`` subcommand comes from :mod:`encoders.clip_pretrain`
(``add_pretrain_parser(subparsers)`` and ``run_pretrain(args) -> int``) when present.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from kg.errors import MMKGError

log = logging.getLogger("encoders")
CATALOG_CLIP = Path("clip") / "catalog_clip.pt"


def default_cache_dir() -> Path:
    """``$MMKGREC_CACHE``, else ``$XDG_CACHE_HOME/mmkgrec/embeddings``, else ``~/.cache/mmkgrec/embeddings``."""
    if os.environ.get("MMKGREC_CACHE"):
        return Path(os.environ["MMKGREC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mmkgrec" / "embeddings"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmkgrec-encode", description="Multimodal node features of a KG.")
    sub = parser.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encode", help="encode items, entities and users of a saved KG directory")
    enc.add_argument("--kg", required=True, help="the KG directory (written by `mmkgrec-kg ingest`)")
    enc.add_argument("--text-model", default=None, help="text LM folder or hub id (default: all-MiniLM-L6-v2)")
    enc.add_argument("--clip-model", default=None, help="open_clip model name (not needed for a catalog checkpoint)")
    enc.add_argument("--clip-pretrained", default=None, help="open_clip pretrained tag or checkpoint path")
    enc.add_argument("--no-clip", action="store_true", help="skip the CLIP image / text features")
    enc.add_argument(
        "--cache-dir", default=None,
        help="embedding cache root (default: $MMKGREC_CACHE, else ~/.cache/mmkgrec/embeddings)",
    )
    enc.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    enc.add_argument("--batch-size", type=int, default=64, help="inputs per forward pass (default: %(default)s)")
    enc.add_argument("--max-neighbours", type=int, default=5, help="neighbours named in entity descriptions")
    enc.add_argument("--quiet", action="store_true", help="no progress bars")
    enc.set_defaults(func=run_encode)
    _add_pretrain_hook(sub)
    return parser


def _add_pretrain_hook(sub: argparse._SubParsersAction) -> None:
    """Register ``pretrain-clip`` from :mod:`encoders.clip_pretrain` when that module exists."""
    try:
        from encoders.clip_pretrain_cli import add_pretrain_parser, run_pretrain
    except ModuleNotFoundError as e:
        if e.name != "encoders.clip_pretrain":
            raise
        return
    add_pretrain_parser(sub)
    sub.choices["pretrain-clip"].set_defaults(func=run_pretrain)


def resolve_clip_checkpoint(kg_dir: Path, pretrained: str | None, no_clip: bool) -> str | None:
    """The CLIP weights to use: ``--clip-pretrained``, else ``<kg>/clip/catalog_clip.pt``, else ``None`` (skip)."""
    if no_clip:
        log.info("CLIP: skipped (--no-clip)")
        return None
    if pretrained:
        log.info("CLIP: using --clip-pretrained %s", pretrained)
        return pretrained
    catalog = kg_dir / CATALOG_CLIP
    if catalog.is_file():
        log.info("CLIP: using the catalog-pretrained checkpoint %s", catalog)
        return str(catalog)
    log.info(
        "CLIP: skipped (no --clip-pretrained and no %s; run `mmkgrec-encode pretrain-clip --kg %s` to make one)",
        catalog, kg_dir,
    )
    return None


def run_encode(args: argparse.Namespace) -> int:
    import torch

    from encoders.features import FEATURES_DIR, build_node_features, save_features
    from encoders.registry import create_encoder
    from kg.model.graph import KnowledgeGraph

    if args.threads:
        torch.set_num_threads(args.threads)
    kg_dir = Path(args.kg)
    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    start = time.perf_counter()
    kg = KnowledgeGraph.load(kg_dir)
    show = not args.quiet
    text = create_encoder(
        "text", model=args.text_model, batch_size=args.batch_size, cache_dir=cache_dir, show_progress=show
    )
    log.info("text model: %s (cache %s)", text.identity, cache_dir)
    clip_image = clip_text = None
    checkpoint = resolve_clip_checkpoint(kg_dir, args.clip_pretrained, args.no_clip)
    if checkpoint is not None:
        from encoders.clip import load_clip, looks_like_path

        if args.clip_model is None and not looks_like_path(checkpoint):
            raise MMKGError(f"--clip-pretrained {checkpoint!r} is a pretrained tag: give --clip-model too")
        bundle = load_clip(args.clip_model or checkpoint, checkpoint)
        kw = {"bundle": bundle, "cache_dir": cache_dir, "batch_size": args.batch_size, "show_progress": show}
        clip_image, clip_text = create_encoder("image", **kw), create_encoder("clip_text", **kw)
        log.info("CLIP: %s", bundle.identity)
    feats = build_node_features(kg, kg_dir, text, clip_image, clip_text, max_neighbours=args.max_neighbours)
    out = save_features(kg_dir / FEATURES_DIR, feats, feats.identities)
    print(f"features: {out} ({time.perf_counter() - start:.1f}s)")
    for key, stats in feats.stats.items():
        print(f"  {key}: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MMKGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
