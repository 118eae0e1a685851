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

Users and items are named by external id or its last path segment (``196`` for
``http://mmkgrec.dev/movielens/user/196``). Bad input -> ``error: <msg>`` on stderr, exit 2.

:class:`Explainer` is the pipeline behind both: candidate paths from :class:`kg.paths.path_search.PathIndex` (on the
split's TRAINING interactions), scored by the model's score drop when masked
(:mod:`explanations.scoring`; candidates first ranked by the drop of their first hop alone), the best ones
kept; :func:`load_explainer` builds it from a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from explanations.pair_masking import Pairs, mask_pairs
from explanations.scoring import ScoreFor, model_scorers
from explanations.text import Explanation, NodeNamer, explanation_json, explanation_sentences, node_json, rank_paths
from gnn.graph_inputs import GraphInputs
from kg.atomic_files import write_text_atomic
from kg.errors import MMKGError
from kg.model.graph import KnowledgeGraph
from kg.paths.path_search import KGPath, PathIndex, path_pairs, pick_candidates

FORMATS = ("text", "json", "png")


class Explainer:
    """Explanation paths for one model: ``index`` on the TRAINING interactions, the model's ``inputs``,
    ``score_for(inputs) -> score_fn``, optional exact ``masked_scores(user, item, [pairs, ...])``,
    ``candidates`` scored per item, ``search`` options of :meth:`PathIndex.find_paths`."""

    def __init__(self, kg: KnowledgeGraph, index: PathIndex, inputs: GraphInputs, score_for: ScoreFor,
                 masked_scores: Callable[[int, int, list[Pairs]], list[float]] | None = None,
                 candidates: int = 8, **search) -> None:
        self.kg, self.index, self.inputs, self.score_for = kg, index, inputs, score_for
        self.masked_scores, self.candidates, self.search = masked_scores, candidates, search
        self._base, self._cache = score_for(inputs), (-1, torch.zeros(0))

    def scores(self, user: int) -> Tensor:
        """The model's scores ``[I]`` of every item for ``user`` (unmasked graph)."""
        if self._cache[0] != user:
            with torch.no_grad():
                self._cache = (user, self._base(torch.tensor([user])).reshape(-1).float().cpu())
        return self._cache[1]

    def masked(self, user: int, item: int, masks: list[Pairs]) -> list[float]:
        """``s(user, item)`` with every edge between each mask's node pairs removed (one score per mask)."""
        with torch.no_grad():
            if self.masked_scores is not None:
                return list(self.masked_scores(user, item, masks))
            return [float(self.score_for(mask_pairs(self.inputs, m))(torch.tensor([user]))[0, item]) for m in masks]

    def drops(self, user: int, item: int, paths: list[KGPath]) -> list[float]:
        """Score drop of each path (its edges masked)."""
        base = float(self.scores(user)[item])
        return [base - v for v in self.masked(user, item, [path_pairs(p) for p in paths])] if paths else []

    def pick(self, user: int, item: int, paths: list[KGPath]) -> list[KGPath]:
        """The candidates: each distinct first hop (the user's own interaction or profile edge) of ``paths`` is
        masked alone, paths rank by their first hop's score drop (then prior), spread over shapes."""
        if not paths:
            return []
        firsts = list(dict.fromkeys(path_pairs(p)[0] for p in paths))
        base = float(self.scores(user)[item])
        drop = dict(zip(firsts, (base - v for v in self.masked(user, item, [[h] for h in firsts])), strict=True))
        rank = sorted(range(len(paths)), key=lambda k: (-drop[path_pairs(paths[k])[0]], k))
        return pick_candidates([paths[k] for k in rank], self.candidates)

    def explain(self, user: int, item: int, top: int = 3) -> Explanation:
        """The ``top`` candidates by score drop (> 0 only); none -> an empty list, never an invented path."""
        t0 = time.perf_counter()
        found = self.index.find_paths(user, item, **self.search)
        cands = self.pick(user, item, found.paths)
        return Explanation(user, item, float(self.scores(user)[item]), rank_paths(cands, self.drops(user, item, cands),
                           top), len(found.paths), found.truncated, time.perf_counter() - t0)


def load_explainer(checkpoint, kg_dir=None, device: str = "cpu", candidates: int = 8, **search):
    """``(loaded checkpoint, Explainer)``: the checkpoint's KG and model (:mod:`evaluation.checkpoint_scoring`),
    a path index on its split's TRAINING interactions, the model's scorers (:func:`model_scorers`)."""
    from evaluation.checkpoint_scoring import load_checkpoint

    ck = load_checkpoint(checkpoint, kg_dir, device=device)
    index = PathIndex(ck.kg, ck.split.parts(ck.kg.interactions())[0])
    return ck, Explainer(ck.kg, index, ck.inputs, *model_scorers(ck), candidates=candidates, **search)


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


def resolve_id(kg: KnowledgeGraph, ntype: str, text: str) -> int:
    """The index of the ``ntype`` node whose external id is ``text`` or ends with ``/text`` / ``#text``."""
    if kg.has_node(ntype, text):
        return kg.index_of(ntype, text)
    found = [i for i, ext in enumerate(kg.ids(ntype)) if ext.endswith(("/" + text, "#" + text))] if text else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise MMKGError(f"{ntype} id {text!r} is ambiguous ({len(found)} {ntype}s end with it); give the full id")
    raise MMKGError(f"unknown {ntype} id {text!r}")


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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "recommend":
        args, run = build_recommend_parser().parse_args(argv[1:]), run_recommend
    else:
        args, run = build_parser().parse_args(argv), run_explain
    try:
        return run(args)
    except MMKGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
