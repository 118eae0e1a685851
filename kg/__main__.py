"""``python -m kg`` (``mmkgrec-kg``): build, inspect and export knowledge graphs.

Subcommands::

    ingest SOURCE... --out DIR [--format F] [--mapping FILE.toml] [--engine oxigraph|oxrdflib|rdflib] [--strict]
           [--neo4j [URI] --user U --password P [--database DB]]
           [--interactions FILE --user-col C --item-col C --rating-col C --timestamp-col C --sep S
            --user-prefix P --item-prefix P]
    stats DIR [--json]
    export-neo4j DIR --neo4j URI --user U --password P [--database DB] [--batch-size N]

``ingest`` reads the RDF files (and / or a Neo4j database, then an interactions table) into one
KG, saves it atomically to ``--out`` and prints the ingest report and the KG statistics. Neo4j
credentials default to the environment variables ``NEO4J_URI``, ``NEO4J_USER``, ``NEO4J_PASSWORD``
(``--neo4j`` without a value takes ``NEO4J_URI``; put it after the SOURCE files). The mapping
file's format is described in :mod:`kg.sources.mapping`.
Bad input prints ``error: <message>`` on stderr, exits 2 and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from kg.errors import MMKGError
from kg.model.graph import KnowledgeGraph
from kg.model.stats import format_stats, kg_stats
from kg.sources.mapping import load_mapping
from kg.sources.rdf_source import ENGINES, FORMATS, read_rdf


def _add_neo4j_args(p: argparse.ArgumentParser, uri_optional: bool) -> None:
    p.add_argument("--neo4j", metavar="URI", nargs="?", const=os.environ.get("NEO4J_URI", ""),
                   default=None if uri_optional else os.environ.get("NEO4J_URI"),
                   help="Bolt URI, e.g. bolt://localhost:7687 (default: $NEO4J_URI)")
    p.add_argument("--user", default=os.environ.get("NEO4J_USER"), help="Neo4j user (default: $NEO4J_USER)")
    p.add_argument("--password", default=os.environ.get("NEO4J_PASSWORD"),
                   help="Neo4j password (default: $NEO4J_PASSWORD)")
    p.add_argument("--database", default=None, help="Neo4j database (default: the server's default)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kg", description="Build, inspect and export knowledge graphs.")
    sub = parser.add_subparsers(dest="command", required=True)
    ing = sub.add_parser("ingest", help="read RDF / Neo4j / an interactions table into a saved KG")
    ing.add_argument("sources", nargs="*", metavar="SOURCE", help="RDF files (.ttl .nt .nq .rdf .jsonld .trig, .gz)")
    ing.add_argument("--out", required=True, help="output KG directory (written atomically)")
    ing.add_argument("--format", help=f"RDF format of every SOURCE: {', '.join(FORMATS)} (default: by extension)")
    ing.add_argument("--mapping", help="mapping TOML file (default: schema.org vocabulary)")
    ing.add_argument("--engine", choices=ENGINES, default="oxigraph", help="RDF parser (default: %(default)s)")
    ing.add_argument("--strict", action="store_true",
                     help="fail on interactions with an unknown user / item, bad values or type conflicts")
    _add_neo4j_args(ing, uri_optional=True)
    ing.add_argument("--interactions", metavar="FILE", help="interactions table (.csv/.tsv/.parquet)")
    ing.add_argument("--user-col", default="user_id")
    ing.add_argument("--item-col", default="item_id")
    ing.add_argument("--rating-col", default=None)
    ing.add_argument("--timestamp-col", default=None)
    ing.add_argument("--sep", default=None, help="table separator (default: by extension)")
    ing.add_argument("--user-prefix", default="", help="prefix added to table user ids (e.g. the users' IRI base)")
    ing.add_argument("--item-prefix", default="", help="prefix added to table item ids")
    st = sub.add_parser("stats", help="print statistics of a saved KG")
    st.add_argument("directory")
    st.add_argument("--json", action="store_true", help="print the statistics as JSON")
    ex = sub.add_parser("export-neo4j", help="write a saved KG to Neo4j")
    ex.add_argument("directory")
    _add_neo4j_args(ex, uri_optional=False)
    ex.add_argument("--batch-size", type=int, default=5000)
    return parser


def _credentials(args: argparse.Namespace) -> tuple[str, str, str]:
    missing = [name for name, value in (("--neo4j URI (or NEO4J_URI)", args.neo4j), ("--user (or NEO4J_USER)",
               args.user), ("--password (or NEO4J_PASSWORD)", args.password)) if not value]
    if missing:
        raise MMKGError(f"Neo4j needs {', '.join(missing)}")
    return args.neo4j, args.user, args.password


def ingest(args: argparse.Namespace) -> None:
    if not args.sources and args.neo4j is None:
        raise MMKGError("ingest: give RDF files and/or --neo4j")
    mapping = load_mapping(args.mapping)
    kg = KnowledgeGraph()
    if args.neo4j is not None:
        from kg.neo4j.source import read_neo4j

        kg = read_neo4j(*_credentials(args), mapping, database=args.database)
        print(f"read Neo4j {args.neo4j}: " + ", ".join(f"{t} {kg.num_nodes(t):,}" for t in ("user", "item", "entity")))
    if args.sources:
        kg, report = read_rdf(args.sources, mapping, format=args.format, engine=args.engine, strict=args.strict, kg=kg)
        print(report.format())
    if args.interactions:
        from kg.sources.table_source import read_interactions_table

        result = read_interactions_table(args.interactions, kg, user_col=args.user_col, item_col=args.item_col,
                                         rating_col=args.rating_col, timestamp_col=args.timestamp_col, sep=args.sep,
                                         strict=args.strict, user_prefix=args.user_prefix,
                                         item_prefix=args.item_prefix)
        print(result.summary() if hasattr(result, "summary") else f"{args.interactions}: {result} interactions added")
    kg.save(args.out)
    print(f"saved {args.out}")
    print(format_stats(kg_stats(kg)))


def stats(args: argparse.Namespace) -> None:
    result = kg_stats(KnowledgeGraph.load(args.directory))
    print(json.dumps(result, indent=1) if args.json else format_stats(result))


def export_neo4j(args: argparse.Namespace) -> None:
    from kg.neo4j.sink import write_neo4j

    kg = KnowledgeGraph.load(args.directory)
    counts = write_neo4j(kg, *_credentials(args), database=args.database, batch_size=args.batch_size)
    print(f"wrote {args.neo4j}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        {"ingest": ingest, "stats": stats, "export-neo4j": export_neo4j}[args.command](args)
    except MMKGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
