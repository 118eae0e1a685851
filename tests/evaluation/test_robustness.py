"""Input perturbations: exact edge counts, zeroed modality masks, the original inputs untouched."""

import numpy as np
import pytest
import torch

from evaluation import EvaluationError
from evaluation.robustness import (
    PERTURBATIONS,
    add_kg_edges,
    add_noisy_interactions,
    drop_kg_edges,
    perturb,
    remove_modality,
    render_robustness,
    run_robustness,
)
from gnn.graph_inputs import GraphInputs, build_graph_inputs
from kg.model.graph import KnowledgeGraph


def _inputs() -> GraphInputs:
    """4 users, 5 items, 3 entities, 10 KG triples over 2 relations, 8 training pairs, image + text features."""
    kg = KnowledgeGraph()
    for u, i in [(0, 0), (0, 1), (1, 1), (1, 2), (2, 3), (2, 4), (3, 0), (3, 4)]:
        kg.add_interaction(f"u{u}", f"i{i}")
    for i, e in [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (0, 2)]:
        kg.add_triple("item", f"i{i}", "genre", "entity", f"e{e}")
    for i, j in [(0, 1), (1, 2), (2, 3), (3, 4)]:
        kg.add_triple("item", f"i{i}", "sequel", "item", f"i{j}")
    kg.add_triple("user", "u0", "gender", "entity", "e0")
    g = torch.Generator().manual_seed(0)
    feats = {"item.text": torch.randn(5, 4, generator=g), "item.text_mask": torch.tensor([1, 1, 1, 0, 1]).bool(),
             "item.image": torch.randn(5, 3, generator=g), "item.image_mask": torch.ones(5, dtype=torch.bool),
             "item.clip_text": torch.randn(5, 3, generator=g), "entity.text": torch.randn(3, 4, generator=g)}
    return build_graph_inputs(kg, kg.interactions(), feats)


def _snapshot(x: GraphInputs) -> dict:
    snap = {k: v.clone() for k, v in vars(x).items() if isinstance(v, torch.Tensor) and not v.is_sparse_csr}
    snap["ui_adj"] = x.ui_adj.to_dense().clone()
    snap.update({f"f:{k}": v.clone() for k, v in x.features.items()})
    snap["feature_keys"] = sorted(x.features)
    return snap


def _assert_unchanged(x: GraphInputs, snap: dict) -> None:
    now = _snapshot(x)
    assert now.pop("feature_keys") == snap.pop("feature_keys")
    for k, v in snap.items():
        assert torch.equal(now[k], v), k


def _triples(x: GraphInputs) -> set:
    n = x.kg_head.numel() // 2
    return set(zip(x.kg_head[:n].tolist(), x.kg_rel[:n].tolist(), x.kg_tail[:n].tolist(), strict=True))


def test_drop_kg_edges_removes_exactly_the_fraction_in_both_directions():
    x = _inputs()
    snap = _snapshot(x)
    assert x.kg_head.numel() == 20  # 10 triples, forward + reverse
    y = drop_kg_edges(x, 0.2, seed=1)
    assert y.kg_head.numel() == 16 and len(_triples(y)) == 8 and _triples(y) <= _triples(x)
    n = 8
    assert torch.equal(y.kg_head[n:], y.kg_tail[:n]) and torch.equal(y.kg_rel[n:], y.kg_rel[:n] + 2)
    assert drop_kg_edges(x, 0.2, seed=1).kg_head.tolist() == y.kg_head.tolist()  # seeded
    assert drop_kg_edges(x, 1.0).kg_head.numel() == 0 and drop_kg_edges(x, 0.0).kg_head.tolist() == x.kg_head.tolist()
    assert drop_kg_edges(x, 0.25).kg_head.numel() == 2 * 8  # round(2.5) == 2 dropped (banker's rounding)
    _assert_unchanged(x, snap)


def test_add_kg_edges_appends_new_distinct_triples_with_reverses():
    x = _inputs()
    snap = _snapshot(x)
    y = add_kg_edges(x, 0.4, seed=3)
    old, new = _triples(x), _triples(y)
    assert y.kg_head.numel() == 28 and len(new) == 14 and old < new
    added = new - old
    assert all(h != t and 0 <= h < 8 and 0 <= t < 8 and r in (0, 1) for h, r, t in added)
    assert torch.equal(y.kg_tail[14:], y.kg_head[:14]) and torch.equal(y.kg_rel[14:], y.kg_rel[:14] + 2)
    assert add_kg_edges(x, 0.4, seed=3).kg_tail.tolist() == y.kg_tail.tolist()
    _assert_unchanged(x, snap)


def test_remove_modality_zeroes_features_and_masks_only_of_that_modality():
    x = _inputs()
    snap = _snapshot(x)
    y = remove_modality(x, "image")
    assert not y.features["item.image"].any() and not y.features["item.image_mask"].any()
    assert torch.equal(y.features["item.text"], x.features["item.text"])
    z = remove_modality(x, "text")
    for key in ("item.text", "item.clip_text", "entity.text"):
        assert not z.features[key].any() and not z.features[f"{key}_mask"].any()
    assert z.features["item.text_mask"].shape == (5,) and z.features["entity.text_mask"].shape == (3,)
    assert not z.user_content.any() and not z.user_content_mask.any() and x.user_content_mask.all()
    assert torch.equal(z.features["item.image"], x.features["item.image"])
    _assert_unchanged(x, snap)


