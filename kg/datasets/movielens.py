"""Build the ml-100k multimodal knowledge graph as Turtle.

``python -m kg.datasets.movielens --data-dir D --out FILE.ttl[.gz]`` reads the RecBole atomic
files (``ml-100k.inter/.item/.user/.kg/.link``), ``ml-100k.imdb.csv`` and ``posters/<item_id>.jpg``
and writes users with profile entities, movies with name / year / genres / IMDb summary / poster /
director / cast, the Freebase triples (an entity linked to a movie by ``.link`` is replaced by the
movie's IRI) and the ratings as ``schema:Review`` blank nodes, in the vocabulary that
``kg.sources.rdf_source`` reads without a mapping file.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import sys
import time
import uuid
from pathlib import Path

import pandas as pd

from kg.data_dir import find_data_dir
from kg.errors import KGFormatError, MMKGError
from kg.sources.recbole_source import AtomicFile, read_atomic, read_links

BASE = "http://mmkgrec.dev/movielens/"
MMKG = "http://mmkgrec.dev/vocab#"
SCHEMA = "http://schema.org/"
FREEBASE = "http://rdf.freebase.com/ns/"
PREFIXES = (
    "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
    "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n"
    f"@prefix schema: <{SCHEMA}> .\n"
    f"@prefix mmkg: <{MMKG}> .\n\n"
)
AGE_GROUPS = ((18, "0-17"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49"), (56, "50-55"))
GENDER_LABELS = {"M": "male", "F": "female"}
NO_GENRE = "unknown"
IMDB_COLUMNS = ("item_id", "summary", "cast", "director")
_YEAR = re.compile(r"\d{4}")
_TITLE_YEAR = re.compile(r"(.*\S)\s*\((\d{4})\)")
_CREDIT = re.compile(r"\s+—(?=\S)[^—]{1,60}$")
"""The ``—Author <email>`` credit that ends most IMDb plot summaries."""
# characters outside Turtle's IRIREF, plus %, / and the IRI delimiters ? #: percent-encoded
_IRI_UNSAFE = re.compile(r'[\x00-\x20<>"{}|^`\\%/?#\x7f]')
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_LITERAL_UNSAFE = re.compile(r'[\\"\x00-\x1f\x7f]')


def iri_segment(name: str) -> str:
    """``name`` as one IRI path segment: spaces become ``_``, characters not allowed in a
    Turtle IRI (and ``% / ? #``) are percent-encoded as UTF-8; other non-ASCII is kept."""
    return _IRI_UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), name.strip().replace(" ", "_"))


def turtle_literal(text: str) -> str:
    """A double-quoted Turtle string with quotes, backslashes and control characters escaped."""
    return '"' + _LITERAL_UNSAFE.sub(lambda m: _ESCAPES.get(m.group(), f"\\u{ord(m.group()):04X}"), text) + '"'


def age_group(age: int) -> str:
    """The MovieLens-1M style age group of ``age`` (``'25-34'``, ``'56+'``, ...)."""
    for upper, label in AGE_GROUPS:
        if age < upper:
            return label
    return "56+"


def _number(x: float) -> str:
    return str(int(x)) if x == int(x) else repr(x)


def _iri(kind: str, key: str) -> str:
    return f"<{BASE}{kind}/{iri_segment(key)}>"


def _read_imdb(path: Path) -> dict[str, dict[str, str]]:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise KGFormatError(f"{path}: cannot read CSV ({e})") from e
    missing = [c for c in IMDB_COLUMNS if c not in df.columns]
    if missing:
        raise KGFormatError(f"{path}: no column {missing[0]!r} (columns: {', '.join(df.columns)})")
    return {r["item_id"].strip(): r for r in df[list(IMDB_COLUMNS)].to_dict("records")}


def _names(value: str) -> list[str]:
    return [n.strip() for n in value.split("|") if n.strip()]


def _users(users: AtomicFile, out: list[str]) -> int:
    cols = [users.column(c) for c in ("user_id", "age", "gender", "occupation")]
    entities: dict[str, str] = {}
    for lineno, row in users.rows:
        uid, age, gender, occupation = (row[c].strip() for c in cols)
        if not age.isdigit():
            raise KGFormatError(f"{users.path}: line {lineno}: age {age!r} is not a whole number")
        group = age_group(int(age))
        links = [("ageGroup", "age", group, f"age {group}"), ("gender", "gender", gender, GENDER_LABELS.get(gender)),
                 ("occupation", "occupation", occupation, occupation)]
        props = []
        for pred, kind, key, label in links:
            if key:
                iri = _iri(kind, key)
                entities[iri] = label or key
                props.append(f"mmkg:{pred} {iri}")
        out.append(f"{_iri('user', uid)} a mmkg:User" + "".join(f" ;\n    {p}" for p in props) + " .\n")
    out.extend(f"{iri} rdfs:label {turtle_literal(label)} .\n" for iri, label in entities.items())
    return len(users.rows)


