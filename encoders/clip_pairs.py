"""The image-text pairs CLIP pre-training learns from, their split by film, and the
retrieval recall it reports on the held-out ones.

A pair is ``(group_key, image_path, text)``. The group key is the film's normalised
title (+ release year when every pair has one): the ml-100k poster and the ml-1m
poster of one film (the same file, in fact) share it, so a split by group never puts
one film on both sides.

- :func:`catalog_pairs`: a KG's items with an image (text ``"Title. Genre, Genre. Summary"``,
  as :func:`encoders.features.item_texts` writes it) plus, optionally, the ml-1m posters
  (``"Title (Year). Genre, Genre"``);
- :func:`movielens_raw_pairs`: the same from the raw ml-100k files, without a KG.
"""

from __future__ import annotations

import csv
import math
import os
import random
import re
import unicodedata
from pathlib import Path

import torch

from kg.errors import MMKGError
from kg.model.graph import KnowledgeGraph

Pair = tuple[str, str, str]
KS = (1, 5, 10)
_ARTICLE = re.compile(r"^(.*), (the|a|an|la|le|les|l'|il|el|los|las|das|der|die|den|det)$")
_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


def normalise_title(title: str) -> str:
    """Lower case without accents, parenthetical parts dropped, a trailing ", The" moved to
    the front, only [a-z0-9] words: ``"Amélie (Le Fabuleux destin)"`` -> ``"amelie"``."""
    t = unicodedata.normalize("NFKD", re.sub(r"\([^)]*\)", " ", title))
    t = "".join(c for c in t if not unicodedata.combining(c)).strip().lower()
    t = _ARTICLE.sub(r"\2 \1", t)
    return " ".join(re.findall(r"[a-z0-9]+", t))


def pair_text(title: str, year: str | None, genres: list[str], summary: str = "") -> str:
    """``"Title (Year). Genre, Genre. Summary"`` (empty parts left out)."""
    head = f"{title} ({year})" if year else title
    return ". ".join(p for p in (head, ", ".join(genres), summary.strip()) if p)


def _keyed(records: list[tuple[str, str | None, str, str]]) -> list[Pair]:
    """Pairs from ``(title, year, image, text)``; the key has the year only when every record has one."""
    with_year = all(r[1] for r in records)
    return [(normalise_title(t) + (f"|{y}" if with_year else ""), img, txt) for t, y, img, txt in records]


def ml1m_records(directory: str | os.PathLike) -> list[tuple[str, str | None, str, str]]:
    """``(title, year, poster, "Title (Year). Genres")`` per ml-1m film with a poster
    (``movies.dat``, Latin-1, ``id::Title (Year)::Genre|Genre``; ``posters/<id>.jpg``)."""
    root = Path(directory)
    path = root / "movies.dat"
    try:
        lines = path.read_text(encoding="latin-1").splitlines()
    except OSError as e:
        raise MMKGError(f"{path}: cannot read ({e.strerror})") from e
    out = []
    for n, line in enumerate(lines, 1):
        parts = line.split("::")
        if len(parts) != 3:
            raise MMKGError(f"{path}:{n}: expected id::Title (Year)::Genres, got {line[:60]!r}")
        m = _TITLE_YEAR.match(parts[1])
        title, year = (m.group(1), m.group(2)) if m else (parts[1].strip(), None)
        poster = root / "posters" / f"{parts[0].strip()}.jpg"
        if poster.is_file():
            out.append((title, year, str(poster), pair_text(title, year, [g for g in parts[2].split("|") if g])))
    return out


def catalog_pairs(
    kg: KnowledgeGraph | str | os.PathLike, extra_ml1m_dir: str | os.PathLike | None = None
) -> list[Pair]:
    """Image-text pairs of a KG's items with an image (text: title, genres, summary), plus the
    ml-1m posters of ``extra_ml1m_dir`` (title + genres). Keys are normalised titles (+ year
    when every pair has one; the KG keeps no release year)."""
    from encoders.entity_descriptions import node_label
    from encoders.features import item_texts, resolve_image

    kg_dir = Path(kg) if not isinstance(kg, KnowledgeGraph) else Path(".")
    graph = KnowledgeGraph.load(str(kg)) if not isinstance(kg, KnowledgeGraph) else kg
    texts = item_texts(graph)[0]
    records = []
    for i, ref in sorted(graph.images["item"].items()):
        path = resolve_image(ref, kg_dir)
        if path is not None:
            records.append((node_label(graph, "item", i) or graph.ids("item")[i], None, str(path), texts[i]))
    return _keyed(records + (ml1m_records(extra_ml1m_dir) if extra_ml1m_dir else []))


