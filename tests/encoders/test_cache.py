from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from encoders.cache import CacheWarning, EmbeddingCache, cached_encode, content_key
from encoders.text import TextEncoder
from kg.errors import MMKGError

TEXTS = ["the cat sits on the mat", "a dog", "stock market fell today", "a dog"]


def count_forward_rows(encoder: TextEncoder) -> list[int]:
    """Rows seen by each forward call of the encoder's model."""
    rows: list[int] = []
    encoder.model.register_forward_hook(lambda module, args, kwargs, out: rows.append(kwargs["input_ids"].shape[0]),
                                        with_kwargs=True)
    return rows


def test_content_key_is_sha256() -> None:
    assert content_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert content_key(b"abc") == content_key("abc")


def test_put_then_get_round_trip(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "enc-a")
    cache.put_many(["k1", "k2"], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    cache.put_many(["k3"], torch.tensor([[5.0, 6.0]]))
    found = EmbeddingCache(tmp_path, "enc-a").get_many(["k3", "k1", "zz"])
    assert set(found) == {"k1", "k3"}
    assert found["k1"].tolist() == [1.0, 2.0] and found["k3"].tolist() == [5.0, 6.0]
    assert len(cache) == 3
    assert EmbeddingCache(tmp_path, "enc-b").get_many(["k1"]) == {}  # another encoder identity
    with pytest.raises(MMKGError, match="3-d"):
        cache.put_many(["k4"], torch.zeros(1, 3))
    assert not list(cache.root.glob(".*.safetensors*")), "temporary files left behind"


def test_cached_encode_dedupes_and_counts(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "enc")
    calls: list[list[int]] = []

    def encode(pos: list[int]) -> torch.Tensor:
        calls.append(pos)
        return torch.tensor([[float(p)] for p in pos])

    found, stats = cached_encode(cache, ["a", "b", "a", "c"], encode, flush_every=2)
    assert calls == [[0, 1], [3]] and stats == {"encoded": 3, "cached": 0}
    assert {k: v.item() for k, v in found.items()} == {"a": 0.0, "b": 1.0, "c": 3.0}
    found, stats = cached_encode(cache, ["c", "d"], encode)
    assert calls[-1] == [1] and stats == {"encoded": 1, "cached": 1} and found["c"].item() == 3.0


def test_second_run_is_served_from_cache(tiny_bert: Path, tmp_path: Path) -> None:
    first = TextEncoder(str(tiny_bert), cache_dir=tmp_path, show_progress=False)
    rows = count_forward_rows(first)
    emb1 = first(TEXTS)
    assert sum(rows) == 3 and first.last_stats == {"encoded": 3, "cached": 0, "empty": 0}  # "a dog" once
    second = TextEncoder(str(tiny_bert), cache_dir=tmp_path, show_progress=False)
    rows2 = count_forward_rows(second)
    emb2 = second(TEXTS)
    assert rows2 == [] and second.last_stats["cached"] == 3
    torch.testing.assert_close(emb2, emb1, atol=0, rtol=0)
    # a changed text is recomputed, the others still come from the cache
    changed = TEXTS[:2] + ["stock market fell"]
    emb3 = second(changed)
    assert rows2 == [1] and second.last_stats == {"encoded": 1, "cached": 2, "empty": 0}
    torch.testing.assert_close(emb3[:2], emb1[:2], atol=0, rtol=0)
    torch.testing.assert_close(emb3[2], TextEncoder(str(tiny_bert), show_progress=False)(["stock market fell"])[0])


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corrupt_shard_is_detected_and_recomputed(tiny_bert: Path, tmp_path: Path, damage: str) -> None:
    enc = TextEncoder(str(tiny_bert), cache_dir=tmp_path, show_progress=False)
    expected = enc(TEXTS)
    (shard,) = enc.cache.root.glob("shard-*.safetensors")
    data = shard.read_bytes()
    if damage == "truncate":
        shard.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        shard.write_bytes(data[:-4] + bytes(b ^ 0xFF for b in data[-4:]))
    else:
        shard.unlink()
    fresh = TextEncoder(str(tiny_bert), cache_dir=tmp_path, show_progress=False)
    rows = count_forward_rows(fresh)
    with pytest.warns(CacheWarning, match=shard.name):
        got = fresh(TEXTS)
    assert sum(rows) == 3 and fresh.last_stats["cached"] == 0
    torch.testing.assert_close(got, expected)
    index = json.loads((enc.cache.root / "index.json").read_text())
    assert shard.name not in index["shards"] and len(index["shards"]) == 1
    assert TextEncoder(str(tiny_bert), cache_dir=tmp_path, show_progress=False)(TEXTS) is not None


def test_shard_with_wrong_shape_or_dtype_is_not_used(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "enc")
    cache.put_many(["a", "b"], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    index_path = cache.root / "index.json"
    index = json.loads(index_path.read_text())
    (name,) = index["shards"]
    for bad in (torch.zeros(2, 3), torch.zeros(2, 2, dtype=torch.float64), torch.tensor([[1.0, float("nan")]] * 2)):
        save_file({"embeddings": bad}, cache.root / name)
        index["shards"][name]["sha256"] = hashlib.sha256((cache.root / name).read_bytes()).hexdigest()
        index_path.write_text(json.dumps(index))
        with pytest.warns(CacheWarning, match="expected float32 \\(2, 2\\)"):
            assert EmbeddingCache(tmp_path, "enc").get_many(["a", "b"]) == {}


def test_corrupt_index_starts_empty_without_overwriting_shards(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "enc")
    cache.put_many(["a"], torch.ones(1, 2))
    (cache.root / "index.json").write_text("{not json")
    fresh = EmbeddingCache(tmp_path, "enc")
    with pytest.warns(CacheWarning, match="index.json"):
        assert fresh.get_many(["a"]) == {}
    with pytest.warns(CacheWarning):
        fresh.put_many(["b"], torch.zeros(1, 2))
    shards = sorted(p.name for p in cache.root.glob("shard-*"))
    assert shards == ["shard-000001.safetensors", "shard-000002.safetensors"]
    assert EmbeddingCache(tmp_path, "enc").get_many(["b"])["b"].tolist() == [0.0, 0.0]
