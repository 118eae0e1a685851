from pathlib import Path

import numpy as np
import pytest

from kg.errors import KGFormatError
from kg.sources.recbole_source import read_atomic, read_recbole

REAL = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "ml-100k"  # <clone>/../shared/data


def write(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    write(tmp_path / "toy.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float",
          "u1\ti1\t4\t100", "u2\ti1\t\t200", "u2\ti2\t2.5\t")
    write(tmp_path / "toy.item",
          "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\tscore:float",
          "i1\tToy Story\t1995\tAnimation Children's Comedy\t1.5", "i2\tHeat\t1995\tAction\t2", "i3\t\t\t\t")
    write(tmp_path / "toy.user", "user_id:token\tage:token\toccupation:token\ttags:token_seq\theight:float",
          "u1\t24\twriter\ta b\t1.8", "u2\t24\tother\t\t1.7")
    write(tmp_path / "toy.kg", "head_id:token\trelation_id:token\ttail_id:token",
          "m.1\tfilm.film.genre\tm.g", "m.p\tfilm.director.film\tm.1", "m.g\tgenre.parent\tm.g0",
          "m.2\tfilm.film.sequel\tm.1")
    write(tmp_path / "toy.link", "item_id:token\tentity_id:token", "i1\tm.1", "i2\tm.2")
    return tmp_path


def edges(kg, etype) -> set[tuple[str, str]]:
    s, d = kg.triples(etype)
    return {(kg.ids(etype[0])[a], kg.ids(etype[2])[b]) for a, b in zip(s.tolist(), d.tolist(), strict=True)}


def test_read_atomic_header_and_rows(tiny: Path) -> None:
    af = read_atomic(tiny / "toy.item")
    assert af.names == ["item_id", "movie_title", "release_year", "class", "score"]
    assert af.types == ["token", "token_seq", "token", "token_seq", "float"]
    assert af.rows[0] == (2, ["i1", "Toy Story", "1995", "Animation Children's Comedy", "1.5"])
    assert len(af.rows) == 3


def test_read_recbole_nodes_text_and_interactions(tiny: Path) -> None:
    kg = read_recbole(tiny, "toy")
    assert kg.ids("user") == ["u1", "u2"]
    assert kg.ids("item") == ["i1", "i2", "i3"]
    assert kg.text["item"][0] == {"name": ["Toy Story"], "release_year": ["1995"],
                                  "class": ["Animation Children's Comedy"]}
    assert kg.node_text("item", 2) == {}
    inter = kg.interactions()
    assert inter.user.tolist() == [0, 1, 1] and inter.item.tolist() == [0, 0, 1]
    np.testing.assert_array_equal(inter.rating, np.array([4, np.nan, 2.5], dtype=np.float32))
    np.testing.assert_array_equal(inter.timestamp, [100, 200, np.nan])


def test_user_profile_attributes_become_labelled_entities(tiny: Path) -> None:
    kg = read_recbole(tiny, "toy")
    assert edges(kg, ("user", "age", "entity")) == {("u1", "age=24"), ("u2", "age=24")}
    assert edges(kg, ("user", "occupation", "entity")) == {("u1", "occupation=writer"), ("u2", "occupation=other")}
    assert edges(kg, ("user", "tags", "entity")) == {("u1", "tags=a"), ("u1", "tags=b")}
    assert kg.text["entity"][kg.index_of("entity", "age=24")] == {"label": ["age 24"]}
    assert not any(et[1] == "height" for et in kg.edge_types())


def test_linked_entities_are_the_items(tiny: Path) -> None:
    kg = read_recbole(tiny, "toy")
    assert edges(kg, ("item", "film.film.genre", "entity")) == {("i1", "m.g")}
    assert edges(kg, ("entity", "film.director.film", "item")) == {("m.p", "i1")}
    assert edges(kg, ("entity", "genre.parent", "entity")) == {("m.g", "m.g0")}
    assert edges(kg, ("item", "film.film.sequel", "item")) == {("i2", "i1")}
    assert not kg.has_node("entity", "m.1") and not kg.has_node("entity", "m.2")
    assert kg.num_triples() == 4 + 6  # 4 KG triples + 6 user attribute edges


def test_only_inter_is_required(tmp_path: Path) -> None:
    write(tmp_path / "x.inter", "user_id:token\titem_id:token", "a\tb")
    kg = read_recbole(tmp_path, "x")
    assert kg.num_interactions() == 1 and np.isnan(kg.interactions().rating[0])
    with pytest.raises(KGFormatError, match=r"y\.inter: no such file"):
        read_recbole(tmp_path, "y")


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        ("user_id:token\titem_id:token", "a\tb\tc", r"bad\.inter: line 3: 3 tab-separated fields, expected 2"),
        ("user_id:token\titem_id:token\trating:float", "a\tb\tfive",
         r"line 3: column 'rating': 'five' is not a number"),
        ("user_id:token\titem_id:token\tv:float_seq", "a\tb\t1 x", r"line 3: column 'v': 'x' is not a number"),
        ("user_id:token\titem_id", "a\tb", r"bad\.inter: line 1: header field 'item_id' is not 'name:type'"),
        ("user_id:token\titem_id:int", "a\tb", r"line 1: header field 'item_id:int'"),
        ("user_id:token\titem:token", "a\tb", r"no column 'item_id' \(columns: user_id, item\)"),
        ("user_id:token\titem_id:token", "\tb", r"line 3: empty user_id or item_id"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, header: str, row: str, message: str) -> None:
    write(tmp_path / "bad.inter", header, "a\tb" if header.count("\t") == 1 else "a\tb\t1", row)
    with pytest.raises(KGFormatError, match=message):
        read_recbole(tmp_path, "bad")


def test_entity_linked_to_two_items_is_an_error(tiny: Path) -> None:
    write(tiny / "toy.link", "item_id:token\tentity_id:token", "i1\tm.1", "i2\tm.1")
    with pytest.raises(KGFormatError, match=r"toy\.link: line 3: entity 'm.1' linked to items 'i1' and 'i2'"):
        read_recbole(tiny, "toy")


def test_empty_line_inside_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "e.inter").write_text("user_id:token\titem_id:token\na\tb\n\nc\td\n", encoding="utf-8")
    with pytest.raises(KGFormatError, match=r"line 3: empty line"):
        read_recbole(tmp_path, "e")


@pytest.mark.realdata
@pytest.mark.skipif(not REAL.is_dir(), reason=f"needs {REAL}")
def test_real_ml100k() -> None:
    kg = read_recbole(REAL, "ml-100k")
    assert (kg.num_nodes("user"), kg.num_nodes("item"), kg.num_interactions()) == (943, 1682, 100_000)
    profile = {"age", "gender", "occupation", "zip_code"}
    kg_edges = sum(kg.triples(et)[0].shape[0] for et in kg.edge_types() if et[1] not in profile)
    assert kg_edges == 91_631
    assert kg.text["item"][kg.index_of("item", "1")]["name"] == ["Toy Story"]
