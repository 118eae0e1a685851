"""Readable relation labels (kg/paths/relation_labels.py)."""

from __future__ import annotations

import pytest

from kg.paths.relation_labels import relation_label, relation_matches, split_reverse, step_label, words_of


@pytest.mark.parametrize(("name", "label"), [
    ("film.film.directed_by", "directed by"),
    ("rev_film.film.directed_by", "directed"),
    ("director", "directed by"),
    ("rev_director", "directed"),
    ("film.film.actor", "stars"),
    ("actor", "stars"),
    ("rev_actor", "stars in"),
    ("genre", "genre"),
    ("rev_genre", "genre of"),
    ("rates", "rated"),
    ("rev_rates", "rated by"),
    ("ageGroup", "age group"),
    ("gender", "gender"),
    ("occupation", "occupation"),
    ("rev_occupation", "occupation of"),
    ("film.director.film", "directed"),
    ("rev_film.director.film", "directed by"),
    ("film.film.sequel", "has sequel"),
])
def test_known_labels(name: str, label: str) -> None:
    assert relation_label(name) == label


@pytest.mark.parametrize(("name", "label", "backwards"), [
    ("http://example.org/ns#hasPart", "has part", "has part of"),
    ("music.album.release_type", "release type", "release type of"),
    ("composedBy", "composed by", "composed"),
    ("HTTPLink", "http link", "http link of"),
    ("schema:isPartOf", "is part of", "is part of of"),
    ("has-part", "has part", "has part of"),
])
def test_unknown_names_become_words(name: str, label: str, backwards: str) -> None:
    assert relation_label(name) == label
    assert relation_label("rev_" + name) == backwards
    assert relation_label(name, reverse=True) == backwards


def test_reverse_twice_reads_forwards_and_steps() -> None:
    assert relation_label("rev_genre", reverse=True) == "genre"
    assert step_label("director", "out") == "directed by"
    assert step_label("director", "in") == "directed"
    with pytest.raises(ValueError, match="direction"):
        step_label("director", "up")
    assert split_reverse("rev_x") == ("x", True) and split_reverse("rev_") == ("rev_", False)
    assert words_of("film.film_genre.films_in_this_genre") == "films in this genre"


def test_relation_matches_names_and_labels() -> None:
    assert relation_matches("film.film.genre", "genre")
    assert relation_matches("genre", "Genre")
    assert relation_matches("film.film.directed_by", "directed_by")
    assert relation_matches("film.film.directed_by", "film.film.directed_by")
    assert not relation_matches("film.film.actor", "genre")
