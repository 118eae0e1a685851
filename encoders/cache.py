"""An on-disk cache of embeddings, so a rerun encodes only new or changed content.

Entries are keyed by ``(encoder identity, sha256 of the input's content)``: the
content key of a text is the sha256 of its UTF-8 bytes, of an image or audio file
the sha256 of the file's bytes (see :func:`content_key`). One cache directory
holds one sub-directory per encoder identity::

    <directory>/<sha256(identity)[:16]>/index.json
    <directory>/<sha256(identity)[:16]>/shard-<n>.safetensors

Each :meth:`EmbeddingCache.put_many` writes one shard (a float32 ``[n, D]`` tensor
``"embeddings"``) to a temporary file and renames it into place, then rewrites
``index.json`` the same way, so a reader never sees a half-written file. The index
records the full identity, the embedding size and, per shard, its keys, row count
and the sha256 of its bytes. A shard whose checksum, shape, dtype or contents do
not match (a truncated or corrupt file, a stray file from another encoder) is
dropped with a warning and its entries reported missing, so the caller recomputes
them; a cached value is never used unchecked.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from kg.atomic_files import write_bytes_atomic
from kg.errors import MMKGError

log = logging.getLogger(__name__)
INDEX_VERSION = 1
_TENSOR = "embeddings"


class CacheWarning(UserWarning):
    """A cache entry was unusable (corrupt or mismatched) and will be recomputed."""


def content_key(content: str | bytes) -> str:
    """The sha256 hex digest of a text (UTF-8) or of raw bytes."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


