"""Fixtures for the encoder tests: tiny random-config models saved to tmp folders
(loaded back through the same code path as real ones) and a small KG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kg.model.graph import KnowledgeGraph

VOCAB = (
    "[PAD] [UNK] [CLS] [SEP] [MASK] . , ' a the of is on in and to cat dog sits mat rug kitten stock market fell "
    "today film toy story bug life heat animation comedy crime children boy toys come alive thief detective "
    "age gender male female occupation technician writer 25 34 18 24 - w1 w2 w3 w4 w5 w6 w7 w8 w9 w10"
).split()


def save_tiny_bert(directory: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-d random BERT + WordPiece tokenizer over :data:`VOCAB`, saved to ``directory``."""
    from transformers import BertConfig, BertModel, BertTokenizer

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )
    BertModel(config).eval().save_pretrained(directory)
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)}, model_max_length=64)
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_causal_lm(directory: Path, kind: str, seed: int = 0) -> Path:
    """A 2-layer, 32-d random decoder-only LM (``kind`` ``"gpt2"`` or ``"llama"``) saved with its causal LM
    head, and a word-level fast tokenizer over :data:`VOCAB` that has an end-of-sequence but no pad token."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate([*VOCAB, "</s>"])}
    torch.manual_seed(seed)
    if kind == "gpt2":
        config = GPT2Config(vocab_size=len(vocab), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                            eos_token_id=vocab["</s>"], bos_token_id=vocab["</s>"])
        model = GPT2LMHeadModel(config)
    else:
        config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                             eos_token_id=vocab["</s>"], bos_token_id=vocab["</s>"], pad_token_id=None)
        model = LlamaForCausalLM(config)
    model.eval().save_pretrained(directory)
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="[UNK]",
                            model_max_length=64).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_wav2vec2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer, 16-d random Wav2Vec2 (layer-norm feature encoder, so padding is masked) at 16 kHz."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    directory = tmp_path_factory.mktemp("tiny-wav2vec2")
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2, feat_extract_norm="layer", do_stable_layer_norm=True, vocab_size=8,
    )
    Wav2Vec2Model(config).eval().save_pretrained(directory)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    ).save_pretrained(directory)
    return directory


ML = "http://example.org/"
FB = "http://rdf.freebase.com/ns/"


def build_small_kg(image_dir: Path) -> KnowledgeGraph:
    """Three films, two genres, one Freebase director (unnamed), one isolated unnamed entity,
    two users with profiles; film 1 has a poster, film 2 a missing poster file, film 3 none."""
    from PIL import Image

    kg = KnowledgeGraph()
    for i, (title, genres, summary) in enumerate(
        [
            ("Toy Story", ["Animation", "Comedy"], "Toys come alive."),
            ("A Bug's Life", ["Animation"], ""),
            ("Heat", ["Crime"], "A thief and a detective."),
        ],
        start=1,
    ):
        item = f"{ML}item/{i}"
        kg.add_text("item", item, "name", title)
        if summary:
            kg.add_text("item", item, "description", summary)
        for g in genres:
            kg.add_triple("item", item, "genre", "entity", f"{ML}genre/{g}")
            kg.add_text("entity", f"{ML}genre/{g}", "label", g)
    kg.add_triple("item", f"{ML}item/1", f"{FB}film.film.directed_by", "entity", f"{FB}m.0lasseter")
    kg.add_triple("item", f"{ML}item/2", f"{FB}film.film.directed_by", "entity", f"{FB}m.0lasseter")
    kg.add_node("entity", f"{FB}m.0isolated")
    for uid, age, gender, occ in (("u1", "age 25-34", "male", "technician"), ("u2", None, "female", "writer")):
        user = f"{ML}user/{uid}"
        if age:
            kg.add_triple("user", user, "ageGroup", "entity", f"{ML}age/{age}")
            kg.add_text("entity", f"{ML}age/{age}", "label", age)
        kg.add_triple("user", user, "gender", "entity", f"{ML}gender/{gender}")
        kg.add_text("entity", f"{ML}gender/{gender}", "label", gender)
        kg.add_triple("user", user, "occupation", "entity", f"{ML}occupation/{occ}")
        kg.add_text("entity", f"{ML}occupation/{occ}", "label", occ)
    kg.add_node("user", f"{ML}user/u3")  # no profile
    kg.add_interaction(f"{ML}user/u1", f"{ML}item/1", 5.0, 1.0)
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(image_dir / "1.png")
    kg.set_image("item", f"{ML}item/1", (image_dir / "1.png").as_uri())
    kg.set_image("item", f"{ML}item/2", str(image_dir / "missing.png"))
    return kg


@pytest.fixture
def small_kg_dir(tmp_path: Path) -> Path:
    kg = build_small_kg(tmp_path / "images")
    kg.save(tmp_path / "kg")
    return tmp_path / "kg"


class FakeClipImage:
    """Stands in for the CLIP image tower: 4-d vectors from the image's mean colour; counts calls."""

    identity = "fake-clip-image"
    dim = 4

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, paths: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        self.calls.append(list(paths))
        rows = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32).mean(axis=(0, 1)) for p in paths]
        emb = torch.tensor(np.stack([np.append(r, 1.0) for r in rows]), dtype=torch.float32)
        return emb, torch.ones(len(paths), dtype=torch.bool)


class FakeClipText:
    """Stands in for the CLIP text tower: 2-d vectors ``[len(text), words]``, tensor only."""

    identity = "fake-clip-text"
    dim = 2

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> torch.Tensor:
        self.calls.append(list(texts))
        return torch.tensor([[float(len(t)), float(len(t.split()))] for t in texts])


@pytest.fixture
def fake_clip_image() -> FakeClipImage:
    return FakeClipImage()


@pytest.fixture
def fake_clip_text() -> FakeClipText:
    return FakeClipText()


@pytest.fixture(scope="session")
def tiny_catalog_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised ``tiny`` catalog CLIP checkpoint (the format ``pretrain-clip`` writes)."""
    import open_clip

    from encoders.clip import register_model_config
    from encoders.clip_configs import model_config
    from encoders.clip_pretrain import save_checkpoint

    torch.manual_seed(0)
    cfg = model_config("tiny")
    model = open_clip.create_model(register_model_config(cfg))
    return save_checkpoint(tmp_path_factory.mktemp("clip") / "catalog_clip.pt", model, cfg, {})
