"""benchmarks/explain_attribution.py: every found path scored on the tiny movie KG of tests/test_explain.py, and
the summary's shares and ratios checked by hand."""

import pytest

from benchmarks.explain_attribution import attribution_row, render_lines, summarize
from explanations.explainer import Explainer
from kg.model.graph import INTERACTION_RELATION
from kg.paths.path_search import PathIndex, path_pairs
from tests.test_explain import setup


def test_rows_score_every_found_path() -> None:
    kg, train, inputs, model = setup()
    index = PathIndex(kg, train)
    ex = Explainer(kg, index, inputs, model.score_fn)
    rows = 0
    for user in range(kg.num_nodes("user")):
        for item in range(kg.num_nodes("item")):
            row = attribution_row(ex, user, item, {})
            paths = index.find_paths(user, item).paths
            if row is None:
                assert not paths or max(ex.drops(user, item, paths)) <= 0
                continue
            rows += 1
            drops = ex.drops(user, item, paths)
            best = max(range(len(paths)), key=lambda k: drops[k])
            kg_drops = [d for p, d in zip(paths, drops, strict=True)
                        if any(r != INTERACTION_RELATION for r, _ in p.steps)]
            assert row["paths"] == len(paths) and row["best"] == pytest.approx(drops[best])
            assert row["best_is_kg"] == any(r != INTERACTION_RELATION for r, _ in paths[best].steps)
            top3 = sorted(range(len(paths)), key=lambda k: -drops[k])[:3]
            assert row["kg_in_top3"] == any(drops[k] > 0 and any(r != INTERACTION_RELATION for r, _ in paths[k].steps)
                                            for k in top3)
            assert row["best_kg"] == (pytest.approx(max(kg_drops)) if kg_drops else None)
            alone = float(ex.scores(user)[item]) - ex.masked(user, item, [[path_pairs(paths[best])[0]]])[0]
            assert row["first_hop"] == pytest.approx(alone)
    assert rows > 0


def test_summary_by_hand() -> None:
    rows = [{"paths": 10, "kg_paths": 2, "best": 1.0, "best_is_kg": False, "best_kg": 0.95, "first_hop": 0.5,
             "kg_in_top3": True},
            {"paths": 4, "kg_paths": 0, "best": 2.0, "best_is_kg": False, "best_kg": None, "first_hop": 2.0,
             "kg_in_top3": False},
            {"paths": 7, "kg_paths": 4, "best": 0.5, "best_is_kg": True, "best_kg": 0.5, "first_hop": 0.1,
             "kg_in_top3": True},
            {"paths": 3, "kg_paths": 1, "best": 1.0, "best_is_kg": False, "best_kg": 0.2, "first_hop": 0.8,
             "kg_in_top3": False}]
    s = summarize(rows)
    assert s["exhaustive_recommendations"] == 4
    assert s["exhaustive_kg_top_share"] == pytest.approx(0.25)
    assert s["exhaustive_kg_top3_share"] == pytest.approx(0.5)  # rows 0 and 2
    assert s["kg_within_90"] == pytest.approx(0.5)  # rows 0 and 2
    assert s["kg_best_drop_ratio"] == pytest.approx((0.95 + 1.0 + 0.2) / 3)
    assert s["first_hop_drop_share"] == pytest.approx((0.5 + 1.0 + 0.2 + 0.8) / 4)
    assert s["mean_paths_scored"] == pytest.approx(6.0) and s["mean_kg_paths"] == pytest.approx(1.75)
    text = "\n".join(render_lines(s))
    assert "| best of all paths goes through a KG relation | 25.0% |" in text
    assert "| one of the 3 best of all paths goes through a KG relation | 50.0% |" in text
    assert summarize([]) == {"exhaustive_recommendations": 0} and render_lines(summarize([])) == []
