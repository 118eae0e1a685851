"""Node features of a KG: text-LM, CLIP image and CLIP text embeddings with presence masks.

:func:`build_node_features` returns (as :class:`NodeFeatures`, a dict) the tensors

====================================  ============================================================
``item.text`` ``[N_item, D_text]``    text LM of ``"title. genre, genre. summary"``
``item.image`` ``[N_item, D_clip]``   CLIP image tower on the item's image (``kg.images['item']``)
``item.clip_text``                    CLIP text tower on ``"title. genre, genre"``
``entity.text`` ``[N_entity, D]``     text LM of the entity's label, else of its graph description
``user.profile_text`` ``[N_user, D]`` text LM of ``"age 25-34, gender male, occupation technician"``
====================================  ============================================================

each with a ``<key>_mask`` bool ``[N]`` that is False where the node had no input
(no text, no image, an image file missing or unreadable); masked rows are zeros.
The CLIP keys are absent when no CLIP encoder is given. Genres are the labels of
the entities an item reaches through a relation whose readable name contains
"genre"; a user's profile is the labels of what its relations reach.

A user's *behavioural* feature (an aggregate of the features of the items it
interacted with) is not built here: it must come from training interactions only,
so it is computed inside training after the split.

:func:`save_features` writes ``features.safetensors`` + ``features.json`` (encoder
identities, dims, counts, the tensor file's sha256) into ``<kg_dir>/features/``,
each through a temporary file and a rename; :func:`load_features` checks them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from encoders.cache import atomic_write
from encoders.entity_descriptions import describe_entities, node_label, readable_relation
from encoders.registry import MaskedEncoder, ModalityEncoder
from kg.errors import MMKGError
from kg.model.graph import KnowledgeGraph

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
FEATURES_DIR = "features"
TENSOR_FILE = "features.safetensors"
META_FILE = "features.json"


class FeatureFileError(MMKGError):
    """A saved features directory is missing, corrupt or does not match its KG."""


class NodeFeatures(dict):
    """``{key: tensor}`` plus ``identities`` (feature key -> encoder identity) and
    ``stats`` (feature key -> counts such as encoded / cached / failed)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.identities: dict[str, str] = {}
        self.stats: dict[str, dict[str, int]] = {}


def item_texts(kg: KnowledgeGraph) -> tuple[list[str], list[str]]:
    """``(text-LM texts, CLIP texts)`` of every item: ``"title. genres. summary"`` and ``"title. genres"``."""
    genres = _linked_labels(kg, "item", lambda rel: "genre" in readable_relation(rel))
    lm, clip = [], []
    for i in range(kg.num_nodes("item")):
        title = (node_label(kg, "item", i) or "").rstrip(". ")
        genre = ", ".join(label for _, label in genres.get(i, []))
        summary = next((v.strip() for v in kg.node_text("item", i).get("description", []) if v.strip()), "")
        clip.append(". ".join(p for p in (title, genre) if p))
        lm.append(". ".join(p for p in (title, genre, summary) if p))
    return lm, clip


def user_profile_texts(kg: KnowledgeGraph) -> list[str]:
    """``"age 25-34, gender male, occupation technician"`` per user, from its labelled relations
    (the relation name is prefixed unless the label already starts with it)."""
    linked = _linked_labels(kg, "user", lambda rel: True)
    texts = []
    for u in range(kg.num_nodes("user")):
        parts = []
        for rel, label in linked.get(u, []):
            head = readable_relation(rel)
            first = head.split(" ")[0] if head else ""
            parts.append(label if not first or label.lower().startswith(first) else f"{head} {label}")
        texts.append(", ".join(parts))
    return texts


def resolve_image(ref: str, kg_dir: str | os.PathLike) -> Path | None:
    """The local file of an image reference (a path, relative to ``kg_dir`` when relative,
    or a ``file://`` IRI); ``None`` for a remote IRI (never fetched)."""
    parsed = urlparse(ref)
    if parsed.scheme == "file":
        return Path(url2pathname(unquote(parsed.path)))
    if parsed.scheme in ("http", "https", "ftp"):
        return None
    path = Path(ref).expanduser()
    return path if path.is_absolute() else Path(kg_dir) / path


def build_node_features(
    kg: KnowledgeGraph,
    kg_dir: str | os.PathLike,
    text_encoder: Any = None,
    clip_image: Any = None,
    clip_text: Any = None,
    cache_dir: str | os.PathLike | None = None,
    max_neighbours: int = 5,
) -> NodeFeatures:
    """Encode the node features of ``kg`` (see the module docstring for the keys).

    Args:
        kg: the knowledge graph (loaded from ``kg_dir``).
        kg_dir: its directory; relative image paths are resolved against it.
        text_encoder: a :class:`~encoders.text.TextEncoder` or a registry encoder;
            ``None`` builds the default TextEncoder caching under ``cache_dir``.
        clip_image: the CLIP image encoder (paths -> ``(Tensor[N, D], mask)``), or ``None``.
        clip_text: the CLIP text encoder (texts -> ``Tensor[N, D]``), or ``None``.
        cache_dir: the embedding cache root used by the default text encoder.
        max_neighbours: neighbours named in an unnamed entity's description.
    """
    if text_encoder is None:
        from encoders.text import TextEncoder

        text_encoder = TextEncoder(cache_dir=cache_dir)
    text = _as_modality(text_encoder, skip_empty=False)
    feats = NodeFeatures()
    lm_texts, clip_texts = item_texts(kg)
    _encode(feats, "item.text", text, lm_texts)
    _encode(feats, "entity.text", text, describe_entities(kg, max_neighbours))
    _encode(feats, "user.profile_text", text, user_profile_texts(kg))
    if clip_text is not None:
        _encode(feats, "item.clip_text", _as_modality(clip_text, skip_empty=True), clip_texts)
    if clip_image is not None:
        _encode_images(feats, kg, kg_dir, _as_modality(clip_image, skip_empty=False))
    return feats


