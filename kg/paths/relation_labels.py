"""Readable labels of relation names, for explanations.

``relation_label("film.film.directed_by")`` -> ``"directed by"``; a reversed relation reads backwards:
``relation_label("rev_film.film.directed_by")`` (or ``relation_label("film.film.directed_by", reverse=True)``)
-> ``"directed"``. Known names (ml-100k's schema.org / Freebase / profile relations and the interaction
``rates``) have hand-written labels; any other name becomes its last segment with underscores, dots and
camelCase turned into words (``hasPart`` -> ``has part``), and reads backwards as ``"<label> of"``
(``"... by"`` drops the ``by``: ``composed by`` -> ``composed``).
"""

from __future__ import annotations

import re

REVERSE_PREFIX = "rev_"

# name -> (forward label, backward label): "A <forward> B" reads as "B <backward> A"
KNOWN_LABELS: dict[str, tuple[str, str]] = {
    "rates": ("rated", "rated by"),
    "rated": ("rated", "rated by"),
    "interactedWith": ("interacted with", "interacted with by"),
    "director": ("directed by", "directed"),
    "film.film.directed_by": ("directed by", "directed"),
    "film.director.film": ("directed", "directed by"),
    "actor": ("stars", "stars in"),
    "film.film.actor": ("stars", "stars in"),
    "film.actor.film": ("stars in", "stars"),
    "genre": ("genre", "genre of"),
    "film.film.genre": ("genre", "genre of"),
    "film.film_genre.films_in_this_genre": ("genre of", "genre"),
    "film.film.produced_by": ("produced by", "produced"),
    "film.producer.film": ("produced", "produced by"),
    "film.film.written_by": ("written by", "wrote"),
    "film.writer.film": ("wrote", "written by"),
    "film.film.cinematography": ("shot by", "shot"),
    "film.cinematographer.film": ("shot", "shot by"),
    "film.film.production_companies": ("made by", "made"),
    "film.production_company.films": ("made", "made by"),
    "film.film.sequel": ("has sequel", "sequel of"),
    "film.film.prequel": ("has prequel", "prequel of"),
    "film.film.subjects": ("about", "subject of"),
    "film.film_subject.films": ("subject of", "about"),
    "film.film.country": ("country", "country of"),
    "film.film.language": ("language", "language of"),
    "film.film.rating": ("content rating", "content rating of"),
    "film.content_rating.film": ("content rating of", "content rating"),
    "film.film.award_nomination": ("nominated for", "nomination of"),
    "film.film.award_won": ("won", "won by"),
    "ageGroup": ("age group", "age group of"),
    "gender": ("gender", "gender of"),
    "occupation": ("occupation", "occupation of"),
}


def split_reverse(name: str) -> tuple[str, bool]:
    """``("film.film.genre", True)`` for ``"rev_film.film.genre"``; ``(name, False)`` otherwise."""
    if name.startswith(REVERSE_PREFIX) and len(name) > len(REVERSE_PREFIX):
        return name[len(REVERSE_PREFIX):], True
    return name, False


def words_of(name: str) -> str:
    """The last segment of ``name`` (after ``/``, ``#``, ``.`` or ``:``) as lower-case words."""
    last = re.split(r"[/#.:]", name.rstrip("/#.:"))[-1] or name
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", last)
    spaced = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", " ", spaced).replace("_", " ").replace("-", " ")
    return re.sub(r"\s+", " ", spaced).strip().lower() or name


def relation_label(name: str, reverse: bool = False) -> str:
    """A readable label of relation ``name``, read backwards when ``reverse`` (or when ``name`` starts
    with ``rev_``; both together read forwards again)."""
    base, flipped = split_reverse(name)
    if base not in KNOWN_LABELS and name in KNOWN_LABELS:
        base, flipped = name, False
    backwards = reverse != flipped
    known = KNOWN_LABELS.get(base)
    if known is not None:
        return known[1] if backwards else known[0]
    label = words_of(base)
    if not backwards:
        return label
    if label.endswith(" by") and len(label) > 3:
        return label[:-3]
    return f"{label} of"


def step_label(relation: str, direction: str) -> str:
    """The label of a path step that follows ``relation`` forwards (``direction == "out"``) or
    backwards (``"in"``)."""
    if direction not in ("out", "in"):
        raise ValueError(f"direction must be 'out' or 'in', got {direction!r}")
    return relation_label(relation, reverse=direction == "in")


def relation_matches(name: str, query: str) -> bool:
    """Whether ``query`` names relation ``name``: its exact name, or (case-insensitive) its label
    or the words of its last segment (``"genre"`` matches ``genre`` and ``film.film.genre``)."""
    if query == name:
        return True
    q = " ".join(query.lower().replace("_", " ").split())
    return q in {relation_label(name), words_of(name), name.lower()}
