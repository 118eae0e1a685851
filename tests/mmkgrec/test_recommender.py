"""The Python API (mmkgrec.Recommender): external ids in and out, only / exclude / seen items, unknown ids,
explanations equal to explain.py's."""

from __future__ import annotations

import json

import pytest

import explain
from kg.errors import MMKGError
from mmkgrec import ExplanationPath, Recommendation, Recommender, UnknownIdError

# MostPop on the tiny movie KG (see tests/test_evaluate_topk.py for the split): training popularity heat 2,
# toy 1, toy2 1, bug 0, ronin 0 (ties: lower item index first: toy, bug, heat, toy2, ronin); ann trained on heat.


def recs(*rows: tuple[str, float]) -> list[Recommendation]:
    return [Recommendation(item, score, rank) for rank, (item, score) in enumerate(rows, 1)]


def test_recommend_by_external_ids_with_only_exclude_and_seen(tiny_checkpoint) -> None:
    ck, _ = tiny_checkpoint("mostpop")
    rec = Recommender.load(ck)
    assert rec.users == ["ann", "bob", "cy"] and rec.items == ["toy", "bug", "heat", "toy2", "ronin"]
    assert rec.recommend("ann", k=3) == recs(("toy", 1.0), ("toy2", 1.0), ("bug", 0.0))
    both = rec.recommend(["ann", "bob"], k=2)
    assert both == {"ann": recs(("toy", 1.0), ("toy2", 1.0)), "bob": recs(("heat", 2.0), ("bug", 0.0))}
    assert rec.recommend("ann", k=5, only=["ronin", "heat", "bug"]) == recs(("bug", 0.0), ("ronin", 0.0))
    assert rec.recommend("ann", k=3, exclude=["toy"]) == recs(("toy2", 1.0), ("bug", 0.0), ("ronin", 0.0))
    assert rec.recommend("ann", k=2, exclude_seen=False) == recs(("heat", 2.0), ("toy", 1.0))
    assert rec.recommend("ann", k=3, only=["toy"], exclude=["toy"]) == []
    assert rec.recommend([], k=3) == {}


def test_unknown_ids_and_bad_arguments(tiny_checkpoint, tmp_path) -> None:
    ck, _ = tiny_checkpoint("mostpop")
    rec = Recommender.load(ck)
    with pytest.raises(UnknownIdError, match="unknown user id 'zed'"):
        rec.recommend(["ann", "zed"])
    with pytest.raises(LookupError, match="unknown item id 'jaws'"):
        rec.recommend("ann", only=["toy", "jaws"])
    with pytest.raises(UnknownIdError, match="unknown item id 'jaws'"):
        rec.explain("ann", "jaws")
    with pytest.raises(ValueError, match="k must be >= 1"):
        rec.recommend("ann", k=0)
    with pytest.raises(MMKGError, match="missing.pt: checkpoint not found"):
        Recommender.load(tmp_path / "missing.pt")


def test_explain_returns_the_paths_explain_py_prints(tiny_checkpoint, tmp_path, capsys) -> None:
    ck, kg = tiny_checkpoint("lightgcn")
    rec = Recommender.load(ck, kg=tmp_path / "kg")
    found = 0
    for user in rec.users:
        for item in [r.item for r in rec.recommend(user, k=3)]:
            paths = rec.explain(user, item, paths=2)
            assert explain.main(["--checkpoint", str(ck), "--user", user, "--item", item, "--paths", "2",
                                 "--format", "json", "--out", str(tmp_path / "ex.json")]) == 0
            doc = json.loads((tmp_path / "ex.json").read_text())["explanations"][0]
            assert [p.nodes for p in paths] == [[n["id"] for n in p["nodes"]] for p in doc["paths"]]
            assert [p.drop for p in paths] == pytest.approx([p["drop"] for p in doc["paths"]])
            for p in paths:
                assert isinstance(p, ExplanationPath) and p.nodes[0] == user and p.nodes[-1] == item
                assert len(p.relations) == len(p.directions) == len(p.nodes) - 1 and p.drop > 0 and p.text
                assert set(p.labels) <= {"User", "Item", "Entity"} and p.labels[0] == "User"
            found += len(paths)
    assert found >= 3
    capsys.readouterr()