def save_features(directory: str | os.PathLike, tensors: dict[str, torch.Tensor], identities: dict[str, str]) -> Path:
    """Write ``tensors`` and their metadata into ``directory`` (created); returns the tensor file."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    payload = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    meta = {
        "format_version": FORMAT_VERSION,
        "identities": {k: identities[k] for k in sorted(identities) if k in tensors},
        "dims": {k: int(v.shape[1]) for k, v in tensors.items() if v.dim() == 2},
        "counts": {k: int(v.shape[0]) for k, v in tensors.items()},
        "present": {k: int(v.sum()) for k, v in tensors.items() if v.dtype == torch.bool},
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    atomic_write(root / TENSOR_FILE, payload)
    atomic_write(root / META_FILE, json.dumps(meta, indent=1, sort_keys=True).encode())
    return root / TENSOR_FILE


def load_features(directory: str | os.PathLike, kg: KnowledgeGraph | None = None) -> NodeFeatures:
    """Read a directory written by :func:`save_features`; with ``kg``, check the node counts."""
    root = Path(directory)
    try:
        meta = json.loads((root / META_FILE).read_bytes())
        payload = (root / TENSOR_FILE).read_bytes()
    except (OSError, ValueError) as e:
        raise FeatureFileError(f"{root}: no readable {META_FILE} + {TENSOR_FILE} ({e})") from e
    if meta.get("format_version") != FORMAT_VERSION:
        raise FeatureFileError(f"{root / META_FILE}: format version {meta.get('format_version')!r}")
    if hashlib.sha256(payload).hexdigest() != meta.get("sha256"):
        raise FeatureFileError(f"{root / TENSOR_FILE}: checksum differs from {META_FILE} (corrupt or mixed writes)")
    try:
        feats = NodeFeatures(st_load(payload))
    except SafetensorError as e:
        raise FeatureFileError(f"{root / TENSOR_FILE}: unreadable ({e})") from e
    feats.identities = dict(meta.get("identities", {}))
    for key, tensor in feats.items():
        ntype = key.split(".")[0]
        if kg is not None and tensor.shape[0] != kg.num_nodes(ntype):
            raise FeatureFileError(
                f"{root / TENSOR_FILE}: {key} has {tensor.shape[0]} rows, the KG has {kg.num_nodes(ntype)} {ntype}s"
            )
    return feats


# ------------------------------------------------------------------ internals
def _as_modality(encoder: Any, skip_empty: bool) -> ModalityEncoder:
    if isinstance(encoder, MaskedEncoder):
        return encoder
    if hasattr(encoder, "encode") and hasattr(encoder, "identity"):  # TextEncoder
        return MaskedEncoder(encoder, call=encoder.encode)
    return MaskedEncoder(encoder, skip_empty=skip_empty)


def _encode(feats: NodeFeatures, key: str, encoder: ModalityEncoder, inputs: list) -> None:
    emb, mask = encoder(inputs)
    feats[key], feats[f"{key}_mask"] = emb, mask
    feats.identities[key] = feats.identities[f"{key}_mask"] = encoder.identity
    stats = getattr(encoder, "last_stats", {}) or {}
    feats.stats[key] = {"total": len(inputs), "present": int(mask.sum())} | dict(stats)


def _encode_images(feats: NodeFeatures, kg: KnowledgeGraph, kg_dir: str | os.PathLike, encoder) -> None:
    n = kg.num_nodes("item")
    refs = kg.images["item"]
    paths: dict[int, Path] = {}
    missing: list[str] = []
    for i, ref in sorted(refs.items()):
        path = resolve_image(ref, kg_dir)
        if path is not None and path.is_file():
            paths[i] = path
        else:
            missing.append(ref)
    if missing:
        log.warning("%d item image(s) not found locally, masked (first: %s)", len(missing), missing[0])
    rows = sorted(paths)
    sub, sub_mask = encoder([str(paths[i]) for i in rows]) if rows else (None, None)
    dim = sub.shape[1] if sub is not None else int(getattr(encoder, "dim", 0) or 0)
    emb, mask = torch.zeros(n, dim), torch.zeros(n, dtype=torch.bool)
    if rows:
        emb[rows], mask[rows] = sub, sub_mask
    feats["item.image"], feats["item.image_mask"] = emb, mask
    feats.identities["item.image"] = feats.identities["item.image_mask"] = encoder.identity
    stats = getattr(encoder, "last_stats", {}) or {}
    failed = len(refs) - int(mask.sum())
    feats.stats["item.image"] = {"total": n, "with_image": len(refs), "present": int(mask.sum()), "failed": failed}
    feats.stats["item.image"].update({k: v for k, v in dict(stats).items() if k != "failed"})


def _linked_labels(kg: KnowledgeGraph, src_type: str, keep) -> dict[int, list[tuple[str, str]]]:
    """``src index -> [(relation, label of the target)]`` over relations ``keep(relation)``, labelled targets only."""
    out: dict[int, list[tuple[str, str]]] = {}
    labels: dict[tuple[str, int], str | None] = {}
    for s_t, rel, d_t in kg.edge_types():
        if s_t != src_type or not keep(rel):
            continue
        src, dst = kg.triples((s_t, rel, d_t))
        for s, d in zip(src.tolist(), dst.tolist(), strict=True):
            if (d_t, d) not in labels:
                labels[(d_t, d)] = node_label(kg, d_t, d)
            label = labels[(d_t, d)]
            if label is not None and (rel, label) not in out.setdefault(s, []):
                out[s].append((rel, label))
    return out

