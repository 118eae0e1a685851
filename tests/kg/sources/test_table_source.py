import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kg.errors import KGFormatError
from kg.model.graph import KnowledgeGraph
from kg.sources.table_source import read_interactions_table

REAL = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "ml-100k"  # <clone>/../shared/data
ROWS = [("u1", "i1", "4", "100"), ("u2", "i1", "", "200"), ("u1", "i2", "2.5", "")]


def write_csv(path: Path, rows=ROWS, header=("user", "item", "stars", "when"), sep: str = ",") -> Path:
    text = "\n".join(sep.join(r) for r in [header, *rows]) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def read(path: Path, kg: KnowledgeGraph | None = None, **kw):
    kg = KnowledgeGraph() if kg is None else kg
    kw = {"user_col": "user", "item_col": "item", "rating_col": "stars", "timestamp_col": "when", **kw}
    return kg, read_interactions_table(path, kg, **kw)


def check_rows(kg: KnowledgeGraph) -> None:
    assert kg.ids("user") == ["u1", "u2"] and kg.ids("item") == ["i1", "i2"]
    inter = kg.interactions()
    assert inter.user.tolist() == [0, 1, 0] and inter.item.tolist() == [0, 0, 1]
    np.testing.assert_array_equal(inter.rating, np.array([4, np.nan, 2.5], dtype=np.float32))
    np.testing.assert_array_equal(inter.timestamp, [100, 200, np.nan])


@pytest.mark.parametrize(("name", "sep"), [("t.csv", ","), ("t.tsv", "\t"), ("t.csv.gz", ","), ("t.TSV.gz", "\t")])
def test_text_formats_create_nodes(tmp_path: Path, name: str, sep: str) -> None:
    kg, report = read(write_csv(tmp_path / name, sep=sep))
    check_rows(kg)
    assert (report.added, report.skipped) == (3, 0)


def test_parquet(tmp_path: Path) -> None:
    df = pd.DataFrame({"user": ["u1", "u2", "u1"], "item": ["i1", "i1", "i2"], "stars": [4.0, np.nan, 2.5],
                       "when": [100.0, 200.0, np.nan]})
    df.to_parquet(tmp_path / "t.parquet")
    kg, report = read(tmp_path / "t.parquet")
    check_rows(kg)
    assert report.added == 3


def test_parquet_datetime_and_integer_ids(tmp_path: Path) -> None:
    df = pd.DataFrame({"user_id": [7, 8], "item_id": [1, 2],
                       "ts": pd.to_datetime(["1970-01-01 00:01:40", "1970-01-02 00:00:00"])})
    df.to_parquet(tmp_path / "t.pq")
    kg = KnowledgeGraph()
    read_interactions_table(tmp_path / "t.pq", kg, timestamp_col="ts")
    assert kg.ids("user") == ["7", "8"]
    assert kg.interactions().timestamp.tolist() == [100.0, 86400.0]


def test_date_strings_become_epoch_seconds(tmp_path: Path) -> None:
    rows = [("a", "x", "1", "1970-01-01T00:00:10Z"), ("a", "y", "2", "86400")]
    kg, _ = read(write_csv(tmp_path / "d.csv", rows=rows))
    assert kg.interactions().timestamp.tolist() == [10.0, 86400.0]


def test_explicit_separator_for_other_extensions(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.dat", sep=";")
    with pytest.raises(KGFormatError, match=r"t\.dat: unknown table format '\.dat'"):
        read(path)
    kg, _ = read(path, sep=";")
    check_rows(kg)


def test_missing_column_lists_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv")
    with pytest.raises(KGFormatError, match=r"t\.csv: no column 'rating' \(columns: user, item, stars, when\)"):
        read(path, rating_col="rating")


def test_non_numeric_rating_names_line(tmp_path: Path) -> None:
    rows = [*ROWS, ("u3", "i3", "good", "5")]
    with pytest.raises(KGFormatError, match=r"t\.csv: line 5: column 'stars': 'good' is not a number"):
        read(write_csv(tmp_path / "t.csv", rows=rows))


def test_bad_timestamp_and_blank_id_name_line(tmp_path: Path) -> None:
    with pytest.raises(KGFormatError, match=r"line 2: column 'when': 'soon' is not a number or a date"):
        read(write_csv(tmp_path / "a.csv", rows=[("u", "i", "1", "soon")]))
    with pytest.raises(KGFormatError, match=r"line 3: blank 'item'"):
        read(write_csv(tmp_path / "b.csv", rows=[("u", "i", "1", "1"), ("u", " ", "1", "1")]))


def test_unknown_ids_are_counted_when_kg_has_nodes(tmp_path: Path) -> None:
    kg = KnowledgeGraph()
    kg.add_node("user", "u1")
    kg.add_node("item", "i1")
    rows = [("u1", "i1", "5", "1"), ("u9", "i1", "4", "2"), ("u1", "i9", "3", "3"), ("u8", "i8", "2", "4")]
    path = write_csv(tmp_path / "t.csv", rows=rows)
    _, report = read(path, kg)
    assert (report.added, report.skipped, report.unknown_users, report.unknown_items) == (1, 3, 2, 2)
    assert report.unknown_user_examples == ["u9", "u8"] and report.unknown_item_examples == ["i9", "i8"]
    assert kg.num_nodes("user") == 1 and kg.num_nodes("item") == 1 and kg.num_interactions() == 1
    assert "3 rows skipped" in report.summary()
    with pytest.raises(KGFormatError, match=r"t\.csv: line 3: unknown user 'u9'"):
        read(path, kg, strict=True)


def test_only_the_empty_node_type_is_created(tmp_path: Path) -> None:
    kg = KnowledgeGraph()
    kg.add_node("item", "i1")  # items known (e.g. from RDF), users not yet
    _, report = read(write_csv(tmp_path / "t.csv", rows=[("u1", "i1", "5", "1"), ("u2", "i2", "5", "1")]), kg)
    assert kg.ids("user") == ["u1"] and (report.added, report.unknown_items, report.unknown_users) == (1, 1, 0)


def test_prefixes_match_rdf_iris(tmp_path: Path) -> None:
    kg = KnowledgeGraph()
    kg.add_node("user", "http://x/user/u1")
    kg.add_node("item", "http://x/item/i1")
    _, report = read(write_csv(tmp_path / "t.csv", rows=[("u1", "i1", "5", "1")]), kg,
                     user_prefix="http://x/user/", item_prefix="http://x/item/", strict=True)
    assert report.added == 1 and kg.num_nodes("user") == 1


@pytest.mark.realdata
@pytest.mark.skipif(not REAL.is_dir(), reason=f"needs {REAL}")
def test_real_ml100k_inter_as_tsv(tmp_path: Path) -> None:
    # the RecBole .inter file is a TSV whose header names carry ':type'
    kg = KnowledgeGraph()
    report = read_interactions_table(REAL / "ml-100k.inter", kg, "user_id:token", "item_id:token",
                                     "rating:float", "timestamp:float", sep="\t")
    assert report.added == 100_000 and kg.num_nodes("user") == 943 and kg.num_nodes("item") == 1682
    assert kg.interactions().rating.sum() == 352_986  # sum of the 100,000 ml-100k ratings
