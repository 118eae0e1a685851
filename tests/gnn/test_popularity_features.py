"""The popularity prior's content features: embeddings with their masks, and the KG columns checked by hand."""

from __future__ import annotations

import math

import torch

from gnn.popularity_features import embedding_features, item_entity_pairs, kg_popularity_features, prior_features
from kg.model.graph import KnowledgeGraph


def test_embedding_features_zero_missing_rows_and_add_the_mask() -> None:
    emb = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = embedding_features([(emb, torch.tensor([True, False])), (torch.ones(2, 1), None)])
    torch.testing.assert_close(out, torch.tensor([[1.0, 2.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0, 1.0]]))


def test_kg_columns_by_hand() -> None:
    # items 0, 1, 2 warm with log(1 + n) = 1, 2, 3; item 3 cold. Director d0 made items 0, 1 and 3; d1 made 2.
    y = torch.tensor([1.0, 2.0, 3.0, 0.0])
    counts = torch.expm1(y)
    warm = torch.tensor([True, True, True, False])
    pairs = {"directed_by": (torch.tensor([0, 1, 3, 2]), torch.tensor([0, 0, 0, 1]))}
    out = kg_popularity_features(pairs, counts, warm)
    assert out.shape == (4, 2)
    torch.testing.assert_close(out[:, 0], torch.full((4,), math.log(2.0)))  # one director each
    # leave-self-out mean of the director's other warm films; item 2's director has none: the warm mean 2
    torch.testing.assert_close(out[:, 1], torch.tensor([2.0, 1.0, 2.0, 1.5]))


def test_kg_columns_do_not_read_an_items_own_or_cold_counts() -> None:
    pairs = {"genre": (torch.tensor([0, 1, 2, 3]), torch.tensor([0, 0, 0, 0]))}
    warm = torch.tensor([True, True, False, False])
    a = kg_popularity_features(pairs, torch.tensor([5.0, 9.0, 0.0, 0.0]), warm)
    b = kg_popularity_features(pairs, torch.tensor([5.0, 9.0, 70.0, 3.0]), warm)  # cold counts are never read
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a[:2, 1], torch.tensor([math.log1p(9.0), math.log1p(5.0)]))  # each other's count


def test_item_entity_pairs_and_prior_features() -> None:
    kg = KnowledgeGraph()
    kg.add_triple("item", "i0", "director", "entity", "d0")
    kg.add_triple("item", "i1", "director", "entity", "d0")
    kg.add_triple("entity", "g0", "films_in_genre", "item", "i1")
    kg.add_triple("user", "u0", "gender", "entity", "male")  # not an item relation: left out
    pairs = item_entity_pairs(kg)
    assert sorted(pairs) == ["director", "films_in_genre (in)"]
    item, ent = pairs["films_in_genre (in)"]
    assert item.tolist() == [kg.index_of("item", "i1")] and ent.tolist() == [kg.index_of("entity", "g0")]
    feats = {"item.text": torch.ones(2, 3), "item.text_mask": torch.tensor([True, False])}
    x, groups = prior_features(feats, pairs, torch.tensor([3.0, 0.0]), torch.tensor([True, False]))
    assert x.shape == (2, 4 + 4) and groups == [4, 1, 1, 1, 1]
    torch.testing.assert_close(x[1, :4], torch.zeros(4))
