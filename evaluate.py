"""Evaluate a trained checkpoint on its test (or validation) split, or measure its robustness.

``python evaluate.py --checkpoint RUN/best.pt [--kg DIR] [--ks 10,20,50] [--split test|valid] [--out-dir DIR]
[--bootstrap 1000] [--groups 4] [--device cpu] [--threads N]`` loads the checkpoint, its KG and the split
rebuilt from the recorded method / seed, ranks every item for every user with a held-out item (training items
masked; for test also validation items) through :class:`~evaluation.protocol.TestEvaluator`, prints the table
and writes ``eval_<split>.json`` + ``eval_<split>.md`` (atomically) into ``--out-dir`` (default: the
checkpoint's folder). The report holds the evaluation time for all users and the peak memory, plus the
metrics train.py recorded for the same checkpoint.

``--robustness [--levels 0,0.1,0.2,0.4]`` scores the same weights on perturbed inputs instead (see
:mod:`evaluation.robustness`), prints the table and, with ``--out-dir``, writes ``robustness.json`` / ``.md``.

``python evaluate.py topk --checkpoint RUN/best.pt [--kg DIR] --k 20 --out recs.parquet [--mask train|seen|none]
[--batch-size 1024]`` writes every user's top-k to a Parquet file (columns ``user``, ``rank``, ``item``, ``score``;
external ids; the training items masked by default), streamed a batch of users at a time
(:mod:`evaluation.topk_export`).

Nothing here feeds back into training: this script only reads a finished checkpoint and writes reports.
Bad input (missing checkpoint, a KG whose ids differ from the checkpoint's) -> ``error: <msg>``, exit 2,
nothing written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from evaluation.checkpoint_scoring import LoadedCheckpoint, load_checkpoint
from evaluation.protocol import SplitResult, TestEvaluator, ValidationEvaluator
from evaluation.report_tables import ResourceMeter, build_report, render_table, write_report, write_text_atomic
from evaluation.robustness import PERTURBATIONS, render_robustness, run_robustness
from evaluation.topk_export import MASKS, write_topk_parquet
from kg.errors import MMKGError


def _numbers(text: str, kind: type, smallest: float, what: str) -> tuple:
    try:
        values = tuple(kind(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None
    if not values or min(values) < smallest:
        raise argparse.ArgumentTypeError(f"expected {what} >= {smallest}, got {text!r}")
    return values


def _ints(text: str) -> tuple[int, ...]:
    return _numbers(text, int, 1, "integers")


def _floats(text: str) -> tuple[float, ...]:
    return _numbers(text, float, 0, "numbers")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmkgrec-evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, type=Path, help="a checkpoint written by train.py")
    p.add_argument("--kg", type=Path, default=None, help="KG directory (default: the one the checkpoint records)")
    p.add_argument("--ks", type=_ints, default=(10, 20, 50), help="cut-offs (default: 10,20,50)")
    p.add_argument("--split", choices=("test", "valid"), default="test")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="where reports go (default: the checkpoint's folder; robustness: stdout only)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for 95%% CIs (0 = none)")
    p.add_argument("--groups", type=int, default=4, help="user-activity groups (0 = none)")
    p.add_argument("--batch-size", type=int, default=1024, help="users scored at once")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and of the perturbations")
    p.add_argument("--robustness", action="store_true", help="score the checkpoint on perturbed inputs")
    p.add_argument("--levels", type=_floats, default=(0.0, 0.1, 0.2, 0.4), help="perturbation levels")
    p.add_argument("--perturbations", default=",".join(PERTURBATIONS), help="comma list of perturbations")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def evaluate_split(ck: LoadedCheckpoint, split: str, ks: tuple[int, ...], n_resamples: int, n_groups: int,
                   batch_size: int, seed: int, device: str) -> tuple[SplitResult, dict[str, float]]:
    """Rank every item for every user with a held-out item of ``split``; returns the frozen result and the
    time / peak memory of the model's forward pass (computing the embeddings once)."""
    train, valid, test = ck.sets
    with ResourceMeter(device) as meter:
        score_fn = ck.score_fn()
    forward = {"seconds": meter.seconds, "peak_mem_mb": meter.peak_mem_mb}
    if split == "test":
        ev = TestEvaluator(train, valid, test, ks=ks, batch_size=batch_size, n_resamples=n_resamples, seed=seed,
                           n_groups=n_groups, device=device)
        return ev.evaluate(score_fn, str(ck.path)), forward
    main = f"ndcg@{20 if 20 in ks else max(ks)}"
    ev = ValidationEvaluator(train, valid, ks=ks, main_metric=main, batch_size=batch_size, n_resamples=n_resamples,
                             seed=seed, n_groups=n_groups, beyond=True, device=device)
    return ev.evaluate(score_fn), forward


def compare_recorded(recorded: dict[str, float], report: dict[str, Any], split: str) -> dict[str, Any]:
    """The metrics train.py recorded for ``split`` next to the ones just computed, with the largest gap."""
    now = report["metrics"].get(split, {})
    common = sorted(k for k in recorded if k in now and now[k]["mean"] is not None)
    diffs = {k: abs(float(recorded[k]) - now[k]["mean"]) for k in common}
    return {"recorded": {k: float(recorded[k]) for k in common}, "max_abs_diff": max(diffs.values(), default=None),
            "matches": bool(common) and max(diffs.values()) < 1e-6}


