import gzip
import math
import shutil
from pathlib import Path

import pytest

from kg.errors import KGFormatError
from kg.model.graph import NODE_TYPES, KnowledgeGraph
from kg.sources.mapping import Mapping
from kg.sources.rdf_source import detect_format, read_rdf

FIXTURES = Path(__file__).parent.parent / "fixtures"
SMALL = ["small.ttl", "small.nt", "small.nq", "small.rdf", "small.jsonld", "small.trig"]
EX = "http://example.org/"

EXPECTED_NODES = {
    "user": [EX + "user/u1", EX + "user/u2", EX + "user/u3"],  # u3 only authors a review
    "item": [EX + "item/i1", EX + "item/i2", EX + "item/i3", EX + "item/i4"],  # i3 only reviewed, i4 untyped-text
    "entity": [EX + "gender/F", EX + "genre/drama", EX + "person/ann", EX + "person/bob"],
}
EXPECTED_TRIPLES = [
    ("entity", EX + "person/ann", "knows", "entity", EX + "person/bob"),
    ("item", EX + "item/i1", "actor", "entity", EX + "person/bob"),
    ("item", EX + "item/i1", "director", "entity", EX + "person/ann"),
    ("item", EX + "item/i1", "genre", "entity", EX + "genre/drama"),
    ("item", EX + "item/i2", "author", "entity", EX + "person/bob"),  # schema:author of a Book is a relation
    ("item", EX + "item/i2", "genre", "entity", EX + "genre/drama"),
    ("user", EX + "user/u1", "gender", "entity", EX + "gender/F"),
]
EXPECTED_INTERACTIONS = [  # (user, item, rating, timestamp); None = unknown
    (EX + "user/u1", EX + "item/i1", 4.0, 1_000_000_000.0),  # xsd:dateTime 2001-09-09T01:46:40Z
    (EX + "user/u1", EX + "item/i4", None, None),  # mmkg:interactedWith
    (EX + "user/u2", EX + "item/i2", 3.5, 881250949.0),  # rating node with schema:ratingValue
    (EX + "user/u3", EX + "item/i3", 5.0, None),
]
EXPECTED_TEXT = {
    ("item", EX + "item/i1"): {"name": ["Alpha"], "description": ["A film about the first letter."]},
    ("item", EX + "item/i2"): {"name": ["Beta"]},
    ("entity", EX + "gender/F"): {"label": ["female"]},
    ("entity", EX + "genre/drama"): {"label": ["Drama"]},
    ("entity", EX + "person/ann"): {"label": ["Ann"]},  # rdfs:label "Ann"@en and skos:prefLabel "Ann"
    ("entity", EX + "person/bob"): {"label": ["Bob"]},
}
EXPECTED_IMAGES = {("item", EX + "item/i1"): "/data/posters/1.jpg", ("item", EX + "item/i2"): "http://img.example.org/2.png"}


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else x


def canonical(kg: KnowledgeGraph) -> dict:
    inter = kg.interactions()
    return {
        "nodes": {t: sorted(kg.ids(t)) for t in NODE_TYPES},
        "triples": sorted(kg.iter_triples()),
        "interactions": sorted((kg.ids("user")[u], kg.ids("item")[i], _opt(r), _opt(t)) for u, i, r, t in zip(
            inter.user.tolist(), inter.item.tolist(), inter.rating.tolist(), inter.timestamp.tolist(), strict=True)),
        "text": {(t, kg.ids(t)[i]): f for t in NODE_TYPES for i, f in kg.text[t].items()},
        "images": {(t, kg.ids(t)[i]): r for t in NODE_TYPES for i, r in kg.images[t].items()},
    }


EXPECTED = {"nodes": EXPECTED_NODES, "triples": EXPECTED_TRIPLES, "interactions": EXPECTED_INTERACTIONS,
            "text": EXPECTED_TEXT, "images": EXPECTED_IMAGES}


@pytest.mark.parametrize("name", SMALL)
def test_every_format_gives_the_same_kg(name):
    kg, report = read_rdf([str(FIXTURES / name)])
    assert canonical(kg) == EXPECTED
    assert kg.relation_iris["genre"] == "http://schema.org/genre"
    assert kg.relation_iris["knows"] == EX + "vocab#knows"
    assert (report.triples, report.type_triples, report.relation_triples) == (40, 9, 7)
    assert (report.text_values, report.images, report.ignored_literals) == (8, 2, 1)  # mmkg:releaseYear ignored
    assert (report.interactions, report.interactions_with_rating, report.interactions_with_timestamp) == (4, 3, 2)
    assert report.skipped_interactions == report.bad_values == report.type_conflicts == 0
    assert [(f.path, f.triples) for f in report.files] == [(str(FIXTURES / name), 40)]


@pytest.mark.parametrize("engine", ["rdflib", "oxrdflib"])
@pytest.mark.parametrize("name", ["small.ttl", "small.nq"])
def test_rdflib_engines_agree(engine, name):
    kg, _ = read_rdf([str(FIXTURES / name)], engine=engine)
    assert canonical(kg) == EXPECTED


