import gzip
from collections import Counter
from pathlib import Path

import pandas as pd
import pyoxigraph as ox
import pytest

from kg.data_dir import ENV_VAR, REPO_ROOT, find_data_dir
from kg.datasets.movielens import FREEBASE, age_group, build_movielens_kg_ttl, iri_segment, main, turtle_literal
from kg.errors import MMKGError

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ml-100k"  # <clone>/../shared/data
BASE = "http://mmkgrec.dev/movielens/"
S, M = "http://schema.org/", "http://mmkgrec.dev/vocab#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
SUMMARY = 'He said "hi" \\o/\nthen left — twice. Ça va?'


def write(path: Path, header: str, *rows: str) -> None:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    d = tmp_path / "ml-100k"
    (d / "posters").mkdir(parents=True)
    (d / "posters" / "1.jpg").write_bytes(b"\xff\xd8")
    write(d / "ml-100k.user", "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
          "1\t24\tM\ttechnician\t85711", "2\t60\tF\tother\t94043")
    write(d / "ml-100k.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
          '1\tSay "Cheese" \\ Co\t1995\tAnimation Children\'s Film-Noir', "2\tOld One (1920)\tV\tunknown")
    write(d / "ml-100k.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float",
          "1\t1\t5\t881250949", "2\t1\t3\t881250950", "2\t2\t1\t881250951")
    write(d / "ml-100k.kg", "head_id:token\trelation_id:token\ttail_id:token",
          "m.a\tfilm.film.genre\tm.g", "m.d\tfilm.director.film\tm.a", "m.g\tgenre.parent\tm.h")
    write(d / "ml-100k.link", "item_id:token\tentity_id:token", "1\tm.a")
    pd.DataFrame({"item_id": ["1", "2"], "title": ["x", "y"], "summary": [SUMMARY + " —Jo Bloggs <j@x.org>", ""],
                  "cast": ['Zoë "Z" Smith|Ann Lee|A/B <C>', ""], "director": ["José O'Neil", ""]},
                 ).to_csv(d / "ml-100k.imdb.csv", index=False)
    return d


def parse(path: Path) -> list:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return list(ox.parse(data, format=ox.RdfFormat.TURTLE))


def objects(triples, subject: str, predicate: str) -> set[str]:
    return {t.object.value for t in triples if t.subject.value == subject and t.predicate.value == predicate}


def test_helpers() -> None:
    assert iri_segment("John Lasseter") == "John_Lasseter"
    assert iri_segment('A/B <C> "q" 100%#?') == "A%2FB_%3CC%3E_%22q%22_100%25%23%3F"
    assert iri_segment("Zoë O'Neil") == "Zoë_O'Neil"
    assert turtle_literal('a"b\\c\nd\te\x01') == '"a\\"b\\\\c\\nd\\te\\u0001"'
    assert [age_group(a) for a in (7, 18, 24, 25, 34, 45, 50, 55, 56, 73)] == [
        "0-17", "18-24", "18-24", "25-34", "25-34", "45-49", "50-55", "50-55", "56+", "56+"]


