"""Full-ranking evaluation speed: vectorised batches vs a naive per-user loop, in the same run.

``python benchmarks/eval_speed.py [--users 943] [--items 1682] [--train 80000] [--test 20000] [--threads 1]``
builds ml-100k-sized random data (64-d user / item embeddings, a dot-product ``score_fn``, ``--train``
masked training pairs and ``--test`` held-out pairs, disjoint), then times (median of ``--repeats`` runs):

1. scoring + masking + top-20 for all users with :func:`evaluation.ranking.rank_all_items`;
2. the accuracy metrics at K = 10, 20 (:func:`evaluation.metrics.ranking_metrics`) and beyond-accuracy;
3. the whole :class:`evaluation.protocol.TestEvaluator` run (with 1,000 bootstrap resamples, groups);
4. the naive baseline: one user at a time (score row, mask item by item, ``torch.topk``, metrics in
   Python loops), for 1 and for 1 + 2.

Peak memory is the growth of the process resident set during each step (:class:`ResourceMeter`).
Prints a Markdown table and writes ``benchmarks/results/eval_speed.md``. Target: step 1 < 1 s.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluation.beyond_accuracy import beyond_accuracy  # noqa: E402
from evaluation.metrics import ranking_metrics  # noqa: E402
from evaluation.protocol import TestEvaluator  # noqa: E402
from evaluation.ranking import UserItemSets, build_user_item_sets, rank_all_items  # noqa: E402
from evaluation.report_tables import ResourceMeter, write_text_atomic  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "eval_speed.md"
KS = (10, 20)
TARGET_SECONDS = 1.0


def make_data(n_users: int, n_items: int, n_train: int, n_test: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    cells = rng.choice(n_users * n_items, size=n_train + n_test, replace=False)
    users, items = cells // n_items, cells % n_items
    train = build_user_item_sets(users[:n_train], items[:n_train], n_users, n_items)
    test = build_user_item_sets(users[n_train:], items[n_train:], n_users, n_items)
    gen = torch.Generator().manual_seed(seed)
    emb_u, emb_i = torch.randn(n_users, 64, generator=gen), torch.randn(n_items, 64, generator=gen)
    return train, test, emb_u, emb_i


def naive_rank(emb_u: torch.Tensor, emb_i: torch.Tensor, train: UserItemSets, k: int) -> list[list[int]]:
    out = []
    for u in range(emb_u.shape[0]):
        scores = emb_i @ emb_u[u]
        for i in train.row(u).tolist():
            scores[i] = -math.inf
        out.append(torch.topk(scores, k).indices.tolist())
    return out


def naive_metrics(lists: list[list[int]], test: UserItemSets) -> dict[str, float]:
    sums: dict[str, float] = {}
    n = 0
    for u, top in enumerate(lists):
        rel = set(test.row(u).tolist())
        if not rel:
            continue
        n += 1
        for k in KS:
            hits = [1 if i in rel else 0 for i in top[:k]]
            dcg = sum(h / math.log2(j + 2) for j, h in enumerate(hits))
            idcg = sum(1 / math.log2(j + 2) for j in range(min(k, len(rel))))
            ap, seen = 0.0, 0
            for j, h in enumerate(hits):
                seen += h
                ap += seen / (j + 1) if h else 0.0
            p, r = sum(hits) / k, sum(hits) / len(rel)
            first = next((j for j, h in enumerate(hits) if h), None)
            values = {"recall": r, "precision": p, "f1": 2 * p * r / (p + r) if p + r else 0.0, "ndcg": dcg / idcg,
                      "hit": float(any(hits)), "mrr": 0.0 if first is None else 1 / (first + 1),
                      "map": ap / min(k, len(rel))}
            for name, v in values.items():
                sums[f"{name}@{k}"] = sums.get(f"{name}@{k}", 0.0) + v
    return {name: v / n for name, v in sums.items()}


def measure(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """(median seconds, max peak-RSS growth in MB, last result) over ``repeats`` runs after one warm-up."""
    result = fn()
    times, peaks = [], []
    for _ in range(repeats):
        with ResourceMeter() as meter:
            result = fn()
        times.append(meter.seconds)
        peaks.append(meter.peak_mem_mb)
    return statistics.median(times), max(peaks), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=943)
    parser.add_argument("--items", type=int, default=1682)
    parser.add_argument("--train", type=int, default=80_000)
    parser.add_argument("--test", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--no-write", action="store_true", help="print only, do not write the results file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train, test, emb_u, emb_i = make_data(args.users, args.items, args.train, args.test)
    users = torch.arange(args.users)
    score_fn = lambda u: emb_u[u] @ emb_i.T  # noqa: E731
    k_max = max(KS)

    rank_s, rank_mb, top = measure(
        lambda: rank_all_items(score_fn, users, args.items, train, k_max, args.batch_size), args.repeats)
    metric_s, metric_mb, fast = measure(
        lambda: (ranking_metrics(top, test, KS, users).means(), beyond_accuracy(top, train.item_counts(), KS)),
        args.repeats)
    evaluator = TestEvaluator(train, build_user_item_sets([], [], args.users, args.items), test, ks=KS,
                              batch_size=args.batch_size, n_resamples=1000)
    full = [evaluator.evaluate(score_fn, f"run-{i}") for i in range(args.repeats + 1)][1:]
    full_s, full_mb = statistics.median(r.seconds for r in full), max(r.peak_mem_mb for r in full)
    naive_repeats = max(1, args.repeats // 2)
    naive_rank_s, naive_rank_mb, naive_top = measure(lambda: naive_rank(emb_u, emb_i, train, k_max), naive_repeats)
    naive_metric_s, _, naive_means = measure(lambda: naive_metrics(naive_top, test), naive_repeats)

    same_lists = np.array_equal(np.asarray(naive_top), top.numpy())
    max_diff = max(abs(fast[0][n] - naive_means[n]) for n in naive_means)
    rows = [
        ("scoring + mask + top-20 (vectorised)", rank_s, rank_mb, ""),
        ("scoring + mask + top-20 (naive per-user loop)", naive_rank_s, naive_rank_mb,
         f"{naive_rank_s / rank_s:.1f}x slower"),
        ("7 metrics @10,20 + beyond-accuracy (vectorised)", metric_s, metric_mb, ""),
        ("7 metrics @10,20 (naive Python loops)", naive_metric_s, 0.0, f"{naive_metric_s / metric_s:.1f}x slower"),
        ("ranking + metrics (vectorised)", rank_s + metric_s, max(rank_mb, metric_mb), ""),
        ("ranking + metrics (naive)", naive_rank_s + naive_metric_s, naive_rank_mb,
         f"{(naive_rank_s + naive_metric_s) / (rank_s + metric_s):.1f}x slower"),
        ("TestEvaluator.evaluate (ranking, metrics, 1000-resample CIs, groups, beyond)", full_s, full_mb, ""),
    ]
    lines = [
        "# Evaluation speed: full ranking, vectorised vs naive per-user loop",
        "",
        f"Data: {args.users} users x {args.items} items, {train.indices.size} masked training pairs, "
        f"{test.indices.size} held-out pairs, 64-d random embeddings, dot-product score_fn, batch size "
        f"{args.batch_size}. torch {torch.__version__}, {args.threads} CPU thread(s), "
        f"{platform.processor() or platform.machine()}. Median of {args.repeats} runs "
        f"({naive_repeats} for the naive loop) after a warm-up; peak = growth of the resident set.",
        "",
        "| step | seconds | peak MB | vs vectorised |",
        "|---|---|---|---|",
        *[f"| {name} | {s:.4f} | {mb:.1f} | {note} |" for name, s, mb, note in rows],
        "",
        f"Target: scoring + top-20 for all users < {TARGET_SECONDS:.0f} s -> "
        f"{'met' if rank_s < TARGET_SECONDS else 'NOT met'} ({rank_s:.3f} s).",
        f"Cross-check: naive and vectorised top-20 lists identical: {same_lists}; "
        f"largest metric difference {max_diff:.2e}.",
        f"Test recall@20 = {full[-1].mean('recall@20'):.4f} (random embeddings, so near "
        f"{20 / (args.items - args.train / args.users):.4f}, the chance level).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_text_atomic(RESULTS, text)
        print(f"wrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