@pytest.mark.parametrize("name", ["small.ttl", "small.rdf"])
def test_gzip(tmp_path, name):
    gz = tmp_path / (name + ".gz")
    with open(FIXTURES / name, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert canonical(read_rdf([str(gz)])[0]) == EXPECTED


def test_format_overrides_extension(tmp_path):
    odd = tmp_path / "data.txt"
    shutil.copy(FIXTURES / "small.nt", odd)
    assert canonical(read_rdf([str(odd)], format="nt")[0]) == EXPECTED
    assert detect_format("x.TTL.gz") == "turtle" and detect_format("x", "N-Quads") == "nquads"


def test_blank_nodes_are_scoped_per_file(tmp_path):
    review = ('_:r <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://schema.org/Review> .\n'
              '_:r <http://schema.org/author> <http://ex/u> .\n_:r <http://schema.org/itemReviewed> <http://ex/i> .\n')
    (tmp_path / "a.nt").write_text(review)
    (tmp_path / "b.nt").write_text(review + '_:r <http://schema.org/reviewRating> "2" .\n')
    kg, report = read_rdf([str(tmp_path / "a.nt"), str(tmp_path / "b.nt")])
    assert report.interactions == 2 and [f.triples for f in report.files] == [3, 4]
    assert sorted(map(str, kg.interactions().rating.tolist())) == ["2.0", "nan"]


def test_custom_vocabulary_with_mapping():
    kg, report = read_rdf([str(FIXTURES / "shop.ttl")], Mapping.load(FIXTURES / "shop_mapping.toml"))
    s = "http://shop.example.org/"
    got = canonical(kg)
    assert got["nodes"] == {"user": [s + "c1", s + "c2"], "item": [s + "p1", s + "p2"], "entity": [s + "acme"]}
    assert got["triples"] == [("item", s + "p1", "brand", "entity", s + "acme")]  # internalCode dropped
    assert got["interactions"] == [(s + "c1", s + "p1", 5.0, 1577836800.0), (s + "c2", s + "p1", None, None),
                                   (s + "c2", s + "p2", 3.0, None)]
    assert got["text"] == {("user", s + "c1"): {"label": ["Cee"]}, ("entity", s + "acme"): {"name": ["ACME"]},
                           ("item", s + "p1"): {"name": ["Phone"], "description": ["A phone."]},
                           ("item", s + "p2"): {"name": ["Film"]}}
    assert report.dropped_predicates == 1 and report.ignored_literals == 0


def test_reads_into_an_existing_kg():
    kg = KnowledgeGraph()
    kg.add_node("item", EX + "person/bob")  # already an item: the RDF cannot turn it into an entity
    kg, _ = read_rdf([str(FIXTURES / "small.ttl")], kg=kg)
    assert kg.node_type_of(EX + "person/bob") == "item" and kg.num_nodes("entity") == 3
    assert ("item", EX + "item/i1", "actor", "item", EX + "person/bob") in set(kg.iter_triples())


def test_same_local_name_from_two_vocabularies(tmp_path):
    path = tmp_path / "g.nt"
    path.write_text("<http://ex/a> <http://v1/genre> <http://ex/b> .\n"
                    "<http://ex/a> <http://v2#genre> <http://ex/c> .\n")
    kg, _ = read_rdf([str(path)])
    assert {kg.relation_iris[r] for r in ("genre", "genre_2")} == {"http://v1/genre", "http://v2#genre"}


def test_unknown_user_or_item_is_counted_then_strict_fails():
    path = str(FIXTURES / "bad_interactions.ttl")
    kg, report = read_rdf([path])
    assert report.interactions == 1 and kg.num_interactions() == 1
    assert (report.interactions_unknown_user, report.interactions_unknown_item) == (1, 1)
    assert any("user end http://example.org/item/i2 is an item" in p for p in report.problems)
    assert any("no itemReviewed" in p for p in report.problems)
    with pytest.raises(KGFormatError, match=r"bad_interactions\.ttl: 2 interaction\(s\) with an unknown user or item"):
        read_rdf([path], strict=True)


def test_malformed_rdf_names_file_and_line():
    with pytest.raises(KGFormatError, match=r"malformed\.ttl:5: malformed turtle"):
        read_rdf([str(FIXTURES / "malformed.ttl")])


def test_malformed_rdfxml_gets_a_line_from_expat(tmp_path):
    path = tmp_path / "bad.rdf"
    lines = (FIXTURES / "small.rdf").read_text().splitlines()
    assert lines[4].strip() == "</mmkg:User>"
    lines[4] = "</mmkg:Usr>"
    path.write_text("\n".join(lines))
    with pytest.raises(KGFormatError, match=r"bad\.rdf:5: malformed rdfxml"):
        read_rdf([str(path)])


def test_unknown_format_lists_the_known_ones(tmp_path):
    with pytest.raises(KGFormatError, match=r"small\.ttl: unknown RDF format 'bogus'; known formats: turtle \(\.ttl"):
        read_rdf([str(FIXTURES / "small.ttl")], format="bogus")
    odd = tmp_path / "data.foo"
    odd.write_text("")
    with pytest.raises(KGFormatError, match=r"data\.foo: cannot tell the RDF format from extension '\.foo'.*jsonld"):
        read_rdf([str(odd)])


def test_empty_result_names_the_files():
    with pytest.raises(KGFormatError, match=r"empty\.ttl: no users, items or entities found \(2 triples read"):
        read_rdf([str(FIXTURES / "empty.ttl")])


def test_missing_file_and_bad_engine():
    with pytest.raises(KGFormatError, match=r"nowhere\.ttl: no such file"):
        read_rdf([str(FIXTURES / "nowhere.ttl")])
    with pytest.raises(KGFormatError, match=r"unknown RDF engine 'jena'"):
        read_rdf([str(FIXTURES / "small.ttl")], engine="jena")