def file_key(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class EmbeddingCache:
    """Embeddings of one encoder (``encoder_identity``), stored under ``directory``.

    Args:
        directory: the cache root (created when missing).
        encoder_identity: a string that changes whenever the encoder's output would
            (model name, weight hash, pooling, max length, ...).
    """

    def __init__(self, directory: str | os.PathLike, encoder_identity: str) -> None:
        self.identity = encoder_identity
        self.root = Path(directory) / hashlib.sha256(encoder_identity.encode()).hexdigest()[:16]
        self.root.mkdir(parents=True, exist_ok=True)
        self._index_path = self.root / "index.json"
        self._shards: dict[str, torch.Tensor] = {}  # verified shards loaded in this process

    # ------------------------------------------------------------------ reads
    def get_many(self, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        """The cached embeddings ``[D]`` of those ``keys`` that are present and intact."""
        index = self._read_index()
        wanted: dict[str, list[tuple[str, int]]] = {}
        for name, shard in index["shards"].items():
            for row, key in enumerate(shard["keys"]):
                wanted.setdefault(name, []).append((key, row))
        needed = set(keys)
        found: dict[str, torch.Tensor] = {}
        bad: list[str] = []
        for name, entries in wanted.items():
            hits = [(k, r) for k, r in entries if k in needed and k not in found]
            if not hits:
                continue
            tensor = self._load_shard(name, index["shards"][name], index["dim"])
            if tensor is None:
                bad.append(name)
                continue
            for key, row in hits:
                found[key] = tensor[row]
        if bad:
            self._drop_shards(bad)
        return found

    def __len__(self) -> int:
        return sum(len(s["keys"]) for s in self._read_index()["shards"].values())

    # ----------------------------------------------------------------- writes
    def put_many(self, keys: Sequence[str], tensor: torch.Tensor) -> None:
        """Store ``tensor[i]`` (``tensor`` is ``[len(keys), D]``) under ``keys[i]``."""
        if tensor.dim() != 2 or tensor.shape[0] != len(keys):
            raise ValueError(f"put_many: expected a [{len(keys)}, D] tensor, got {tuple(tensor.shape)}")
        if not keys:
            return
        data = tensor.detach().to("cpu", torch.float32).contiguous()
        payload = st_save({_TENSOR: data}, metadata={"identity": self.identity})
        with self._lock():
            index = self._read_index()
            if index["dim"] is None:
                index["dim"] = int(data.shape[1])
            elif index["dim"] != data.shape[1]:
                raise MMKGError(
                    f"{self._index_path}: cached embeddings are {index['dim']}-d, new ones {data.shape[1]}-d "
                    "for the same encoder identity"
                )
            index["counter"] += 1
            name = f"shard-{index['counter']:06d}.safetensors"
            atomic_write(self.root / name, payload)
            index["shards"][name] = {
                "keys": list(keys),
                "rows": int(data.shape[0]),
                "sha256": hashlib.sha256(payload).hexdigest(),
            }
            atomic_write(self._index_path, json.dumps(index).encode())
        self._shards[name] = data

    # -------------------------------------------------------------- internals
    def _empty_index(self) -> dict:
        return {"version": INDEX_VERSION, "identity": self.identity, "dim": None, "counter": 0, "shards": {}}

    def _read_index(self) -> dict:
        if not self._index_path.exists():
            return self._empty_index()
        try:
            index = json.loads(self._index_path.read_bytes())
            ok = (
                index.get("version") == INDEX_VERSION
                and index.get("identity") == self.identity
                and isinstance(index.get("shards"), dict)
                and isinstance(index.get("counter"), int)
            )
        except (OSError, ValueError):
            ok = False
        if not ok:
            self._warn(f"{self._index_path}: unreadable or for another encoder; starting an empty cache")
            return self._empty_index() | {"counter": _max_counter(self.root)}
        return index

    def _load_shard(self, name: str, meta: dict, dim: int | None) -> torch.Tensor | None:
        if name in self._shards:
            return self._shards[name]
        path = self.root / name
        try:
            payload = path.read_bytes()
        except OSError as e:
            self._warn(f"{path}: unreadable ({e}); its {len(meta['keys'])} entries will be recomputed")
            return None
        if hashlib.sha256(payload).hexdigest() != meta.get("sha256"):
            self._warn(f"{path}: checksum mismatch (truncated or corrupt); its entries will be recomputed")
            return None
        try:
            tensor = st_load(payload)[_TENSOR]
        except (SafetensorError, KeyError, ValueError) as e:
            self._warn(f"{path}: not a valid shard ({e}); its entries will be recomputed")
            return None
        expected = (len(meta["keys"]), dim)
        if tensor.dtype != torch.float32 or tuple(tensor.shape) != expected or not torch.isfinite(tensor).all():
            self._warn(
                f"{path}: holds {tensor.dtype} {tuple(tensor.shape)}, expected float32 {expected} finite values; "
                "its entries will be recomputed"
            )
            return None
        self._shards[name] = tensor
        return tensor

    def _drop_shards(self, names: list[str]) -> None:
        with self._lock():
            index = self._read_index()
            for name in names:
                index["shards"].pop(name, None)
                self._shards.pop(name, None)
                (self.root / name).unlink(missing_ok=True)
            atomic_write(self._index_path, json.dumps(index).encode())

    def _warn(self, message: str) -> None:
        warnings.warn(message, CacheWarning, stacklevel=3)
        log.warning(message)

    @contextmanager
    def _lock(self):
        with open(self.root / ".lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def cached_encode(
    cache: EmbeddingCache | None,
    keys: Sequence[str],
    encode: Callable[[list[int]], torch.Tensor],
    flush_every: int = 8192,
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Embeddings for ``keys``: served from ``cache`` where present, else computed.

    ``encode(positions)`` computes the embeddings ``[len(positions), D]`` of the
    inputs at those positions of ``keys``; it is called once per ``flush_every``
    distinct missing keys (each chunk is stored before the next is computed, so an
    interrupted run keeps its progress). Returns ``{key: [D]}`` for every distinct
    key and the counts ``{"encoded": .., "cached": ..}`` of distinct keys.
    """
    first: dict[str, int] = {}
    for pos, key in enumerate(keys):
        first.setdefault(key, pos)
    found = cache.get_many(list(first)) if cache is not None else {}
    missing = [k for k in first if k not in found]
    for start in range(0, len(missing), flush_every):
        chunk = missing[start : start + flush_every]
        emb = encode([first[k] for k in chunk]).to("cpu", torch.float32)
        if cache is not None:
            cache.put_many(chunk, emb)
        found.update(zip(chunk, emb, strict=True))
    return found, {"encoded": len(missing), "cached": len(first) - len(missing)}


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` beside ``path``, fsync it, then rename it over ``path``."""
    write_bytes_atomic(path, data, fsync=True)


def _max_counter(root: Path) -> int:
    nums = [int(p.stem.split("-")[1]) for p in root.glob("shard-*.safetensors") if p.stem.split("-")[1].isdigit()]
    return max(nums, default=0)
