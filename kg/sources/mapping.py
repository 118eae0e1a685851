"""How a source's vocabulary maps onto users, items, interactions, text and images.

The defaults read schema.org data as described in the project's RDF contract: a plain
schema.org Turtle file needs no mapping file. A mapping file is TOML, e.g.::

    prefixes = { ex = "http://example.org/vocab#" }   # (a [prefixes] table must come after the plain keys)
    user_classes = ["ex:Customer"]          # replaces the default list
    extra_item_classes = ["ex:Gadget"]      # appended to the default list
    interaction_class = "ex:Purchase"
    interaction_user = "ex:buyer"
    interaction_item = "ex:product"
    drop_predicates = ["ex:internalCode"]

    [extra_text_predicates]                 # merged into the default table
    "ex:blurb" = "description"

Rules:

* Values may be full IRIs, ``<IRI>`` or CURIEs ``prefix:local`` using :attr:`Mapping.prefixes`
  (``schema``, ``mmkg``, ``rdf``, ``rdfs``, ``xsd``, ``owl``, ``dcterms``, ``skos``, ``foaf`` built in;
  the file's ``[prefixes]`` table adds to them). A CURIE with an unknown prefix is an error.
* A list or table key given in the file REPLACES the default; ``extra_<key>`` EXTENDS it.
* An unknown key is an error naming the closest valid key.
* ``neo4j_*`` keys describe a property graph (labels, relationship types, property names)
  for :mod:`kg.neo4j.source`; they are not IRIs.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from dataclasses import dataclass, field

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from kg.errors import MappingError

SCHEMA = "http://schema.org/"
MMKG = "http://mmkgrec.dev/vocab#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
XSD = "http://www.w3.org/2001/XMLSchema#"
DCTERMS = "http://purl.org/dc/terms/"
SKOS = "http://www.w3.org/2004/02/skos/core#"
FOAF = "http://xmlns.com/foaf/0.1/"
RDF_TYPE = RDF + "type"

DEFAULT_PREFIXES: dict[str, str] = {
    "schema": SCHEMA, "mmkg": MMKG, "rdf": RDF, "rdfs": RDFS, "xsd": XSD,
    "owl": "http://www.w3.org/2002/07/owl#", "dcterms": DCTERMS, "skos": SKOS, "foaf": FOAF,
}


def _default_text() -> dict[str, str]:
    return {
        RDFS + "label": "label", SCHEMA + "name": "name", SCHEMA + "description": "description",
        DCTERMS + "description": "description", DCTERMS + "title": "title", SKOS + "prefLabel": "label",
    }


@dataclass
class Mapping:
    """Vocabulary of a source. RDF keys hold full IRIs once loaded (CURIEs are expanded)."""

    user_classes: list[str] = field(default_factory=lambda: [MMKG + "User"])
    item_classes: list[str] = field(default_factory=lambda: [
        SCHEMA + c for c in ("Movie", "CreativeWork", "Product", "Book", "MusicRecording", "TVSeries")
    ] + [MMKG + "Item"])
    interaction_class: str = SCHEMA + "Review"
    interaction_user: str = SCHEMA + "author"
    interaction_item: str = SCHEMA + "itemReviewed"
    interaction_rating: str = SCHEMA + "reviewRating"
    interaction_rating_value: str = SCHEMA + "ratingValue"
    """Predicate holding the number when ``interaction_rating`` points to a rating node."""
    interaction_timestamp: str = SCHEMA + "dateCreated"
    direct_interactions: list[str] = field(default_factory=lambda: [MMKG + "interactedWith"])
    text_predicates: dict[str, str] = field(default_factory=_default_text)
    image_predicates: list[str] = field(default_factory=lambda: [SCHEMA + "image", FOAF + "depiction"])
    drop_predicates: list[str] = field(default_factory=list)
    prefixes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PREFIXES))
    neo4j_user_label: str = "User"
    neo4j_item_label: str = "Item"
    neo4j_interaction_types: list[str] = field(default_factory=lambda: ["RATED", "INTERACTED"])
    neo4j_rating_property: str = "rating"
    neo4j_timestamp_property: str = "timestamp"
    neo4j_id_property: str = "id"

    @classmethod
    def load(cls, path: str | os.PathLike) -> Mapping:
        """Read a TOML mapping file; raises :class:`MappingError` naming the file (and line or key)."""
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except OSError as e:
            raise MappingError(f"{path}: cannot read mapping file ({e.strerror or e})") from e
        except tomllib.TOMLDecodeError as e:
            m = re.search(r"at line (\d+)", str(e))
            where = f"{path}:{m.group(1)}" if m else str(path)
            raise MappingError(f"{where}: invalid TOML: {e}") from e
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "<mapping>") -> Mapping:
        """Build a mapping from parsed TOML (see the module docstring for the rules)."""
        mapping = cls()
        fields = {f.name: f for f in dataclasses.fields(cls)}
        extendable = [n for n in fields if n != "prefixes" and _is_container(getattr(mapping, n))]
        valid = sorted(fields) + sorted(f"extra_{n}" for n in extendable)
        prefixes = raw.get("prefixes", {})
        stray = [k for k, v in prefixes.items() if k in fields or not isinstance(v, str)] \
            if isinstance(prefixes, dict) else []
        if stray:
            raise MappingError(f"{source}: key {stray[0]!r} is inside the [prefixes] table; put [prefixes] "
                               "after the plain keys or write prefixes = { ... } on one line")
        _check_type(source, "prefixes", prefixes, dict, str)
        mapping.prefixes.update(prefixes)
        for key, value in sorted(raw.items(), key=lambda kv: kv[0].startswith("extra_")):  # extra_ keys last
            if key == "prefixes":
                continue
            name = key[len("extra_"):] if key.startswith("extra_") else key
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1, cutoff=0.0)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise MappingError(f"{source}: unknown mapping key {key!r}{hint}")
            default = getattr(mapping, name)
            _check_type(source, key, value, type(default), str)
            if name.startswith("neo4j_"):
                value = list(value) if isinstance(value, list) else value
            elif isinstance(value, dict):
                value = {mapping.expand(k, source, key): v for k, v in value.items()}
            elif isinstance(value, list):
                value = [mapping.expand(v, source, key) for v in value]
            else:
                value = mapping.expand(value, source, key)
            if key.startswith("extra_"):
                if isinstance(default, dict):
                    value = {**default, **value}
                else:
                    value = default + [v for v in value if v not in default]
            setattr(mapping, name, value)
        return mapping

    def expand(self, term: str, source: str = "<mapping>", key: str = "") -> str:
        """The full IRI of ``term`` (an IRI, ``<IRI>`` or a ``prefix:local`` CURIE)."""
        if term.startswith("<") and term.endswith(">"):
            return term[1:-1]
        if "://" in term:
            return term
        prefix, sep, local = term.partition(":")
        if sep and prefix in self.prefixes:
            return self.prefixes[prefix] + local
        known = ", ".join(sorted(self.prefixes))
        raise MappingError(
            f"{source}: {key}: {term!r} is neither an IRI nor a CURIE with a known prefix ({known}); "
            "write full IRIs as <...> or add the prefix to [prefixes]"
        )


def load_mapping(path: str | os.PathLike | None) -> Mapping:
    """The mapping in ``path``, or the defaults when ``path`` is ``None``."""
    return Mapping() if path is None else Mapping.load(path)


def _is_container(value: object) -> bool:
    return isinstance(value, (list, dict))


def _check_type(source: str, key: str, value: object, expected: type, item: type) -> None:
    kind = {list: "a list of strings", dict: "a table of strings", str: "a string"}[expected]
    ok = isinstance(value, expected)
    if ok and expected is list:
        ok = all(isinstance(v, item) for v in value)
    elif ok and expected is dict:
        ok = all(isinstance(v, item) for v in value.values())
    if not ok:
        raise MappingError(f"{source}: mapping key {key!r} must be {kind}, got {value!r}")