@pytest.mark.parametrize("name", ["kg.ttl", "kg.ttl.gz"])
def test_build_writes_the_vocabulary(mini: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / "out" / name
    counts = build_movielens_kg_ttl(mini, out)
    assert counts == {"users": 2, "items": 2, "items_with_poster": 1, "items_with_summary": 1,
                      "freebase_triples": 3, "interactions": 3}
    t = parse(out)
    u1, i1, i2 = BASE + "user/1", BASE + "item/1", BASE + "item/2"
    assert objects(t, u1, RDF_TYPE) == {M + "User"}
    assert objects(t, u1, M + "ageGroup") == {BASE + "age/18-24"}
    assert objects(t, BASE + "user/2", M + "ageGroup") == {BASE + "age/56+"}
    assert objects(t, BASE + "gender/F", LABEL) == {"female"}
    assert objects(t, BASE + "occupation/technician", LABEL) == {"technician"}
    assert objects(t, i1, RDF_TYPE) == {S + "Movie"}
    assert objects(t, i1, S + "name") == {'Say "Cheese" \\ Co'}
    assert objects(t, i2, S + "name") == {"Old One"} and objects(t, i2, M + "releaseYear") == {"1920"}
    assert objects(t, i1, S + "description") == {SUMMARY}  # the "—Author" credit is dropped
    assert objects(t, i1, S + "genre") == {BASE + "genre/Animation", BASE + "genre/Children's",
                                           BASE + "genre/Film-Noir"}
    assert objects(t, i2, S + "genre") == set() and objects(t, i2, S + "image") == set()
    assert objects(t, i1, S + "image") == {(mini / "posters" / "1.jpg").resolve().as_uri()}
    assert objects(t, i1, S + "actor") == {BASE + "person/Zoë_%22Z%22_Smith", BASE + "person/Ann_Lee",
                                           BASE + "person/A%2FB_%3CC%3E"}
    assert objects(t, BASE + "person/Zoë_%22Z%22_Smith", LABEL) == {'Zoë "Z" Smith'}
    assert objects(t, i1, S + "director") == {BASE + "person/José_O'Neil"}
    # Freebase triples with the linked entity m.a replaced by the item
    fb = {(x.subject.value, x.predicate.value, x.object.value) for x in t if x.predicate.value.startswith(FREEBASE)}
    assert fb == {(i1, FREEBASE + "film.film.genre", FREEBASE + "m.g"),
                  (FREEBASE + "m.d", FREEBASE + "film.director.film", i1),
                  (FREEBASE + "m.g", FREEBASE + "genre.parent", FREEBASE + "m.h")}
    reviews = {x.subject for x in t if x.predicate.value == RDF_TYPE and x.object.value == S + "Review"}
    rows = {(next(iter(objects(t, r.value, S + "author"))), next(iter(objects(t, r.value, S + "itemReviewed"))),
             next(iter(objects(t, r.value, S + "reviewRating"))), next(iter(objects(t, r.value, S + "dateCreated"))))
            for r in reviews}
    assert all(isinstance(r, ox.BlankNode) for r in reviews)
    assert rows == {(u1, i1, "5", "881250949"), (BASE + "user/2", i1, "3", "881250950"),
                    (BASE + "user/2", i2, "1", "881250951")}
    assert [p.name for p in out.parent.iterdir()] == [name]  # no temporary file left


def test_find_data_dir(mini: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_data_dir(str(mini.parent)) == mini  # the folder holding ml-100k/
    assert find_data_dir(str(mini)) == mini  # ml-100k/ itself
    monkeypatch.setenv(ENV_VAR, str(mini.parent))
    assert find_data_dir(None) == mini
    monkeypatch.setenv(ENV_VAR, str(mini))
    assert find_data_dir(None) == mini
    with pytest.raises(MMKGError, match=r"no ml-1m data found \(tried .*nowhere.ml-1m\)"):
        find_data_dir(str(tmp_path / "nowhere"), "ml-1m")  # an explicit folder is the only place tried
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    found = REPO_ROOT.parent / "shared" / "data" / "ml-100k"
    if found.is_dir():
        assert find_data_dir(None) == found
    (tmp_path / "data" / "other").mkdir(parents=True)
    assert find_data_dir(None, "other") == Path("data/other")


def test_main_missing_data_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "kg.ttl"
    assert main(["--data-dir", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no ml-100k data found") and "ml-100k.imdb.csv" in err and "GroupLens" in err
    assert not out.exists()


def test_main_missing_file_and_bad_line(mini: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "kg.ttl"
    (mini / "ml-100k.link").unlink()
    assert main(["--data-dir", str(mini.parent), "--out", str(out)]) == 2
    assert "missing ml-100k.link" in capsys.readouterr().err
    write(mini / "ml-100k.link", "item_id:token\tentity_id:token", "1\tm.a")
    with open(mini / "ml-100k.inter", "a", encoding="utf-8") as f:
        f.write("1\t2\tfive\t1\n")
    assert main(["--data-dir", str(mini), "--out", str(out)]) == 2
    assert "ml-100k.inter: line 5: column 'rating': 'five' is not a number" in capsys.readouterr().err
    assert not out.exists()


def test_main_writes_and_reports(mini: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "kg.ttl"
    assert main(["--data-dir", str(mini), "--out", str(out)]) == 0
    assert "users 2, items 2" in capsys.readouterr().out and len(parse(out)) > 0


@pytest.fixture(scope="module")
def real_ttl(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    if not REAL.is_dir():
        pytest.skip(f"needs {REAL}")
    out = tmp_path_factory.mktemp("ml100k") / "ml-100k.ttl"
    return out, build_movielens_kg_ttl(REAL, out)


@pytest.mark.realdata
def test_real_ml100k_turtle(real_ttl: tuple[Path, dict[str, int]]) -> None:
    out, counts = real_ttl
    assert (counts["users"], counts["items"], counts["interactions"], counts["freebase_triples"]) == (
        943, 1682, 100_000, 91_631)
    t = parse(out)
    types = Counter(x.object.value for x in t if x.predicate.value == RDF_TYPE)
    assert (types[M + "User"], types[S + "Movie"], types[S + "Review"]) == (943, 1682, 100_000)
    preds = Counter(x.predicate.value for x in t)
    assert sum(n for p, n in preds.items() if p.startswith(FREEBASE)) == 91_631
    assert preds[S + "image"] >= 1600 and preds[S + "description"] >= 1400


@pytest.mark.realdata
def test_real_ml100k_turtle_through_read_rdf(real_ttl: tuple[Path, dict[str, int]]) -> None:
    rdf_source = pytest.importorskip("kg.sources.rdf_source")
    kg, _ = rdf_source.read_rdf([str(real_ttl[0])])
    assert (kg.num_nodes("user"), kg.num_nodes("item"), kg.num_interactions()) == (943, 1682, 100_000)
    fb = [et for et in kg.edge_types() if kg.relation_iris.get(et[1], "").startswith(FREEBASE)]
    assert sum(kg.triples(et)[0].shape[0] for et in fb) == 91_631
    assert len(kg.images["item"]) >= 1600
    assert sum("description" in f for f in kg.text["item"].values()) >= 1400
    i1 = kg.index_of("item", BASE + "item/1")
    assert kg.text["item"][i1]["name"] == ["Toy Story"] and kg.images["item"][i1].endswith("posters/1.jpg")
