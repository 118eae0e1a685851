"""Encoder speed: TextEncoder vs sentence-transformers, the embedding cache, CLIP, the full ml-100k KG.

``python benchmarks/encode.py [--n 1000] [--threads 1] [--kg DIR] [--skip-kg] [--skip-clip]``

1. texts/s of :class:`encoders.text.TextEncoder` vs ``sentence_transformers.SentenceTransformer``
   on the same all-MiniLM-L6-v2 folder and the same ``--n`` inputs (ml-100k item texts
   "title. genres. summary" when the data is found, else generated), torch threads
   ``--threads``, batch 64; ratio target >= 0.9; max |difference| of the embeddings.
2. a rerun through the embedding cache: speed-up over encoding (target >= 10x).
3. the CLIP image tower's images/s and catalog CLIP pre-training (time, held-out
   Recall@10 vs chance) via :mod:`encoders.clip` / :mod:`encoders.clip_pretrain` (when present).
4. the full ml-100k KG (items + entities + users) through ``build_node_features``, once and
   rerun from the cache (the KG is built with ``kg.datasets.movielens`` + ``kg ingest`` into
   ``benchmarks/work/`` unless ``--kg`` is given).

Writes ``benchmarks/results/encode.md``.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "benchmarks" / "work"
RESULTS = ROOT / "benchmarks" / "results" / "encode.md"

import torch  # noqa: E402

from encoders.text import TextEncoder, default_text_model  # noqa: E402

RATIO_TARGET, CACHE_TARGET = 0.9, 10.0


def load_texts(n: int) -> tuple[list[str], str]:
    """``n`` ml-100k item texts "title. genres. summary" (cycled if fewer), else generated ones."""
    import pandas as pd

    from kg.data_dir import find_data_dir
    from kg.errors import MMKGError

    try:
        data = find_data_dir(None)
        items = pd.read_csv(data / "ml-100k.item", sep="\t", dtype=str).fillna("")
        imdb = pd.read_csv(data / "ml-100k.imdb.csv", dtype=str).fillna("")
    except (MMKGError, OSError) as e:
        print(f"ml-100k not found ({e}); generating texts")
        words = "film story love war city night family friend secret journey dark light".split()
        return [" ".join(words[(i * 7 + j) % len(words)] for j in range(20 + i % 80)) for i in range(n)], "generated"
    summary = dict(zip(imdb["item_id"], imdb["summary"], strict=True))
    texts = []
    for iid, title, genres in zip(items["item_id:token"], items["movie_title:token_seq"], items["class:token_seq"],
                                  strict=True):
        texts.append(". ".join(p for p in (title, genres.replace(" ", ", "), summary.get(iid, "")) if p))
    return [texts[i % len(texts)] for i in range(n)], f"ml-100k item texts ({data})"


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def bench_text(texts: list[str], repeats: int) -> dict:
    from sentence_transformers import SentenceTransformer

    folder = str(default_text_model())
    ours = TextEncoder(folder, device="cpu", batch_size=64, show_progress=False)
    st = SentenceTransformer(folder, device="cpu")
    ours(texts[:64])
    st.encode(texts[:64], batch_size=64)
    t_ours, t_st = [], []
    for _ in range(repeats):  # interleaved, best of ``repeats`` each
        emb, t = timed(ours, texts)
        t_ours.append(t)
        ref, t = timed(lambda x: st.encode(x, batch_size=64, normalize_embeddings=True, convert_to_tensor=True), texts)
        t_st.append(t)
    n = len(texts)
    with tempfile.TemporaryDirectory() as cache:
        cached = TextEncoder(folder, device="cpu", batch_size=64, cache_dir=cache, show_progress=False)
        _, t_fill = timed(cached, texts)
        again = TextEncoder(folder, device="cpu", batch_size=64, cache_dir=cache, show_progress=False)
        hit, t_hit = timed(again, texts)
        assert again.last_stats["encoded"] == 0
    return {
        "ours": n / min(t_ours), "st": n / min(t_st), "ratio": min(t_st) / min(t_ours),
        "diff": float((emb - ref.cpu()).abs().max()), "cache_diff": float((hit - emb).abs().max()),
        "t_ours": min(t_ours), "t_st": min(t_st), "t_fill": t_fill, "t_hit": t_hit,
        "speedup": min(t_ours) / t_hit, "distinct": len(set(texts)), "identity": ours.identity,
    }


def ensure_kg(kg_dir: str | None) -> Path:
    if kg_dir:
        return Path(kg_dir)
    out = WORK / "ml-100k-kg"
    if not (out / "schema.json").exists():
        WORK.mkdir(parents=True, exist_ok=True)
        ttl = WORK / "ml-100k.ttl"
        subprocess.run([sys.executable, "-m", "kg.datasets.movielens", "--out", str(ttl)], check=True, cwd=ROOT)
        subprocess.run([sys.executable, "-m", "kg", "ingest", str(ttl), "--out", str(out)], check=True, cwd=ROOT)
    return out


def bench_kg(kg_dir: Path) -> dict:
    from encoders.features import build_node_features
    from kg.model.graph import KnowledgeGraph

    kg = KnowledgeGraph.load(kg_dir)
    counts = {t: kg.num_nodes(t) for t in ("item", "entity", "user")}
    with tempfile.TemporaryDirectory() as cache:
        runs = []
        for _ in range(2):
            enc = TextEncoder(device="cpu", cache_dir=cache, show_progress=True)
            feats, t = timed(build_node_features, kg, kg_dir, enc)
            runs.append((t, {k: dict(v) for k, v in feats.stats.items()}))
    return {"counts": counts, "first": runs[0], "rerun": runs[1]}


def bench_clip(kg_dir: Path, epochs: int | None, checkpoint: str | None) -> str:
    """Catalog CLIP pre-training (time, held-out Recall@10 vs chance), then the image tower's images/s.

    With ``checkpoint`` (or an existing ``<kg>/clip/catalog_clip.pt``) the pre-training metrics are
    those recorded in the checkpoint by ``pretrain_clip``; else it trains one for ``epochs``."""
    try:
        from encoders.clip import ClipImageEncoder, load_clip
        from encoders.clip_pairs import binomial_tail, catalog_pairs
        from encoders.clip_pretrain import ClipPretrainConfig, pretrain_clip
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("encoders.clip"):
            raise
        return f"Not measured: `{e.name}` does not exist yet.\n"
    from encoders.features import resolve_image
    from kg.data_dir import find_data_dir
    from kg.errors import MMKGError
    from kg.model.graph import KnowledgeGraph

    try:
        extra = str(find_data_dir(None, "ml-1m-posters"))
    except MMKGError:
        extra = None
    existing = Path(checkpoint) if checkpoint else kg_dir / "clip" / "catalog_clip.pt"
    if existing.is_file():
        ckpt, how = existing, f"recorded in the existing checkpoint `{existing}`"
        res = load_clip(str(ckpt), str(ckpt), device="cpu").meta.get("metrics")
        if not res:
            return f"Not measured: {ckpt} records no pre-training metrics.\n"
    else:
        ckpt, how = WORK / "clip-bench" / "catalog_clip.pt", "trained by this benchmark"
        res = pretrain_clip(catalog_pairs(kg_dir, extra), ClipPretrainConfig(epochs=epochs, device="cpu"), ckpt)
    kg = KnowledgeGraph.load(kg_dir)
    paths = [str(resolve_image(r, kg_dir)) for _, r in sorted(kg.images["item"].items())]
    bundle = load_clip(str(ckpt), str(ckpt), device="cpu")
    with tempfile.TemporaryDirectory() as cache:
        enc = ClipImageEncoder(bundle, batch_size=64, cache_dir=cache, show_progress=False)
        enc(paths[:64])
        again = ClipImageEncoder(bundle, batch_size=64, cache_dir=cache, show_progress=False)
        _, t_enc = timed(ClipImageEncoder(bundle, batch_size=64, show_progress=False), paths)
        _, t_fill = timed(enc, paths)
        _, t_hit = timed(again, paths)
    i2t, t2i, chance = (res[k]["R@10"] for k in ("image_to_text", "text_to_image", "chance"))
    n = res["heldout_groups"]  # checkpoints from before p-values were recorded: from the hit count
    p_i2t = res.get("p_value", {}).get("image_to_text", binomial_tail(n, round(i2t * n), chance))
    return "\n".join([
        f"Catalog pre-training (`encoders.clip_pretrain.pretrain_clip`, {how}; {res['mode']} `{res['config']}` on "
        f"{res['device']}): {res['train_pairs']} training pairs ({res['train_groups']} films), "
        f"{res['epochs']} epochs, batch {res['batch_size']}: **{res['train_seconds']:.0f} s**; probe loss "
        f"{res['loss_before']:.3f} -> {res['loss_after']:.3f}.", "",
        f"Held-out retrieval over {res['heldout_groups']} films: image->text Recall@10 **{i2t:.3f}**, "
        f"text->image {t2i:.3f}, chance {chance:.3f} ({i2t / chance:.1f}x chance; one-sided binomial p-value of "
        f"the image->text hits under a random ranking: {p_i2t:.1e}).", "",
        f"Image tower (`ClipImageEncoder`, `{bundle.identity}`), {len(paths)} ml-100k posters, batch 64: "
        f"**{len(paths) / t_enc:.1f} images/s** ({t_enc:.1f} s, decoding included); through the cache: first run "
        f"{t_fill:.1f} s, rerun {t_hit:.2f} s ({t_enc / t_hit:.0f}x).", "",
    ])


def render(args, source: str, text: dict, kg: dict | None, clip: str) -> str:
    ok = "met" if text["ratio"] >= RATIO_TARGET else "**MISSED**"
    ok_cache = "met" if text["speedup"] >= CACHE_TARGET else "**MISSED**"
    lines = [
        "# Encoder benchmark", "",
        f"Machine: {platform.machine()}, {args.threads} torch thread(s) for the text comparison, "
        f"{args.bulk_threads} for CLIP and the full KG (of a shared "
        f"{__import__('os').cpu_count()}-CPU box), Python {platform.python_version()}, torch {torch.__version__}. "
        "Generated by `python benchmarks/encode.py`.", "",
        f"## Text LM: TextEncoder vs sentence-transformers ({args.n} inputs, CPU)", "",
        f"Inputs: {source}; {text['distinct']} distinct. Model: `{text['identity']}`. Batch 64, best of "
        f"{args.repeats}, runs interleaved.", "",
        "| encoder | seconds | texts/s |", "|---|---:|---:|",
        f"| sentence_transformers.SentenceTransformer | {text['t_st']:.2f} | {text['st']:.1f} |",
        f"| encoders.text.TextEncoder | {text['t_ours']:.2f} | {text['ours']:.1f} |", "",
        f"Ratio TextEncoder / sentence-transformers: **{text['ratio']:.2f}** (target >= {RATIO_TARGET}: {ok}); "
        f"max |embedding difference| {text['diff']:.2e}.", "",
        "## Embedding cache", "",
        f"First run with a cache: {text['t_fill']:.2f} s (encode + write shards). Rerun from the cache (fresh "
        f"encoder, model load excluded): {text['t_hit']:.3f} s, **{text['speedup']:.0f}x** faster than encoding "
        f"(target >= {CACHE_TARGET:.0f}x: {ok_cache}); max |difference| {text['cache_diff']:.1e}.", "",
        "## CLIP", "", clip,
    ]
    if kg is not None:
        lines += ["## Full ml-100k KG (`build_node_features`, text LM only)", "",
                  f"Nodes: {kg['counts']}.", "", "| run | seconds | per key: encoded / cached |", "|---|---:|---|"]
        for name in ("first", "rerun"):
            t, stats = kg[name]
            detail = "; ".join(f"{k} {s.get('encoded', 0)}/{s.get('cached', 0)}" for k, s in stats.items())
            lines.append(f"| {name} | {t:.1f} | {detail} |")
        lines += ["", f"Rerun speed-up: {kg['first'][0] / kg['rerun'][0]:.0f}x.", ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--bulk-threads", type=int, default=2, help="torch threads of the CLIP and full-KG sections")
    ap.add_argument("--kg", default=None, help="a saved ml-100k KG directory (default: built in benchmarks/work)")
    ap.add_argument("--skip-kg", action="store_true")
    ap.add_argument("--skip-clip", action="store_true")
    ap.add_argument("--clip-epochs", type=int, default=None, help="CLIP pre-training epochs (default: preset)")
    ap.add_argument("--clip-checkpoint", default=None, help="a catalog checkpoint to measure instead of training one")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    texts, source = load_texts(args.n)
    text = bench_text(texts, args.repeats)
    print(text)
    torch.set_num_threads(args.bulk_threads)
    kg_dir = None if args.skip_kg and args.skip_clip else ensure_kg(args.kg)
    clip = "Skipped (--skip-clip).\n" if args.skip_clip else bench_clip(kg_dir, args.clip_epochs, args.clip_checkpoint)
    print(clip)
    kg = None if args.skip_kg else bench_kg(kg_dir)
    report = render(args, source, text, kg, clip)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