def run_evaluation(args: argparse.Namespace, ck: LoadedCheckpoint) -> int:
    result, forward = evaluate_split(ck, args.split, args.ks, args.bootstrap, args.groups, args.batch_size,
                                     args.seed, args.device)
    meta = {**ck.describe(), "split_evaluated": args.split, "ks": list(args.ks), "bootstrap": args.bootstrap,
            "bootstrap_seed": args.seed, "groups": args.groups, "device": args.device,
            "threads": torch.get_num_threads(), "model_forward": forward,
            "heldout_masked": result.heldout_masked}
    report = build_report({args.split: result}, meta)
    check = compare_recorded(ck.recorded_metrics(args.split), report, args.split)
    report["meta"]["recorded_by_train"] = check
    out_dir = args.out_dir or ck.path.parent
    json_path, md_path = out_dir / f"eval_{args.split}.json", out_dir / f"eval_{args.split}.md"
    write_report(report, json_path, md_path)
    print(render_table(report))
    print(f"model forward: {forward['seconds']:.2f} s, peak +{forward['peak_mem_mb']:.1f} MB; "
          f"ranking + metrics for all {result.users_evaluated} users: {result.seconds:.2f} s, "
          f"peak +{result.peak_mem_mb:.1f} MB")
    if check["recorded"]:
        print(f"train.py recorded {args.split} metrics: {'match' if check['matches'] else 'DIFFER'} "
              f"(largest |difference| {check['max_abs_diff']:.2e} over {len(check['recorded'])} metrics)")
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


def run_robustness_cli(args: argparse.Namespace, ck: LoadedCheckpoint) -> int:
    names = [p for p in args.perturbations.split(",") if p]
    train, valid, test = ck.sets
    if args.split == "test":
        ev = TestEvaluator(train, valid, test, ks=args.ks, batch_size=args.batch_size, n_resamples=0, n_groups=0,
                           beyond=False, device=args.device)
        evaluate = lambda fn, tag: ev.evaluate(fn, f"{ck.path}#{tag}")  # noqa: E731
    else:
        vev = ValidationEvaluator(train, valid, ks=args.ks, main_metric=f"ndcg@{max(args.ks)}",
                                  batch_size=args.batch_size, device=args.device)
        evaluate = lambda fn, tag: vev.evaluate(fn)  # noqa: E731
    keep = [f"{m}@{k}" for m in ("recall", "ndcg") for k in args.ks]

    def means(fn, tag: str) -> dict[str, float]:
        result = evaluate(fn, tag)
        return {k: result.mean(k) for k in keep}

    meta = {**ck.describe(), "split": args.split, "checkpoint": str(ck.path)}
    table = run_robustness(ck.inputs, ck.score_fn_for_inputs(), means, args.levels, names, args.seed,
                           progress=not args.quiet, meta=meta)
    print(render_robustness(table))
    if args.out_dir is not None:
        write_text_atomic(args.out_dir / "robustness.json", json.dumps(table, indent=1, allow_nan=False) + "\n")
        head = (f"# Robustness to perturbed inputs\n\nModel `{meta['model']}` from `{ck.path}` (its weights, never "
                f"retrained), {args.split} split rebuilt from seed {ck.split.seed}, perturbation seed {args.seed}; "
                f"`python evaluate.py --checkpoint CKPT --robustness --levels "
                f"{','.join(f'{x:g}' for x in args.levels)}`.\n\n")
        write_text_atomic(args.out_dir / "robustness.md", head + render_robustness(table, markdown=True) + "\n")
        print(f"wrote {args.out_dir / 'robustness.json'} and .md", file=sys.stderr)
    return 0


def build_topk_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmkgrec-evaluate topk", description="every user's top-k to a Parquet file")
    p.add_argument("--checkpoint", required=True, type=Path, help="a checkpoint written by train.py")
    p.add_argument("--kg", type=Path, default=None, help="KG directory (default: the one the checkpoint records)")
    p.add_argument("--k", type=int, default=20, help="items per user (default: 20)")
    p.add_argument("--out", required=True, type=Path, help="the Parquet file to write")
    p.add_argument("--mask", choices=MASKS, default="train",
                   help="items never listed: train (default), seen (train + valid + test) or none")
    p.add_argument("--batch-size", type=int, default=1024, help="users scored at once")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run_topk(args: argparse.Namespace) -> int:
    if args.k < 1 or args.batch_size < 1:
        raise MMKGError("--k and --batch-size must be >= 1")
    ck = load_checkpoint(args.checkpoint, args.kg, device=args.device)
    rows = write_topk_parquet(ck, args.out, args.k, args.batch_size, args.mask, progress=not args.quiet)
    print(f"wrote {rows:,} recommendations for {ck.kg.num_nodes('user'):,} users to {args.out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    topk = bool(argv) and argv[0] == "topk"
    args = build_topk_parser().parse_args(argv[1:]) if topk else build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if topk:
            return run_topk(args)
        if args.bootstrap < 0 or args.groups < 0:
            raise MMKGError("--bootstrap and --groups must be >= 0")
        ck = load_checkpoint(args.checkpoint, args.kg, device=args.device)
        return run_robustness_cli(args, ck) if args.robustness else run_evaluation(args, ck)
    except MMKGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
