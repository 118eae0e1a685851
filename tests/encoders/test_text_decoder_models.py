"""TextEncoder on decoder-only LLMs by path (tiny random GPT-2 and Llama saved with their causal LM heads):
mean pooling by hand, the same vector alone and in a padded batch, a pad token from the end-of-sequence
token, and a cache namespace per model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from encoders.cache import EmbeddingCache
from encoders.registry import create_encoder
from encoders.text import TextEncoder

SHORT, LONG = "a dog", "the cat sits on the mat and the kitten sits on the rug"


@pytest.fixture(scope="module", params=["tiny_gpt2", "tiny_llama"])
def decoder(request: pytest.FixtureRequest) -> TextEncoder:
    return TextEncoder(str(request.getfixturevalue(request.param)), batch_size=8, show_progress=False)


def test_loads_the_base_model_and_pads_with_eos_on_the_right(decoder: TextEncoder) -> None:
    assert type(decoder.model).__name__ in ("GPT2Model", "LlamaModel")  # AutoModel: no LM head
    assert decoder.tokenizer.pad_token == "</s>" and decoder.tokenizer.padding_side == "right"
    assert decoder.dim == 32


def test_mean_pool_matches_hand_computation(decoder: TextEncoder) -> None:
    tok = decoder.tokenizer([LONG], return_tensors="pt")
    with torch.no_grad():
        hidden = decoder.model(**tok).last_hidden_state[0]
    mean = hidden.mean(0)
    torch.testing.assert_close(decoder([LONG])[0], mean / mean.norm())


def test_same_vector_alone_and_in_a_padded_batch(decoder: TextEncoder) -> None:
    batch = decoder.tokenizer([SHORT, LONG], padding=True, return_tensors="pt")
    assert batch["attention_mask"][0].tolist()[-1] == 0  # the short text really is padded (on the right)
    alone = torch.cat([decoder([SHORT]), decoder([LONG])])
    torch.testing.assert_close(decoder([SHORT, LONG]), alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(decoder([LONG, SHORT, SHORT]), alone[[1, 0, 0]], atol=1e-5, rtol=0)


def test_cache_keys_differ_per_model(tiny_bert: Path, tiny_gpt2: Path, tiny_llama: Path, tmp_path: Path) -> None:
    encoders = [create_encoder("text", model=str(p), cache_dir=tmp_path, show_progress=False)
                for p in (tiny_bert, tiny_gpt2, tiny_llama)]
    identities = [e.identity for e in encoders]
    assert len(set(identities)) == 3
    assert len({EmbeddingCache(tmp_path, i).root for i in identities}) == 3
    first = [e([SHORT])[0] for e in encoders]
    again = [e([SHORT]) for e in encoders]  # served from each model's own cache
    assert [e.last_stats["cached"] for e in encoders] == [1, 1, 1]
    for a, (b, _) in zip(first, again, strict=True):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(first[1], first[2])


def test_tokenizer_without_pad_eos_or_unk_is_an_error() -> None:
    from encoders.text import prepare_tokenizer
    from kg.errors import MMKGError

    class Bare:
        pad_token = eos_token = unk_token = None

    with pytest.raises(MMKGError, match="my-llm.*no pad"):
        prepare_tokenizer(Bare(), "my-llm")