def _items(items: AtomicFile, imdb_path: Path, posters: Path, out: list[str]) -> dict[str, int]:
    imdb = _read_imdb(imdb_path)
    cols = [items.column(c) for c in ("item_id", "movie_title", "release_year", "class")]
    labels: dict[str, str] = {}
    counts = {"items": 0, "items_with_poster": 0, "items_with_summary": 0}
    seen: set[str] = set()
    for _, row in items.rows:
        iid, title, year, genres = (row[c].strip() for c in cols)
        seen.add(iid)
        if m := _TITLE_YEAR.fullmatch(title):  # a few titles keep their "(year)", e.g. item 1412
            title, year = m.group(1), year if _YEAR.fullmatch(year) else m.group(2)
        props = [f"schema:name {turtle_literal(title)}"] if title else []
        if _YEAR.fullmatch(year):
            props.append(f'mmkg:releaseYear "{year}"^^xsd:gYear')
        genre_iris = []
        for g in genres.split(" "):
            if g and g != NO_GENRE:
                genre_iris.append(_iri("genre", g))
                labels[genre_iris[-1]] = g
        if genre_iris:
            props.append("schema:genre " + ", ".join(genre_iris))
        info = imdb.get(iid)
        if info is not None:
            summary = _CREDIT.sub("", info["summary"].strip())
            if summary:
                props.append(f"schema:description {turtle_literal(summary)}")
                counts["items_with_summary"] += 1
            for pred, value in (("director", info["director"]), ("actor", info["cast"])):
                people = [_iri("person", n) for n in _names(value)]
                labels.update(zip(people, _names(value), strict=True))
                if people:
                    props.append(f"schema:{pred} " + ", ".join(dict.fromkeys(people)))
        poster = posters / f"{iid}.jpg"
        if poster.is_file():
            props.append(f"schema:image <{poster.resolve().as_uri()}>")
            counts["items_with_poster"] += 1
        out.append(f"{_iri('item', iid)} a schema:Movie" + "".join(f" ;\n    {p}" for p in props) + " .\n")
        counts["items"] += 1
    unknown = sorted(set(imdb) - seen)
    if unknown:
        raise KGFormatError(f"{imdb_path}: item_id {unknown[0]!r} is not in {items.path.name}")
    out.extend(f"{iri} rdfs:label {turtle_literal(label)} .\n" for iri, label in labels.items())
    return counts


def _freebase(triples: AtomicFile, links: dict[str, str], out: list[str]) -> int:
    h, r, t = (triples.column(c) for c in ("head_id", "relation_id", "tail_id"))

    def node(entity: str) -> str:
        item = links.get(entity)
        return _iri("item", item) if item is not None else f"<{FREEBASE}{iri_segment(entity)}>"

    for lineno, row in triples.rows:
        if not (row[h] and row[r] and row[t]):
            raise KGFormatError(f"{triples.path}: line {lineno}: empty head_id, relation_id or tail_id")
        out.append(f"{node(row[h])} <{FREEBASE}{iri_segment(row[r])}> {node(row[t])} .\n")
    return len(triples.rows)


def _reviews(inter: AtomicFile, out: list[str]) -> int:
    u, i = inter.column("user_id"), inter.column("item_id")
    r, t = inter.column("rating"), inter.column("timestamp")
    for lineno, row in inter.rows:
        if not (row[u] and row[i]):
            raise KGFormatError(f"{inter.path}: line {lineno}: empty user_id or item_id")
        props = [f"schema:author {_iri('user', row[u])}", f"schema:itemReviewed {_iri('item', row[i])}"]
        if row[r]:
            props.append(f"schema:reviewRating {_number(float(row[r]))}")
        if row[t]:
            props.append(f"schema:dateCreated {_number(float(row[t]))}")
        out.append("[ a schema:Review ; " + " ; ".join(props) + " ] .\n")
    return len(inter.rows)


def write_atomically(out: Path, text: str) -> None:
    """Write ``text`` (UTF-8, gzipped when ``out`` ends in ``.gz``) to a temporary file beside ``out``,
    then rename it over ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as raw:
            data = text.encode("utf-8")
            raw.write(gzip.compress(data, compresslevel=6, mtime=0) if out.name.endswith(".gz") else data)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def build_movielens_kg_ttl(data_dir: Path, out: Path) -> dict[str, int]:
    """Write the ml-100k KG of ``data_dir`` (the ``ml-100k`` folder) to ``out`` as Turtle.

    Returns counts: ``users``, ``items``, ``interactions``, ``freebase_triples``,
    ``items_with_poster``, ``items_with_summary``.
    """
    data_dir, out = Path(data_dir), Path(out)
    names = [f"ml-100k.{s}" for s in ("inter", "item", "user", "kg", "link", "imdb.csv")]
    missing = [n for n in names if not (data_dir / n).is_file()]
    if missing:
        raise KGFormatError(f"{data_dir}: missing {', '.join(missing)}")
    files = {n.split(".", 1)[1]: data_dir / n for n in names}
    lines = [PREFIXES]
    counts = {"users": _users(read_atomic(files["user"]), lines)}
    counts.update(_items(read_atomic(files["item"]), files["imdb.csv"], data_dir / "posters", lines))
    counts["freebase_triples"] = _freebase(read_atomic(files["kg"]), read_links(read_atomic(files["link"])), lines)
    counts["interactions"] = _reviews(read_atomic(files["inter"]), lines)
    write_atomically(out, "".join(lines))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmkgrec-movielens", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="the ml-100k folder or the folder holding it "
                        "(default: $MMKGREC_DATA, <repo>/../shared/data, ./data)")
    parser.add_argument("--out", required=True, type=Path, help="output Turtle file (.ttl or .ttl.gz)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        counts = build_movielens_kg_ttl(find_data_dir(args.data_dir), args.out)
    except MMKGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    size = args.out.stat().st_size / 1e6
    print(f"wrote {args.out} ({size:.1f} MB, {seconds:.1f} s): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
