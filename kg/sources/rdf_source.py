"""Read RDF files (Turtle, N-Triples, N-Quads, RDF/XML, JSON-LD, TriG, N3; each may be .gz) into a KG.

One streaming pass per file collects, in compact arrays of interned node ids, the
triples the :class:`~kg.sources.mapping.Mapping` cares about; classification (users, items,
interaction nodes) happens at the end, when every ``rdf:type`` has been seen, so files
may list triples in any order. Engines: ``oxigraph`` (pyoxigraph's streaming parser, the
default and fastest), ``oxrdflib`` (rdflib graph filled by oxigraph's parsers) and
``rdflib`` (plain ``rdflib.Dataset.parse``; the two rdflib engines hold the whole graph
and rename blank nodes). Blank nodes of the k-th file (k > 0) get ids ``_:f<k>_<label>``.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import time
import warnings

from kg.errors import KGFormatError
from kg.model.graph import NODE_TYPES, KnowledgeGraph
from kg.sources.ingest_report import FileReport, IngestReport
from kg.sources.mapping import Mapping
from kg.sources.rdf_collector import TripleCollector

# name -> (extensions, pyoxigraph RdfFormat attribute, rdflib format, oxrdflib format)
FORMATS: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "turtle": ((".ttl", ".turtle"), "TURTLE", "turtle", "ox-turtle"),
    "ntriples": ((".nt", ".ntriples"), "N_TRIPLES", "nt", "ox-ntriples"),
    "nquads": ((".nq", ".nquads"), "N_QUADS", "nquads", "ox-nquads"),
    "rdfxml": ((".rdf", ".owl", ".xml"), "RDF_XML", "xml", "ox-xml"),
    "jsonld": ((".jsonld", ".json"), "JSON_LD", "json-ld", "ox-json-ld"),
    "trig": ((".trig",), "TRIG", "trig", "ox-trig"),
    "n3": ((".n3",), "N3", "n3", "ox-n3"),
}
_ALIASES = {"ttl": "turtle", "nt": "ntriples", "n-triples": "ntriples", "nq": "nquads", "n-quads": "nquads",
            "xml": "rdfxml", "rdf/xml": "rdfxml", "rdf-xml": "rdfxml", "json-ld": "jsonld"}
ENGINES = ("oxigraph", "oxrdflib", "rdflib")
_PROGRESS_MIN_BYTES = 16 << 20


def known_formats() -> str:
    return ", ".join(f"{n} ({'/'.join(e[0])})" for n, e in FORMATS.items())


def detect_format(path: str, format: str | None = None) -> str:
    """Canonical format name from ``format`` (a name or alias) or the extension of ``path`` (``.gz`` aside)."""
    if format is not None:
        name = _ALIASES.get(format.lower(), format.lower())
        if name not in FORMATS:
            raise KGFormatError(f"{path}: unknown RDF format {format!r}; known formats: {known_formats()}")
        return name
    stem = path[:-3] if path.lower().endswith(".gz") else path
    ext = os.path.splitext(stem)[1].lower()
    for name, (exts, *_) in FORMATS.items():
        if ext in exts:
            return name
    raise KGFormatError(f"{path}: cannot tell the RDF format from extension {ext or '(none)'!r}; "
                        f"pass --format / format=; known formats: {known_formats()}")


def read_rdf(paths: list[str], mapping: Mapping | None = None, format: str | None = None, engine: str = "oxigraph",
             strict: bool = False, kg: KnowledgeGraph | None = None,
             progress: bool | None = None) -> tuple[KnowledgeGraph, IngestReport]:
    """Read RDF files into ``kg`` (a new KG when ``None``) and report what was read and skipped.

    ``strict`` turns skipped interactions, unparsable ratings / timestamps and user/item type
    conflicts into a :class:`KGFormatError`; malformed files, unknown formats and an empty
    result always raise one. ``progress`` (default: for files over 16 MB) shows a tqdm bar on stderr.
    """
    if engine not in ENGINES:
        raise KGFormatError(f"unknown RDF engine {engine!r}; known engines: {', '.join(ENGINES)}")
    if not paths:
        raise KGFormatError("no RDF file given")
    mapping = mapping or Mapping()
    kg = kg if kg is not None else KnowledgeGraph()
    report = IngestReport()
    col = TripleCollector(mapping)
    formats = [detect_format(str(p), format) for p in paths]
    for path in map(str, paths):
        if not os.path.isfile(path):
            raise KGFormatError(f"{path}: no such file")
    for k, (path, fmt) in enumerate(zip(map(str, paths), formats, strict=True)):
        file_report = FileReport(path, fmt)
        start = time.perf_counter()
        col.bprefix = "_:" if k == 0 else f"_:f{k}_"
        n0 = col.triples
        try:
            _parse_file(path, fmt, engine, col, progress)
        except SyntaxError as e:
            raise _malformed(path, fmt, e) from e
        except (OSError, EOFError, UnicodeDecodeError) as e:  # unreadable, truncated or bad gzip, bad encoding
            raise KGFormatError(f"{path}: cannot read {fmt}: {e}") from e
        file_report.triples = col.triples - n0
        file_report.seconds = time.perf_counter() - start
        report.files.append(file_report)
    col.finish(kg, report)
    if sum(kg.num_nodes(t) for t in NODE_TYPES) == 0:
        raise KGFormatError(f"{', '.join(map(str, paths))}: no users, items or entities found "
                            f"({report.triples} triples read; check the format and the mapping)")
    if strict and (report.skipped_interactions or report.bad_values or report.type_conflicts):
        raise KGFormatError(f"{', '.join(map(str, paths))}: {report.skipped_interactions} interaction(s) with an "
                            f"unknown user or item, {report.bad_values} bad value(s), {report.type_conflicts} "
                            f"type conflict(s) (strict mode); first: {'; '.join(report.problems)}")
    return kg, report


def _malformed(path: str, fmt: str, e: Exception) -> KGFormatError:
    """A one-line error naming the file and, when the parser (or expat, for RDF/XML) tells it, the line."""
    loc = e.args[1] if isinstance(e, SyntaxError) and len(e.args) > 1 and isinstance(e.args[1], tuple) else ()
    line = loc[1] if len(loc) > 1 else getattr(e, "lineno", None)
    if line is None and hasattr(e, "getLineNumber"):
        line = e.getLineNumber()
    message = " ".join(str(e).split())
    if line is None and (m := re.search(r"\bline (\d+)", message)):
        line = int(m.group(1))
    if line is None and fmt == "rdfxml":
        line = _xml_error_line(path)
    where = f"{path}:{line}" if line else path
    return KGFormatError(f"{where}: malformed {fmt}: {message[:300]}")


def _xml_error_line(path: str) -> int | None:
    """The line of the first XML well-formedness error (pyoxigraph's RDF/XML errors carry no location)."""
    from xml.parsers import expat

    parser = expat.ParserCreate()
    try:
        with gzip.open(path) if path.lower().endswith(".gz") else open(path, "rb") as f:
            parser.ParseFile(f)
    except expat.ExpatError as e:
        return e.lineno
    return None


class _ProgressReader(io.RawIOBase):
    """A binary stream that advances a tqdm bar by the bytes read from the underlying file."""

    def __init__(self, stream, raw, bar) -> None:
        self.stream, self.raw, self.bar, self.pos = stream, raw, bar, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.stream.readinto(buffer)
        pos = self.raw.tell()
        self.bar.update(pos - self.pos)
        self.pos = pos
        return n


def _parse_file(path: str, fmt: str, engine: str, col: TripleCollector, progress: bool | None) -> None:
    from tqdm import tqdm

    size = os.path.getsize(path)
    show = size >= _PROGRESS_MIN_BYTES if progress is None else progress
    base_iri = "file://" + os.path.abspath(path)
    with open(path, "rb") as raw, tqdm(total=size, unit="B", unit_scale=True, desc=os.path.basename(path),
                                       disable=not show, leave=False) as bar:
        stream = gzip.GzipFile(fileobj=raw) if path.lower().endswith(".gz") else raw
        if engine == "oxigraph":
            import pyoxigraph as ox

            reader = _ProgressReader(stream, raw, bar) if show else stream
            quads = ox.parse(reader, format=getattr(ox.RdfFormat, FORMATS[fmt][1]), base_iri=base_iri)
            _feed_oxigraph(col, quads)
        else:
            import rdflib

            name = FORMATS[fmt][2] if engine == "rdflib" else FORMATS[fmt][3]
            ds = rdflib.Dataset(store="default" if engine == "rdflib" else "Oxigraph", default_union=True)
            with warnings.catch_warnings():  # rdflib 7.6's own Dataset methods trip its default_context warning
                warnings.simplefilter("ignore", DeprecationWarning)
                try:
                    ds.parse(source=_ProgressReader(stream, raw, bar), format=name, publicID=base_iri)
                except Exception as e:  # rdflib raises BadSyntax, ParserError, SAXParseException, JSONDecodeError...
                    raise _malformed(path, fmt, e) from e
                _feed_rdflib(col, ds.triples((None, None, None)))


def _feed_oxigraph(col: TripleCollector, quads) -> None:
    """The hot loop: pyoxigraph quads -> collector (ordinary relations inlined)."""
    from pyoxigraph import BlankNode, Literal, NamedNode

    actions, ids, preds, bp = col.actions, col.ids, col.preds, col.bprefix
    src, pid, dst, intern = col.src, col.pid, col.dst, col.intern
    n = 0
    for s, p, o, _ in quads:
        n += 1
        p = p.value
        s = s.value if type(s) is NamedNode else bp + s.value
        to = type(o)
        is_lit = to is Literal
        if is_lit or to is NamedNode:
            o = o.value
        elif to is BlankNode:
            o = bp + o.value
        else:  # RDF 1.2 triple term
            col.ignored += 1
            continue
        act = actions.get(p)
        if act is None:
            if is_lit:
                col.ignored += 1
                continue
            si, oi = ids.get(s), ids.get(o)
            k = preds.get(p)
            src.append(intern(s) if si is None else si)
            pid.append(len(preds) if k is None else k)
            dst.append(intern(o) if oi is None else oi)
            if k is None:
                preds[p] = len(preds)
        else:
            col.special(act, s, p, o, is_lit)
    col.triples += n


def _feed_rdflib(col: TripleCollector, triples) -> None:
    from rdflib import BNode, Literal

    bp = col.bprefix
    for s, p, o in triples:
        col.triples += 1
        s, p, is_lit = bp + s if isinstance(s, BNode) else str(s), str(p), isinstance(o, Literal)
        o = bp + o if isinstance(o, BNode) else str(o)
        act = col.actions.get(p)
        if act is not None:
            col.special(act, s, p, o, is_lit)
        elif is_lit:
            col.ignored += 1
        else:
            col.relation(s, p, o)
