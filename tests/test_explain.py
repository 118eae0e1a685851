"""Explanations: model-based path scores, words, pictures and the explain.py command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import explain
from explain import Explainer
from explanations.pair_masking import mask_pairs
from explanations.text import NodeNamer, explanation_sentences, path_reason
from gnn.graph_inputs import GraphInputs, build_graph_inputs
from gnn.recommender import TrainableRecommender
from kg.model.graph import KnowledgeGraph
from kg.paths.constraints import ItemConstraints
from kg.paths.path_search import KGPath, PathIndex, path_pairs


class TinyKGModel(TrainableRecommender):
    """A dot product of propagated embeddings: a relation-scaled KG mean layer feeds the items, profile
    entities add to the users, then two LightGCN layers over ``ui_adj``."""

    def __init__(self, inputs: GraphInputs, dim: int = 8) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.user, self.kg_nodes = (nn.Parameter(torch.randn(n, dim, generator=g)) for n in (
            inputs.num_users, inputs.num_kg_nodes))
        self.rel = nn.Parameter(torch.rand(max(inputs.num_relations, 1), generator=g) + 0.5)

    def forward(self, inputs: GraphInputs) -> tuple[Tensor, Tensor]:
        x, h, r = self.kg_nodes, inputs.kg_head, inputs.kg_rel
        deg = torch.zeros(x.shape[0]).index_add_(0, h, torch.ones(h.shape[0])).clamp(min=1).unsqueeze(1)
        x = x + torch.zeros_like(x).index_add_(0, h, x[inputs.kg_tail] * self.rel[r].unsqueeze(1)) / deg
        u = self.user.index_add(0, inputs.profile_user, x[inputs.profile_entity + inputs.num_items] * 0.5)
        layers = [torch.cat([u, x[: inputs.num_items]])]
        layers += [torch.sparse.mm(inputs.ui_adj, layers[0]), torch.sparse.mm(inputs.ui_adj, torch.sparse.mm(
            inputs.ui_adj, layers[0]))]
        out = torch.stack(layers).mean(0)
        return out[: inputs.num_users], out[inputs.num_users:]


def movie_kg() -> KnowledgeGraph:
    kg = KnowledgeGraph()
    for s_t, s, rel, d_t, d in [
        ("item", "toy", "director", "entity", "lasseter"), ("item", "bug", "director", "entity", "lasseter"),
        ("item", "toy", "genre", "entity", "comedy"), ("item", "heat", "genre", "entity", "comedy"),
        ("item", "heat", "film.film.directed_by", "entity", "m.x"), ("item", "toy", "film.film.sequel", "item", "toy2"),
        ("entity", "m.x", "film.director.film", "item", "heat"),  # Freebase's inverse: a parallel edge
        ("item", "ronin", "film.film.directed_by", "entity", "m.x"), ("user", "ann", "ageGroup", "entity", "age25"),
            ("user", "bob", "ageGroup", "entity", "age25")]:
        kg.add_triple(s_t, s, rel, d_t, d)
    for t, ext, name in [("item", "toy", "Toy Story"), ("item", "bug", "A Bug's Life"), ("item", "heat", "Heat"),
                         ("item", "ronin", "Ronin"), ("item", "toy2", "Toy Story 2"),
                         ("entity", "lasseter", "John Lasseter"), ("entity", "comedy", "Comedy"),
                         ("entity", "age25", "age 25-34")]:
        kg.add_text(t, ext, "label" if t == "entity" else "name", name)
    for u, i, r in [("ann", "toy", 5), ("ann", "ronin", 2), ("bob", "toy", 4), ("bob", "bug", 5), ("cy", "heat", 2),
                    ("cy", "bug", 4), ("bob", "toy2", 3), ("ann", "heat", 1)]:
        kg.add_interaction(u, i, r, 0)
    return kg


def setup(held_out: int = 7):
    kg = movie_kg()
    inter = kg.interactions()
    train = inter.subset(np.array([k for k in range(len(inter)) if k != held_out]))
    inputs = build_graph_inputs(kg, train)
    model = TinyKGModel(inputs).eval()
    return kg, train, inputs, model


def without_edges(kg: KnowledgeGraph, train, pairs) -> tuple[KnowledgeGraph, object]:
    """A copy of ``kg`` / ``train`` without the edges between ``pairs``, node indices unchanged."""
    drop, out = {frozenset(p) for p in pairs}, KnowledgeGraph()
    for t in ("user", "item", "entity"):
        for ext in kg.ids(t):
            out.add_node(t, ext)
    for et in kg.edge_types():
        s, d = kg.triples(et)
        keep = [k for k in range(s.shape[0]) if frozenset({(et[0], int(s[k])), (et[2], int(d[k]))}) not in drop]
        out.add_triples(et, s[keep], d[keep])
    pairs = zip(train.user.tolist(), train.item.tolist(), strict=True)
    keep = [k for k, (u, i) in enumerate(pairs) if frozenset({("user", u), ("item", i)}) not in drop]
    return out, train.subset(np.array(keep, dtype=np.int64))


def test_masked_scores_equal_a_graph_built_without_the_path() -> None:
    kg, train, inputs, model = setup()
    index = PathIndex(kg, train)
    ann, bug = kg.index_of("user", "ann"), kg.index_of("item", "bug")
    paths = index.find_paths(ann, bug).paths
    assert {len(p) for p in paths} >= {3}
    explainer = Explainer(kg, index, inputs, model.score_fn)
    for path in paths:
        reduced = build_graph_inputs(*without_edges(kg, train, path_pairs(path)))
        same_ids = torch.tensor([inputs.relation_names.index(n) for n in reduced.relation_names], dtype=torch.long)
        reduced.kg_rel = same_ids[reduced.kg_rel]  # a relation may vanish with its last edge: keep the model's ids
        expected = model.score_fn(reduced)(torch.tensor([ann]))[0, bug]
        assert explainer.masked(ann, bug, [path_pairs(path)])[0] == pytest.approx(float(expected), abs=1e-5)
    masked = mask_pairs(inputs, path_pairs(paths[0]))
    assert masked.kg_head.shape[0] + masked.train_user.shape[0] + masked.profile_user.shape[0] < (
        inputs.kg_head.shape[0] + inputs.train_user.shape[0] + inputs.profile_user.shape[0])
    # explain(): the top paths by drop (> 0 only) among all candidates
    explainer = Explainer(kg, index, inputs, model.score_fn, candidates=50)
    ex = explainer.explain(ann, bug, top=3)
    all_paths = index.find_paths(ann, bug).paths
    drops = explainer.drops(ann, bug, all_paths)
    assert [p.drop for p in ex.paths] == pytest.approx(sorted((d for d in drops if d > 0), reverse=True)[:3])
    assert ex.score == pytest.approx(float(model.score_fn(inputs)(torch.tensor([ann]))[0, bug]))
    assert ex.candidates == len(all_paths)
    # a masked path changes the score unlike an unrelated edge
    assert max(abs(d) for d in drops) > 1e-4
    assert explainer.masked(ann, bug, [[]]) == pytest.approx([ex.score])


def assert_fast_equals_forward(kg, train, inputs, model, fast) -> None:
    index = PathIndex(kg, train)
    slow, quick = Explainer(kg, index, inputs, model.score_fn), Explainer(kg, index, inputs, model.score_fn, fast)
    checked = set()
    for user in range(kg.num_nodes("user")):
        for item in range(kg.num_nodes("item")):
            paths = index.find_paths(user, item).paths
            if paths:
                assert quick.drops(user, item, paths) == pytest.approx(slow.drops(user, item, paths), abs=1e-5)
                checked |= {frozenset(split_kinds(p)) for p in paths}
    assert {"interaction", "kg", "profile"} <= set().union(*checked)  # every kind of masked edge was exercised
    assert quick.masked(0, 1, [[]]) == pytest.approx([float(slow.scores(0)[1])], abs=1e-5)


def split_kinds(path: KGPath) -> set[str]:
    kinds = {frozenset({"user", "item"}): "interaction", frozenset({"user", "entity"}): "profile"}
    return {kinds.get(frozenset({a[0], b[0]}), "kg") for a, b in path_pairs(path)}


def test_fast_masking_equals_a_full_forward(monkeypatch) -> None:
    import gnn.mmkg_model
    from explanations.scoring import MaskedScores
    from gnn.lightgcn_baseline import LightGCNBaseline
    from gnn.mmkg_model import MMKGModel, MMKGOptions

    kg, train, inputs, tiny = setup()
    torch.manual_seed(3)
    lightgcn = LightGCNBaseline(inputs.num_users, inputs.num_items, 8, 3).eval()
    assert MaskedScores.for_model(tiny, inputs) is None  # an unknown model: the generic route
    assert_fast_equals_forward(kg, train, inputs, lightgcn, MaskedScores.for_model(lightgcn, inputs))

    g = torch.Generator().manual_seed(1)
    n_items, n_ent, n_users = (kg.num_nodes(t) for t in ("item", "entity", "user"))
    feats = {"item.text": torch.randn(n_items, 6, generator=g), "item.text_mask": torch.arange(n_items) != 2,
             "entity.text": torch.randn(n_ent, 5, generator=g), "user.profile_text": torch.randn(n_users, 4,
                                                                                                generator=g)}
    inputs = build_graph_inputs(kg, train, feats)
    torch.manual_seed(0)
    model = MMKGModel.from_inputs(inputs, MMKGOptions(embedding_dim=8, num_layers=2, kg_layers=2, use_item_item=True,
                                                      normalize=True, use_image=False, use_clip_text=False))
    assert set(model.user_encoder.modalities) == {"content", "profile_text"}
    with torch.no_grad():
        model.context.weight.normal_()  # make the item-item term matter
        model.kg_gate.normal_()  # and the (zero-initialised) gated KG output
    model.eval()
    fast = MaskedScores.for_model(model, inputs)
    assert fast is not None and fast.kg_h is not None  # its build-time self-check against the model passed
    assert MaskedScores.for_model(model.train(), inputs) is None  # training mode: dropout, no exact mirror
    # masking removes edges; the entities the model embeds stay those it was trained with (a masked entity
    # left with < 2 neighbours would otherwise be pruned and shift every entity row after it)
    kept = gnn.mmkg_model.kept_entities(inputs, model.options)
    monkeypatch.setattr(gnn.mmkg_model, "kept_entities", lambda *_: kept)
    assert_fast_equals_forward(kg, train, inputs, model.eval(), fast)


def test_words_for_common_path_shapes() -> None:
    kg, train, _, _ = setup()
    index = PathIndex(kg, train)
    ann, bob = kg.index_of("user", "ann"), kg.index_of("user", "bob")
    namer = NodeNamer(kg, index, ann)
    n = {ext: ("item", kg.index_of("item", ext)) for ext in kg.ids("item")}
    e = {ext: ("entity", kg.index_of("entity", ext)) for ext in kg.ids("entity")}
    you, other = ("user", ann), ("user", bob)
    director = KGPath((you, n["toy"], e["lasseter"], n["bug"]), (("rates", "out"), ("director", "out"),
                                                                  ("director", "in")))
    assert explanation_sentences(namer, n["bug"][1], [director]) == [
        "Recommended A Bug's Life because you rated Toy Story 5 stars, and both were directed by John Lasseter."]
    similar = KGPath((you, n["toy"], other, n["bug"]), (("rates", "out"), ("rates", "in"), ("rates", "out")))
    assert path_reason(namer, similar) == ("you rated Toy Story 5 stars, and user bob, who also rated it 4 stars, "
                                           "rated A Bug's Life 5 stars")
    profile = KGPath((you, e["age25"], other, n["bug"]), (("ageGroup", "out"), ("ageGroup", "in"), ("rates", "out")))
    assert path_reason(namer, profile) == "user bob, who shares your age group (age 25-34), rated A Bug's Life 5 stars"
    sequel = KGPath((you, n["toy"], n["toy2"]), (("rates", "out"), ("film.film.sequel", "out")))
    assert path_reason(namer, sequel) == "you rated Toy Story 5 stars, and Toy Story has sequel Toy Story 2"
    unnamed = KGPath((you, n["ronin"], e["m.x"], n["heat"]), (("rates", "out"), ("film.film.directed_by", "out"),
                                                              ("film.director.film", "out")))
    assert path_reason(namer, unnamed) == ("you rated Ronin 2 stars, and both were directed by an entity described "
                                           "as \u201cdirected by of: Heat; Ronin. film: Heat\u201d")
    for path in (director, similar, profile, sequel, unnamed):  # every hand-made path is real
        assert all(index.has_edge(s, r, d) for s, r, d in path.edges())


# ------------------------------------------------------------------------------------------- the command
def write_checkpoint(tmp_path) -> tuple[str, KnowledgeGraph]:
    """A saved KG and a LightGCN checkpoint in train.py's format (random weights, as train.py's tests do)."""
    from gnn.lightgcn_baseline import LightGCNBaseline

    kg = movie_kg()
    kg_dir = tmp_path / "kg"
    kg.save(str(kg_dir))
    torch.manual_seed(0)
    model = LightGCNBaseline(kg.num_nodes("user"), kg.num_nodes("item"), 8, 2)
    ck = {"model_state": model.state_dict(), "config": {"model": "lightgcn", "embedding_dim": 8, "num_layers": 2},
          "kg_dir": str(kg_dir), "id_maps": {t: kg.ids(t) for t in ("user", "item", "entity")},
          "split": {"method": "random", "seed": 0, "ratios": [0.8, 0.1, 0.1]}}
    path = tmp_path / "best.pt"
    torch.save(ck, path)
    return str(path), kg


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = explain.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_explains_in_text_json_and_png(tmp_path, capsys) -> None:
    ck, kg = write_checkpoint(tmp_path)
    code, out, err = run_cli(["--checkpoint", ck, "--user", "ann", "--item", "bug"], capsys)
    assert code == 0, err
    assert "Recommended A Bug's Life because" in out or "removing them does not lower" in out
    code, _, err = run_cli(["--checkpoint", ck, "--user", "ann", "--format", "json", "--out",
                            str(tmp_path / "ex.json"), "--top", "2"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "ex.json").read_text())
    assert doc["user"]["id"] == "ann" and 1 <= len(doc["explanations"]) <= 2
    loaded, explainer = explain.load_explainer(ck)
    index = explainer.index
    seen = set(loaded.inputs.train_item[loaded.inputs.train_user == 0].tolist())
    for ex in doc["explanations"]:
        assert ex["item"]["index"] not in seen and ex["text"]
        for p in ex["paths"]:
            nodes = [(n["type"], n["index"]) for n in p["nodes"]]
            path = KGPath(tuple(nodes), tuple((s["relation"], s["direction"]) for s in p["steps"]))
            assert all(index.has_edge(s, r, d) for s, r, d in path.edges())  # every edge is in the KG
            assert p["drop"] > 0 and nodes[0] == ("user", 0) and nodes[-1] == ("item", ex["item"]["index"])
    code, out, err = run_cli(["--checkpoint", ck, "--user", "ann", "--item", "bug", "--format", "png", "--out",
                              str(tmp_path / "ex.png")], capsys)
    assert code == 0, err
    assert (tmp_path / "ex.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_ids_and_no_path(tmp_path, capsys) -> None:
    ck, kg = write_checkpoint(tmp_path)
    for argv, name in ((["--user", "nobody"], "unknown user id 'nobody'"),
                       (["--user", "ann", "--item", "Jaws"], "unknown item id 'Jaws'"),
                       (["recommend", "--user", "zed"], "unknown user id 'zed'")):
        argv = argv[:1] + ["--checkpoint", ck] + argv[1:] if argv[0] == "recommend" else ["--checkpoint", ck, *argv]
        code, out, err = run_cli(argv, capsys)
        assert code == 2 and err == f"error: {name}\n" and out == ""
    code, _, err = run_cli(["--checkpoint", str(tmp_path / "missing.pt"), "--user", "ann"], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    code, out, err = run_cli(["--checkpoint", ck, "--user", "ann", "--item", "bug", "--max-hops", "2"], capsys)
    assert code == 0 and "No path links you to A Bug's Life within the search limit" in out


def test_cli_recommend_never_returns_an_excluded_item(tmp_path, capsys) -> None:
    ck, kg = write_checkpoint(tmp_path)
    rng = np.random.default_rng(0)
    names = ["John Lasseter", "Comedy", "m.x", "Toy Story", "Heat", "Ronin"]
    rels = ["director", "genre", "directed by", "film.film.sequel"]
    for trial in range(8):
        args = []
        for flag, pool in (("--only", names), ("--exclude", names), ("--exclude-relation", rels)):
            for _ in range(int(rng.integers(0, 2 if flag == "--only" else 3))):
                args += [flag, str(pool[rng.integers(len(pool))])]
        out_file = tmp_path / f"rec{trial}.json"
        code, _, err = run_cli(["recommend", "--checkpoint", ck, "--user", "cy", "--k", "3", "--format", "json",
                                "--out", str(out_file), *args], capsys)
        assert code == 0, err
        doc = json.loads(out_file.read_text())
        flags = {f: [args[k + 1] for k in range(0, len(args), 2) if args[k] == f] for f in
                 ("--only", "--exclude", "--exclude-relation")}
        allowed = ItemConstraints.parse(kg, flags["--only"], flags["--exclude"], (),
                                        flags["--exclude-relation"]).allowed(kg)
        got = [r["item"]["index"] for r in doc["recommendations"]]
        assert all(allowed[i] for i in got), (args, got)
        assert len(got) == 3 or doc["note"].startswith(f"only {len(got)} items")
    code, out, err = run_cli(["recommend", "--checkpoint", ck, "--user", "cy", "--only", "Nobody"], capsys)
    assert code == 2 and err == "error: no entity or item with id or label 'Nobody' in the KG\n"