def test_noisy_interactions_extend_the_propagation_graph_only():
    x = _inputs()
    snap = _snapshot(x)
    y = add_noisy_interactions(x, 0.5, seed=0)
    old = set(zip(x.train_user.tolist(), x.train_item.tolist(), strict=True))
    new = set(zip(y.train_user.tolist(), y.train_item.tolist(), strict=True))
    assert y.train_user.numel() == 12 and len(new) == 12 and old < new
    dense = y.ui_adj.to_dense()
    for u, i in new:  # every pair is an edge of the normalised adjacency, symmetric
        assert dense[u, 4 + i] > 0 and dense[u, 4 + i] == dense[4 + i, u]
    assert int((dense > 0).sum()) == 24
    assert torch.equal(y.kg_head, x.kg_head) and y.user_content is x.user_content
    with pytest.raises(EvaluationError, match="only 12"):
        add_noisy_interactions(x, 2.0)  # 20 pairs exist, 8 are training: 13 new ones are impossible
    _assert_unchanged(x, snap)


def test_perturb_dispatch_and_bad_names():
    x = _inputs()
    assert perturb(x, "no_image").features["item.image_mask"].sum() == 0
    with pytest.raises(EvaluationError, match="unknown perturbation"):
        perturb(x, "drop_users", 0.1)
    with pytest.raises(EvaluationError, match="unknown modality"):
        remove_modality(x, "audio")
    with pytest.raises(EvaluationError, match="more than all"):
        drop_kg_edges(x, 1.5)


def test_run_robustness_table_counts_and_rendering():
    x = _inputs()

    def score_for(inp):  # a "model" whose score is each item's KG degree plus image presence
        deg = torch.bincount(inp.kg_head, minlength=inp.num_kg_nodes)[: inp.num_items].float()
        img = inp.features["item.image_mask"].float()
        return lambda users: (deg + img).expand(len(users), -1)

    seen = []

    def evaluate(score_fn, tag):
        seen.append(tag)
        s = score_fn(torch.arange(2))[0]
        return {"score@1": float(s.sum())}

    table = run_robustness(x, score_for, evaluate, levels=[0, 0.1, 0.2], perturbations=PERTURBATIONS,
                           seed=0, progress=False)
    assert seen[0] == "clean" and len(seen) == 1 + 3 * 2 + 2
    rows = {(r["perturbation"], r["level"]): r for r in table["rows"]}
    assert table["clean"] == {"score@1": 14.0 + 5.0}  # items as heads: 6 genre + 4 sequel + 4 reversed sequel; 5 images
    assert rows[("drop_kg_edges", 0.2)]["kg_triples"] == 8 and rows[("add_kg_edges", 0.1)]["kg_triples"] == 11
    assert rows[("noisy_interactions", 0.2)]["train_interactions"] == 10  # round(1.6) = 2 added to 8
    assert rows[("no_image", 1.0)]["metrics"]["score@1"] == 14.0
    assert table["meta"]["levels"] == [0.0, 0.1, 0.2] and table["skipped"] == {}
    text = render_robustness(table)
    assert "no_image" in text and "removed" in text and "-26.3%" in text
    md = render_robustness(table, markdown=True)
    assert md.startswith("| perturbation | level |") and "| none | 0 |" in md


def test_run_robustness_skips_a_missing_modality():
    x = _inputs()
    x = remove_modality(x, "image")
    x.features.pop("item.image")
    x.features.pop("item.image_mask")
    table = run_robustness(x, lambda inp: None, lambda fn, tag: {"m@1": 1.0}, levels=[0.1],
                           perturbations=("no_image",), progress=False)
    assert table["skipped"] == {"no_image": "the model inputs hold no image feature"} and len(table["rows"]) == 1
    assert np.isclose(table["clean"]["m@1"], 1.0)


def test_perturbed_copies_never_share_train_user_so_per_inputs_caches_rebuild():
    x = _inputs()
    for name in ("drop_kg_edges", "add_kg_edges", "no_image", "no_text", "noisy_interactions"):
        y = perturb(x, name, 0.2, seed=0)
        assert y.train_user is not x.train_user, name
    assert torch.equal(drop_kg_edges(x, 0.2).train_user, x.train_user)


def test_a_model_failing_on_a_perturbed_input_gets_a_failed_row_not_a_number():
    x = _inputs()

    def score_for(inp):
        if inp.kg_head.numel() != x.kg_head.numel():
            raise RuntimeError("stack expects each tensor to be equal size\nmore detail")
        return lambda users: torch.zeros(len(users), inp.num_items)

    table = run_robustness(x, score_for, lambda fn, tag: {"m@1": 0.5}, levels=[0.5],
                           perturbations=("drop_kg_edges", "no_image"), progress=False)
    failed = [r for r in table["rows"] if "error" in r]
    assert len(failed) == 1 and failed[0]["metrics"] == {}
    assert failed[0]["error"] == "RuntimeError: stack expects each tensor to be equal size"
    text = render_robustness(table)
    assert "failed" in text and "drop_kg_edges @ 0.5: failed (RuntimeError" in text
    assert [r["metrics"] for r in table["rows"] if r["perturbation"] == "no_image"] == [{"m@1": 0.5}]
