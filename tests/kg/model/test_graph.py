import numpy as np
import pytest

from kg.errors import KGFormatError, MMKGError
from kg.model.graph import KnowledgeGraph
from kg.model.hetero import relation_key


def small_kg() -> KnowledgeGraph:
    kg = KnowledgeGraph()
    kg.add_text("item", "i:toy", "name", "Toy Story")
    kg.add_text("item", "i:bug", "name", "A Bug's Life")
    kg.set_image("item", "i:toy", "/posters/1.jpg")
    kg.add_text("entity", "e:lasseter", "label", "John Lasseter")
    kg.add_triple("item", "i:toy", "film.film.directed_by", "entity", "e:lasseter")
    kg.add_triple("item", "i:bug", "film.film.directed_by", "entity", "e:lasseter")
    kg.add_triple("item", "i:toy", "film.film.directed_by", "entity", "e:lasseter")  # duplicate
    kg.add_triple("user", "u:1", "gender", "entity", "e:F")
    kg.add_interaction("u:1", "i:toy", 5.0, 881250949)
    kg.add_interaction("u:2", "i:bug", None, None)
    return kg


def test_ids_map_both_ways():
    kg = small_kg()
    assert kg.ids("item") == ["i:toy", "i:bug"]
    assert kg.index_of("item", "i:bug") == 1
    assert kg.num_nodes("user") == 2 and kg.num_nodes("entity") == 2
    with pytest.raises(MMKGError, match="unknown item id 'i:nope'"):
        kg.index_of("item", "i:nope")
    with pytest.raises(MMKGError, match="unknown node type 'film'"):
        kg.index_of("film", "x")


def test_triples_deduplicated_and_text():
    kg = small_kg()
    src, dst = kg.triples(("item", "film.film.directed_by", "entity"))
    assert sorted(zip(src.tolist(), dst.tolist(), strict=True)) == [(0, 0), (1, 0)]
    assert kg.num_triples() == 3
    assert kg.display_name("item", 1) == "A Bug's Life"
    assert kg.display_name("user", 0) == "u:1"  # no text: the external id
    kg.add_text("item", "i:toy", "name", "Toy Story")
    assert kg.node_text("item", 0)["name"] == ["Toy Story"]


def test_interactions_keep_missing_values_as_nan():
    inter = small_kg().interactions()
    assert inter.user.tolist() == [0, 1] and inter.item.tolist() == [0, 1]
    assert inter.rating[0] == 5.0 and np.isnan(inter.rating[1])
    assert inter.timestamp[0] == 881250949 and np.isnan(inter.timestamp[1])
    assert len(inter.subset(np.array([1]))) == 1


def test_hetero_data_has_explicit_reverse_edges():
    kg = small_kg()
    data = kg.to_hetero_data()
    key = relation_key("film.film.directed_by")
    assert key == "film_film_directed_by"
    assert data["item", key, "entity"].edge_index.tolist() == [[0, 1], [0, 0]]
    assert data["entity", "rev_" + key, "item"].edge_index.tolist() == [[0, 0], [0, 1]]
    assert data["user", "rates", "item"].edge_index.tolist() == [[0, 1], [0, 1]]
    assert data["item", "rev_rates", "user"].edge_index.tolist() == [[0, 1], [0, 1]]
    assert data["user", "rates", "item"].rating[0].item() == 5.0
    assert data.relation_names[key] == "film.film.directed_by"
    assert data["item"].num_nodes == 2 and data["entity"].num_nodes == 2
    # only the interactions passed in (e.g. the training split) are in the graph
    train_only = kg.to_hetero_data(kg.interactions().subset(np.array([0])))
    assert train_only["user", "rates", "item"].edge_index.tolist() == [[0], [0]]


def test_networkx_nodes_are_named():
    g = small_kg().to_networkx()
    assert g.nodes[("item", 1)]["name"] == "A Bug's Life"
    rels = sorted(d["relation"] for _, _, d in g.edges(data=True))
    assert rels == ["film.film.directed_by", "film.film.directed_by", "gender", "rates", "rates"]


def test_save_load_round_trip(tmp_path):
    kg = small_kg()
    kg.save(tmp_path / "kg")
    back = KnowledgeGraph.load(tmp_path / "kg")
    assert back.ids("item") == kg.ids("item") and back.ids("entity") == kg.ids("entity")
    assert sorted(back.iter_triples()) == sorted(kg.iter_triples())
    assert back.text == kg.text and back.images == kg.images
    a, b = back.interactions(), kg.interactions()
    np.testing.assert_array_equal(a.user, b.user)
    np.testing.assert_array_equal(a.rating, b.rating)
    np.testing.assert_array_equal(a.timestamp, b.timestamp)
    # saving again replaces the directory and leaves no temporary folders
    kg.add_interaction("u:3", "i:toy")
    kg.save(tmp_path / "kg")
    assert KnowledgeGraph.load(tmp_path / "kg").num_interactions() == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kg"]


def test_save_refuses_to_replace_a_non_kg_directory(tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(KGFormatError, match="not a KG directory"):
        small_kg().save(tmp_path / "precious")
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious"]


def test_load_rejects_missing_files_and_versions(tmp_path):
    with pytest.raises(KGFormatError, match="not a KG directory"):
        KnowledgeGraph.load(tmp_path)
    small_kg().save(tmp_path / "kg")
    schema = tmp_path / "kg" / "schema.json"
    schema.write_text(schema.read_text().replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(KGFormatError, match="format version 99"):
        KnowledgeGraph.load(tmp_path / "kg")
