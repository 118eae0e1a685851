"""Why an item is recommended, as named paths through the KG, and recommendations under KG constraints.

``python explain.py --checkpoint RUN/best.pt --user U [--item I] [--top 10] [--paths 3] [--format text|json|png]
[--out FILE] [--kg DIR] [--max-hops 4] [--neo4j URI --neo4j-user U --neo4j-password P [--database DB]]``
explains item ``I`` for user ``U`` (or, without ``--item``, the user's ``--top`` recommendations): the
``--paths`` paths whose removal lowers the model's score most, in words, as JSON, or as a PNG per item
(``FILE``, or ``FILE_<rank>.png`` for several). With ``--neo4j`` the candidate paths come from a Neo4j
database holding the KG (see :mod:`kg.neo4j.paths`).

``python explain.py recommend --checkpoint RUN/best.pt --user U --k 10 [--only ENTITY_OR_LABEL ...]
[--exclude ...] [--only-relation REL[=ENTITY] ...] [--exclude-relation REL[=ENTITY] ...] [--explain]
[--format text|json]`` lists the top-k among the items the rules allow (applied before the top-k).

``python explain.py export --checkpoint RUN/best.pt [--kg DIR] --neo4j URI [--user U --password P]
[--database DB] [--k 10] [--batch-size 256] [--model NAME] [--users U ...] [--no-paths]`` writes every user's
(or ``--users``') top-k as ``(:User)-[:RECOMMENDED {rank, score, model, path_*}]->(:Item)`` with the best
explanation path of each (see :mod:`kg.neo4j.recommendation_sink` for the layout and the one-transaction-per-batch
choice); re-running replaces that model's lists. Credentials default to ``NEO4J_URI`` / ``NEO4J_USER`` /
``NEO4J_PASSWORD``. The checkpoint, the users and the connection (and that the KG's users and items are in the
database) are checked before anything is written.

Users and items are named by external id or its last path segment (``196`` for
``http://mmkgrec.dev/movielens/user/196``). Bad input -> ``error: <msg>`` on stderr, exit 2.

:class:`~explanations.explainer.Explainer` (:mod:`explanations.explainer`) is the pipeline behind all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from explanations.explainer import Explainer, load_explainer
from explanations.text import Explanation, NodeNamer, explanation_json, explanation_sentences, node_json, rank_paths
from kg.atomic_files import write_text_atomic
from kg.errors import MMKGError
from kg.model.node_ids import resolve_id

__all__ = ["Explainer", "load_explainer", "resolve_id", "main"]

FORMATS = ("text", "json", "png")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=Path, help="a checkpoint written by train.py")
    p.add_argument("--kg", type=Path, default=None, help="KG directory (default: the one the checkpoint records)")
    p.add_argument("--user", required=True, help="user id (external id or its last segment)")
    p.add_argument("--paths", type=int, default=3, help="paths per explanation (default: 3)")
    p.add_argument("--max-hops", type=int, default=4, help="longest path (default: 4)")
    p.add_argument("--candidates", type=int, default=8, help="paths scored by the model per item (default: 8)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="output file (default: stdout; required for png)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmkgrec-explain", description=__doc__.splitlines()[0])
    _common(p)
    p.add_argument("--item", default=None, help="item to explain (default: the user's top recommendations)")
    p.add_argument("--top", type=int, default=10, help="recommendations explained without --item (default: 10)")
    p.add_argument("--format", choices=FORMATS, default="text")
    p.add_argument("--neo4j", metavar="URI", default=None, help="read candidate paths from this Bolt server")
    p.add_argument("--neo4j-user", default=os.environ.get("NEO4J_USER"))
    p.add_argument("--neo4j-password", default=os.environ.get("NEO4J_PASSWORD"))
    p.add_argument("--database", default=None)
    return p


def build_recommend_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmkgrec-explain recommend", description="top-k under KG constraints")
    _common(p)
    p.add_argument("--k", type=int, default=10, help="list length (default: 10)")
    p.add_argument("--only", nargs="+", action="extend", default=[], metavar="ENTITY",
                   help="keep only items linked to this entity / item (id or label); repeat to require all")
    p.add_argument("--exclude", nargs="+", action="extend", default=[], metavar="ENTITY",
                   help="drop items linked to this entity / item")
    p.add_argument("--only-relation", nargs="+", action="extend", default=[], metavar="REL[=ENTITY]")
    p.add_argument("--exclude-relation", nargs="+", action="extend", default=[], metavar="REL[=ENTITY]")
    p.add_argument("--explain", action="store_true", help="add the best path to every recommendation")
    p.add_argument("--format", choices=("text", "json"), default="text")
    return p


def _write(out: Path | None, text: str) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    write_text_atomic(out, text)


def _load(args: argparse.Namespace):
    if args.paths < 1 or args.max_hops < 2 or args.candidates < 1:
        raise MMKGError("--paths and --candidates must be >= 1 and --max-hops >= 2")
    ck, explainer = load_explainer(args.checkpoint, args.kg, args.device, candidates=args.candidates,
                                   max_hops=args.max_hops)
    return ck, explainer, resolve_id(ck.kg, "user", args.user)


def _seen(ck, user: int) -> torch.Tensor:
    inputs = ck.inputs
    return inputs.train_item[inputs.train_user == user].cpu()


def _neo4j_explanation(args: argparse.Namespace, explainer, user: int, item: int):
    from kg.neo4j.paths import find_paths_neo4j

    if not (args.neo4j_user and args.neo4j_password):
        raise MMKGError("--neo4j needs --neo4j-user and --neo4j-password (or NEO4J_USER / NEO4J_PASSWORD)")
    t0 = time.perf_counter()
    found = find_paths_neo4j(args.neo4j, args.neo4j_user, args.neo4j_password, explainer.kg, user, item,
                             database=args.database, max_hops=args.max_hops, index=explainer.index)
    cands = explainer.pick(user, item, found)
    paths = rank_paths(cands, explainer.drops(user, item, cands), args.paths)
    return Explanation(user, item, float(explainer.scores(user)[item]), paths, len(found), False,
                       time.perf_counter() - t0)


def run_explain(args: argparse.Namespace) -> int:
    if args.format == "png" and args.out is None:
        raise MMKGError("--format png needs --out FILE.png")
    ck, explainer, user = _load(args)
    kg = ck.kg
    if args.item is not None:
        items, ranks = [resolve_id(kg, "item", args.item)], [None]
    else:
        from kg.paths.constraints import constrained_top_k

        _, top = constrained_top_k(explainer.scores(user), torch.ones(kg.num_nodes("item"), dtype=torch.bool),
                                   args.top, _seen(ck, user))
        items, ranks = top.tolist(), list(range(1, top.shape[0] + 1))
    namer = NodeNamer(kg, explainer.index, user)
    exps = [(_neo4j_explanation(args, explainer, user, i) if args.neo4j else explainer.explain(user, i, args.paths))
            for i in items]
    if args.format == "json":
        doc = {"user": node_json(kg, namer, ("user", user)), "checkpoint": str(args.checkpoint),
               "explanations": [explanation_json(kg, namer, ex, r) for ex, r in zip(exps, ranks, strict=True)]}
        _write(args.out, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    elif args.format == "png":
        from explanations.plot import plot_explanation

        for k, ex in enumerate(exps, 1):
            out = args.out if len(exps) == 1 else args.out.with_name(f"{args.out.stem}_{k}{args.out.suffix or '.png'}")
            plot_explanation(namer, ex.item, [sp.path for sp in ex.paths], out, [sp.drop for sp in ex.paths],
                             ex.candidates)
            print(f"wrote {out}")
    else:
        blocks = []
        for ex, rank in zip(exps, ranks, strict=True):
            head = f"#{rank} " if rank is not None else ""
            lines = explanation_sentences(namer, ex.item, [sp.path for sp in ex.paths], ex.candidates)
            drops = [f"  (score drop {sp.drop:.3g})" for sp in ex.paths] or [""]
            blocks.append(f"{head}{namer.name(('item', ex.item))} (score {ex.score:.4g})\n" + "\n".join(
                f"  {line}{d}" for line, d in zip(lines, drops, strict=False)))
        _write(args.out, "\n".join(blocks) + "\n")
    return 0


def run_recommend(args: argparse.Namespace) -> int:
    from kg.paths.constraints import ItemConstraints, constrained_top_k

    if args.k < 1:
        raise MMKGError(f"--k must be >= 1, got {args.k}")
    ck, explainer, user = _load(args)
    kg = ck.kg
    rules = ItemConstraints.parse(kg, args.only, args.exclude, args.only_relation, args.exclude_relation)
    scores, items = constrained_top_k(explainer.scores(user), rules.allowed(kg), args.k, _seen(ck, user))
    namer = NodeNamer(kg, explainer.index, user)
    rows = []
    for rank, (item, score) in enumerate(zip(items.tolist(), scores.tolist(), strict=True), 1):
        row = {"rank": rank, "item": node_json(kg, namer, ("item", item)), "score": score}
        if args.explain:
            ex = explainer.explain(user, item, args.paths)
            paths = [sp.path for sp in ex.paths]
            row["explanation"] = explanation_sentences(namer, item, paths, ex.candidates)[0]
        rows.append(row)
    note = "" if len(rows) == args.k else f"only {len(rows)} items satisfy the constraints"
    if args.format == "json":
        doc = {"user": node_json(kg, namer, ("user", user)), "constraints": rules.describe(), "k": args.k,
               "recommendations": rows, **({"note": note} if note else {})}
        _write(args.out, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        return 0
    lines = [f"top {args.k} for user {kg.ids('user')[user]} ({rules.describe()})" + (f": {note}" if note else "")]
    for row in rows:
        lines.append(f"{row['rank']:>3}. {row['item']['name']}  (score {row['score']:.4g})")
        if "explanation" in row:
            lines.append(f"     {row['explanation']}")
    _write(args.out, "\n".join(lines) + "\n")
    return 0


def build_export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmkgrec-explain export", description="recommendations + paths into Neo4j")
    p.add_argument("--checkpoint", required=True, type=Path, help="a checkpoint written by train.py")
    p.add_argument("--kg", type=Path, default=None, help="KG directory (default: the one the checkpoint records)")
    p.add_argument("--neo4j", metavar="URI", default=os.environ.get("NEO4J_URI"), help="Bolt URI ($NEO4J_URI)")
    p.add_argument("--user", default=os.environ.get("NEO4J_USER"), help="database user ($NEO4J_USER)")
    p.add_argument("--password", default=os.environ.get("NEO4J_PASSWORD"), help="password ($NEO4J_PASSWORD)")
    p.add_argument("--database", default=None, help="database (default: the server's default)")
    p.add_argument("--k", type=int, default=10, help="recommendations per user (default: 10)")
    p.add_argument("--batch-size", type=int, default=256, help="users per transaction (default: 256)")
    p.add_argument("--model", default=None, help="the relationships' model property (default: the checkpoint's)")
    p.add_argument("--users", nargs="+", action="extend", default=[], metavar="USER", help="only these users")
    p.add_argument("--no-paths", action="store_true", help="no explanation paths (faster)")
    p.add_argument("--max-hops", type=int, default=4, help="longest path (default: 4)")
    p.add_argument("--candidates", type=int, default=8, help="paths scored by the model per item (default: 8)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return p


def run_export(args: argparse.Namespace) -> int:
    from explanations.recommendation_rows import recommendation_batches
    from kg.neo4j.recommendation_sink import write_recommendations

    if args.k < 1 or args.batch_size < 1 or args.max_hops < 2 or args.candidates < 1:
        raise MMKGError("--k, --batch-size and --candidates must be >= 1 and --max-hops >= 2")
    missing = [f for f, v in (("--neo4j URI (or NEO4J_URI)", args.neo4j), ("--user (or NEO4J_USER)", args.user),
                              ("--password (or NEO4J_PASSWORD)", args.password)) if not v]
    if missing:
        raise MMKGError(f"export needs {', '.join(missing)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    ck, explainer = load_explainer(args.checkpoint, args.kg, args.device, candidates=args.candidates,
                                   max_hops=args.max_hops)
    kg = ck.kg
    users = [resolve_id(kg, "user", u) for u in dict.fromkeys(args.users)] or list(range(kg.num_nodes("user")))
    model = args.model or str(ck.describe()["model"])
    batches = recommendation_batches(ck, None if args.no_paths else explainer, users, args.k, args.batch_size)
    counts = write_recommendations(args.neo4j, args.user, args.password, model, [kg.ids("user")[u] for u in users],
                                   kg.ids("item"), batches, database=args.database)
    print(f"wrote {counts['recommendations']:,} recommendations of model {model!r} for {counts['users']:,} users "
          f"to {args.neo4j}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "recommend":
        args, run = build_recommend_parser().parse_args(argv[1:]), run_recommend
    elif argv and argv[0] == "export":
        args, run = build_export_parser().parse_args(argv[1:]), run_export
    else:
        args, run = build_parser().parse_args(argv), run_explain
    try:
        return run(args)
    except MMKGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