def movielens_raw_pairs(ml100k_dir: str | os.PathLike, extra_ml1m_dir: str | os.PathLike | None = None) -> list[Pair]:
    """The same pairs straight from the raw files (``ml-100k.item``, ``ml-100k.imdb.csv``,
    ``posters/``), without a KG; keys carry the year."""
    root = Path(ml100k_dir)
    with open(root / "ml-100k.imdb.csv", encoding="utf-8", newline="") as f:
        summaries = {r["item_id"]: re.sub(r"\s*—[^—]*$", "", r["summary"] or "") for r in csv.DictReader(f)}
    records = []
    for line in (root / "ml-100k.item").read_text(encoding="utf-8").splitlines()[1:]:
        iid, title, year, genres = (line.split("\t") + ["", "", ""])[:4]
        poster = root / "posters" / f"{iid}.jpg"
        if poster.is_file():
            genre_list = [g for g in genres.split() if g != "unknown"]
            text = pair_text(title, year or None, genre_list, summaries.get(iid, ""))
            records.append((title, year or None, str(poster), text))
    return _keyed(records + (ml1m_records(extra_ml1m_dir) if extra_ml1m_dir else []))


def split_by_group(pairs: list[Pair], heldout_frac: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """``(train, held-out)`` pair indices; whole groups (by key) go to one side."""
    groups = sorted({p[0] for p in pairs})
    random.Random(seed).shuffle(groups)
    n_out = min(len(groups) - 1, max(1, round(len(groups) * heldout_frac))) if len(groups) > 1 else 0
    held = set(groups[:n_out])
    return [i for i, p in enumerate(pairs) if p[0] not in held], [i for i, p in enumerate(pairs) if p[0] in held]


def retrieval_recall(image_emb: torch.Tensor, text_emb: torch.Tensor, ks=KS) -> dict[str, dict[str, float]]:
    """Recall@K of matching row ``i`` of ``image_emb`` ``[n, D]`` with row ``i`` of ``text_emb``
    (image->text, text->image), chance ``K / n``, and ``p_value``: per direction, the one-sided binomial
    p-value of the hits at the largest K under a random ranking. A query's rank counts strictly better scores."""
    sim = image_emb.float() @ text_emb.float().T
    n = sim.shape[0]
    out: dict[str, dict[str, float]] = {"chance": {f"R@{k}": min(1.0, k / n) for k in ks}}
    for name, s in (("image_to_text", sim), ("text_to_image", sim.T)):
        rank = (s > s.diag().unsqueeze(1)).sum(1)
        out[name] = {f"R@{k}": float((rank < k).float().mean()) for k in ks}
        out.setdefault("p_value", {})[name] = binomial_tail(n, int((rank < max(ks)).sum()), min(1.0, max(ks) / n))
    return out


def binomial_tail(n: int, hits: int, p: float) -> float:
    """``P(X >= hits)`` for ``X ~ Binomial(n, p)``: how likely a random ranking (each query's match lands in
    the top K with probability ``p = K / n``) scores at least ``hits`` of ``n`` (one-sided p-value)."""
    if hits <= 0 or p >= 1.0:
        return 1.0
    if hits > n or p <= 0.0:
        return 0.0
    log_c = math.lgamma(n + 1)  # terms in log space: C(n, x) overflows a float beyond n ~ 1,000
    terms = [log_c - math.lgamma(x + 1) - math.lgamma(n - x + 1) + x * math.log(p) + (n - x) * math.log1p(-p)
             for x in range(hits, n + 1)]
    top = max(terms)
    return float(min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms)))
