import math

import numpy as np
import pytest
import torch

from gnn.graph_inputs import build_graph_inputs
from gnn.item_item_graphs import co_entity_graph, co_entity_weights, knn_graph, symmetric_normalized, top_k_edges
from gnn.item_item_propagation import ItemItemPropagation
from gnn.mmkg_model import MMKGModel, MMKGOptions
from kg.model.graph import KnowledgeGraph
from training.config import ConfigError, parse_config
from training.model_factory import build_model


def test_symmetric_normalisation_by_hand():
    # path 0 - 1 - 2 (chosen one way only, plus a duplicate and a self-loop): degrees 1, 2, 1
    a = symmetric_normalized(np.array([0, 1, 1, 2]), np.array([1, 2, 2, 2]), 4).to_dense()
    r = 1 / math.sqrt(2)
    expect = torch.tensor([[0, r, 0, 0], [r, 0, r, 0], [0, r, 0, 0], [0, 0, 0, 0]], dtype=torch.float32)
    assert torch.allclose(a, expect)


def test_knn_graph_by_hand():
    # items 0 and 1 point the same way, 2 close to 1, 3 orthogonal to all, 4 has no feature
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.6, 0.4], [0.0, 1.0], [5.0, 0.0]])
    present = torch.tensor([True, True, True, True, False])
    a = knn_graph(x, 1, present).to_dense()
    # nearest: 0 -> 1, 1 -> 0, 2 -> 1, 3 -> 2 (cos 0.55 beats 1's 0.11); symmetrised edges 0-1, 1-2, 2-3
    deg = torch.tensor([1.0, 2.0, 2.0, 1.0])
    expect = torch.zeros(5, 5)
    for i, j in [(0, 1), (1, 2), (2, 3)]:
        expect[i, j] = expect[j, i] = 1 / math.sqrt(deg[i] * deg[j])
    assert torch.allclose(a, expect)
    assert torch.equal(a, a.T) and a[4].abs().sum() == 0 and a.diagonal().abs().sum() == 0
    # k larger than the candidates: everyone present linked to everyone present
    full = knn_graph(x, 10, present).to_dense()
    assert int((full[:4, :4] > 0).sum()) == 12 and full[4].abs().sum() == 0


def test_co_entity_graph_idf_and_top_k():
    # items 0..3; entity 0 (I+0) shared by 0, 1, 2 (idf log 4/3); entity 1 shared by 0, 1 (idf log 2)
    # entity 2 only on item 3. kg edges both directions, as GraphInputs holds them
    ni = 4
    pairs = [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (3, 2)]
    h = torch.tensor([i for i, _ in pairs] + [ni + e for _, e in pairs])
    t = torch.tensor([ni + e for _, e in pairs] + [i for i, _ in pairs])
    w = co_entity_weights(h, t, ni).toarray()
    a, b = math.log(4 / 3), math.log(2)
    assert w[0, 1] == pytest.approx(a + b) and w[0, 2] == pytest.approx(a) and w[1, 2] == pytest.approx(a)
    assert w[3].sum() == 0 and np.allclose(w, w.T) and np.all(np.diag(w) == 0)
    g = co_entity_graph(h, t, ni, 1).to_dense()
    # top-1: 0 -> 1, 1 -> 0, 2 -> 0 (tie with 1 broken by the lower id); edges 0-1, 0-2: degrees 2, 1, 1, 0
    assert g[0, 1] == pytest.approx(1 / math.sqrt(2)) and g[0, 2] == pytest.approx(1 / math.sqrt(2))
    assert g[1, 2] == 0 and g[3].abs().sum() == 0 and torch.equal(g, g.T)


def _kg() -> KnowledgeGraph:
    kg = KnowledgeGraph()
    for u, i in [("u0", "i0"), ("u0", "i1"), ("u1", "i1"), ("u1", "i2"), ("u2", "i0"), ("u2", "i3")]:
        kg.add_interaction(u, i, 4.0, 1.0)
    for item, genre in [("i0", "g0"), ("i1", "g0"), ("i2", "g1"), ("i3", "g1")]:
        kg.add_triple("item", item, "genre", "entity", genre)
    return kg


def _inputs():
    kg = _kg()
    g = torch.Generator().manual_seed(0)
    feats = {"item.text": torch.randn(4, 8, generator=g), "item.image": torch.randn(4, 6, generator=g),
             "item.image_mask": torch.tensor([True, True, False, True])}
    return build_graph_inputs(kg, kg.interactions(), feats)


