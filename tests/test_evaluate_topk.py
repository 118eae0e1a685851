"""evaluate.py topk: every user's top-k to Parquet, checked by hand on a MostPop checkpoint of the tiny movie KG."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

import evaluate
from evaluation.checkpoint_scoring import load_checkpoint

# The split (random, seed 0) of the tiny movie KG (tests/conftest.py), asserted below:
SPLIT = {"train": [("bob", "toy"), ("cy", "heat"), ("bob", "toy2"), ("ann", "heat")],
         "valid": [("ann", "toy"), ("bob", "bug"), ("cy", "bug")],
         "test": [("ann", "ronin"), ("cy", "toy"), ("bob", "heat")]}
# MostPop scores an item by its training interactions: heat 2, toy 1, toy2 1, bug 0, ronin 0; item order (ties:
# lower index first) toy, bug, heat, toy2, ronin. Masking a user's training items:
#   ann (trained on heat): toy 1, toy2 1, bug 0;  bob (toy, toy2): heat 2, bug 0, ronin 0;  cy (heat): like ann.
TOP3_TRAIN_MASKED = [("ann", 1, "toy", 1.0), ("ann", 2, "toy2", 1.0), ("ann", 3, "bug", 0.0),
                     ("bob", 1, "heat", 2.0), ("bob", 2, "bug", 0.0), ("bob", 3, "ronin", 0.0),
                     ("cy", 1, "toy", 1.0), ("cy", 2, "toy2", 1.0), ("cy", 3, "bug", 0.0)]
# --mask seen also drops validation and test items: ann keeps toy2, bug; bob only ronin; cy toy2, ronin.
TOP3_SEEN_MASKED = [("ann", 1, "toy2", 1.0), ("ann", 2, "bug", 0.0), ("bob", 1, "ronin", 0.0),
                    ("cy", 1, "toy2", 1.0), ("cy", 2, "ronin", 0.0)]


def rows(path) -> list[tuple]:
    df = pd.read_parquet(path)
    assert list(df.columns) == ["user", "rank", "item", "score"]
    return [(u, int(r), i, float(s)) for u, r, i, s in df.itertuples(index=False)]


def test_topk_ranks_mask_and_parquet_contents(tiny_checkpoint, tmp_path, capsys) -> None:
    ck, kg = tiny_checkpoint("mostpop")
    loaded = load_checkpoint(ck)
    parts = loaded.split.parts(kg.interactions())
    got_split = {name: [(kg.ids("user")[u], kg.ids("item")[i]) for u, i in zip(p.user.tolist(), p.item.tolist(),
                                                                                strict=True)]
                 for name, p in zip(SPLIT, parts, strict=True)}
    assert got_split == SPLIT, "the split changed: re-derive the hand-made expectations"
    out = tmp_path / "recs.parquet"
    assert evaluate.main(["topk", "--checkpoint", str(ck), "--k", "3", "--out", str(out), "--quiet"]) == 0
    assert "wrote 9 recommendations for 3 users" in capsys.readouterr().err
    assert rows(out) == TOP3_TRAIN_MASKED
    schema = pq.read_schema(out)
    assert [str(schema.field(c).type) for c in ("user", "rank", "item", "score")] == ["string", "int32", "string",
                                                                                      "float"]
    one = tmp_path / "one.parquet"  # one user per batch: one row group each, the same rows
    assert evaluate.main(["topk", "--checkpoint", str(ck), "--k", "3", "--out", str(one), "--batch-size", "1",
                          "--quiet"]) == 0
    assert rows(one) == TOP3_TRAIN_MASKED and pq.ParquetFile(one).num_row_groups == 3
    assert evaluate.main(["topk", "--checkpoint", str(ck), "--k", "3", "--out", str(out), "--mask", "seen",
                          "--quiet"]) == 0
    assert rows(out) == TOP3_SEEN_MASKED
    assert evaluate.main(["topk", "--checkpoint", str(ck), "--k", "9", "--out", str(out), "--mask", "none",
                          "--quiet"]) == 0
    order = ["heat", "toy", "toy2", "bug", "ronin"]  # k > catalogue: clipped to the 5 items
    assert rows(out) == [(u, r, i, s) for u in ("ann", "bob", "cy") for r, (i, s) in enumerate(
        zip(order, [2.0, 1.0, 1.0, 0.0, 0.0], strict=True), 1)]


def test_topk_bad_input_writes_nothing(tiny_checkpoint, tmp_path, capsys) -> None:
    ck, _ = tiny_checkpoint("mostpop")
    out = tmp_path / "recs.parquet"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    for argv, name in ((["--checkpoint", str(tmp_path / "nope.pt")], "nope.pt: checkpoint not found"),
                       (["--checkpoint", str(bad)], str(bad)), (["--checkpoint", str(ck), "--k", "0"], "--k")):
        assert evaluate.main(["topk", *argv, "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and name in err
        assert list(tmp_path.glob("*.parquet")) == [] and list(tmp_path.glob(".recs*")) == []
    with pytest.raises(SystemExit):  # the old command line still needs --checkpoint, now as before
        evaluate.main(["--ks", "10"])