@pytest.mark.parametrize("fusion", ["attention", "weights", "mean"])
def test_propagation_shapes_and_gradients(fusion):
    inputs = _inputs()
    prop = ItemItemPropagation(["text", "image", "kg"], 5, k=2, layers=2, fusion=fusion, weight_init=0.5,
                               edge_dropout=0.2)
    x = torch.randn(4, 5, requires_grad=True)
    out = prop(x, inputs)
    assert out.shape == (4, 5)
    out.pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and prop.weight.grad is not None
    graphs = prop.graphs(inputs)
    assert set(graphs) == {"text", "image", "kg"} and not bool(graphs["image"][2][2])  # no image: no edges
    assert prop.graphs(inputs)["text"][0] is graphs["text"][0]  # built once per inputs
    prop.eval()
    fused, _ = prop.propagate(x, inputs)
    a = graphs["kg"][0].to_dense()
    if fusion == "mean":  # no dropout in eval: the mean of A_g^2 x
        expect = sum(g[0].to_dense() @ (g[0].to_dense() @ x) for g in graphs.values()) / 3
        assert torch.allclose(fused, expect, atol=1e-6)
    assert a[0, 1] > 0 and a[2, 3] > 0 and a[0, 2] == 0  # items sharing a genre


def test_zero_initial_weight_starts_from_the_id_model_and_learns():
    inputs = _inputs()
    base = dict(embedding_dim=8, use_kg=False, use_text=False, use_image=False, use_clip_text=False,
                use_profile=False)
    torch.manual_seed(0)
    plain = MMKGModel.from_inputs(inputs, MMKGOptions(**base))
    torch.manual_seed(0)
    graph = MMKGModel.from_inputs(inputs, MMKGOptions(**base, item_graphs="text,kg", item_graph_stage="pre"))
    graph.item_encoder.load_state_dict(plain.item_encoder.state_dict())
    graph.user_encoder.load_state_dict(plain.user_encoder.state_dict())
    u0, i0 = plain(inputs)
    u1, i1 = graph(inputs)
    assert torch.allclose(u0, u1) and torch.allclose(i0, i1)
    (u1.sum() * i1.sum()).backward()
    assert graph.item_graphs.weight.grad is not None and graph.item_graphs.weight.grad.abs() > 0


def test_config_switches_reach_the_model(tmp_path):
    inputs = _inputs()
    cfg = parse_config(["--kg", str(tmp_path), "--use_kg", "false", "--use_profile", "false", "--item_graphs",
                        "text,image,kg", "--item_graph_k", "3", "--item_graph_layers", "2", "--item_graph_fusion",
                        "weights", "--item_graph_weight", "0.25", "--item_graph_learn_weight", "false",
                        "--item_graph_stage", "pre", "--item_graph_dropout", "0.1"])
    model = build_model(cfg, inputs)
    p = model.item_graphs
    assert p.names == ["text", "image", "kg"] and p.k == 3 and p.layers == 2 and p.fusion_kind == "weights"
    assert float(p.weight) == 0.25 and "item_graphs.weight" not in dict(model.named_parameters())
    assert p.edge_dropout == 0.1 and model.options.item_graph_stage == "pre"
    assert build_model(parse_config(["--kg", str(tmp_path)]), inputs).item_graphs is None
    for bad in (["--item_graphs", "text,audio"], ["--item_graph_stage", "mid"], ["--item_graph_fusion", "max"],
                ["--train_fraction", "0"]):
        with pytest.raises(ConfigError):
            parse_config(["--kg", str(tmp_path), *bad])


def test_top_k_edges_by_one_exact_key_equals_the_stable_sort() -> None:
    """The top-k shortcut (one float64 key per entry: weight, then the lower column) keeps the stable sort's
    choice, ties included, on random blocks with many equal weights."""
    gen = torch.Generator().manual_seed(0)
    for trial in range(40):
        b, n, k = 6, 30, 1 + trial % 7
        w = torch.randint(0, 4, (b, n), generator=gen).double() * 0.5
        rows, cols = top_k_edges(w, k, start=2)
        key = w.clone()
        key[torch.arange(b), torch.arange(2, 2 + b)] = 0.0
        key = torch.where(key > 0, key, float("-inf"))
        values, idx = torch.sort(key, dim=1, descending=True, stable=True)
        ok = torch.isfinite(values[:, :k])
        assert rows.tolist() == torch.arange(2, 2 + b).unsqueeze(1).expand(b, k)[ok].tolist()
        assert cols.tolist() == idx[:, :k][ok].tolist()
