"""The audio slot: clips of sound -> one vector each, through a Hugging Face audio
encoder (wav2vec 2.0, HuBERT, WavLM, ... : ``transformers.AutoModel`` +
``AutoFeatureExtractor``) given by a local folder or a hub id.

No audio weights ship with this project, and no dataset here has sound: the slot
exists so a catalogue with audio (music, podcasts) plugs into the same feature
pipeline. Point :class:`AudioEncoder` at a model folder you have, e.g. one saved
with ``Wav2Vec2Model.from_pretrained("facebook/wav2vec2-base").save_pretrained(dir)``.

A clip is a 1-D waveform (numpy array or tensor, taken at the feature extractor's
sampling rate), a ``(waveform, sampling_rate)`` pair, or the path of a PCM ``.wav``
file (read with the stdlib :mod:`wave` module; channels are averaged; other rates
are resampled linearly). The embedding is the mean of the last hidden states over
the clip's valid frames, L2-normalised.
"""

from __future__ import annotations

import logging
import os
import wave
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from encoders.cache import EmbeddingCache, cached_encode, content_key, file_key
from encoders.text import load_pretrained, mean_pool, model_display_name, resolve_model_source, weights_fingerprint
from kg.errors import MMKGError

log = logging.getLogger(__name__)
AudioInput = str | os.PathLike | np.ndarray | torch.Tensor | tuple


class AudioFormatError(MMKGError):
    """A ``.wav`` file is missing, unreadable or not PCM."""


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """``(mono float32 waveform in [-1, 1], sampling rate)`` of a PCM ``.wav`` file."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as e:
        raise AudioFormatError(f"{path}: not a readable PCM .wav file ({e})") from e
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width in (2, 4):
        dt = np.int16 if width == 2 else np.int32
        data = np.frombuffer(raw, dt).astype(np.float32) / float(np.iinfo(dt).max + 1)
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        data = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8).astype(np.float32) / 8388608.0
    else:
        raise AudioFormatError(f"{path}: unsupported sample width {width} bytes")
    return data.reshape(-1, channels).mean(axis=1), rate


def resample(wave_: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear-interpolation resampling of a 1-D waveform from ``rate`` to ``target`` Hz."""
    if rate == target or wave_.size == 0:
        return wave_
    n = max(1, round(wave_.size * target / rate))
    return np.interp(np.arange(n) * (rate / target), np.arange(wave_.size), wave_).astype(np.float32)


class AudioEncoder:
    """Encode sound clips with a Hugging Face audio model.

    Args:
        model: a local model folder or a hub id (required: none ships here).
        device: where the model runs (default: CUDA when available, else CPU).
        dtype: model dtype (default: bfloat16 on CUDA, float32 on CPU).
        batch_size: clips per forward pass (sorted by length).
        max_seconds: clips are cut to their first ``max_seconds``.
        cache_dir: an :class:`~encoders.cache.EmbeddingCache` root; ``None`` for no cache.
        show_progress: show a tqdm bar over batches.

    Calling the encoder on ``N`` clips returns ``(embeddings [N, D], mask [N])``,
    CPU float32 / bool; a missing or unreadable file gives a zero row, mask ``False``
    and a logged warning (counted in ``last_stats["failed"]``).
    """

    def __init__(
        self,
        model: str | os.PathLike,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        batch_size: int = 8,
        max_seconds: float = 30.0,
        cache_dir: str | os.PathLike | None = None,
        show_progress: bool = True,
    ) -> None:
        from transformers import AutoFeatureExtractor, AutoModel

        source, is_local = resolve_model_source(model, "audio model")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        self.extractor = load_pretrained(AutoFeatureExtractor, source, is_local, "audio model")
        net = load_pretrained(AutoModel, source, is_local, "audio model")
        if not hasattr(net, "_get_feat_extract_output_lengths"):
            raise MMKGError(f"audio model {source!r}: {type(net).__name__} is not a wav2vec2-style audio encoder")
        self.fingerprint = weights_fingerprint(source, is_local, net)
        self.model = net.to(self.device, self.dtype).eval()
        self.sampling_rate = int(self.extractor.sampling_rate)
        self.max_samples = int(max_seconds * self.sampling_rate)
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.name = model_display_name(source, is_local)
        self.dim = int(net.config.hidden_size)
        self.cache = EmbeddingCache(cache_dir, self.identity) if cache_dir is not None else None
        self.last_stats: dict[str, int] = {"encoded": 0, "cached": 0, "failed": 0}

    @property
    def identity(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        return (
            f"audio:{self.name}|weights:{self.fingerprint}|pool:mean|norm:l2|sr:{self.sampling_rate}"
            f"|max_samples:{self.max_samples}|{dtype}"
        )

    def __call__(self, clips: list[AudioInput]) -> tuple[torch.Tensor, torch.Tensor]:
        waves: dict[int, np.ndarray] = {}
        keys: dict[int, str] = {}
        for i, clip in enumerate(clips):
            try:
                keys[i], waves[i] = self._prepare(clip)
            except AudioFormatError as e:
                log.warning("audio clip %d skipped: %s", i, e)
        present = sorted(keys)
        mask = torch.zeros(len(clips), dtype=torch.bool)
        mask[present] = True
        found, stats = cached_encode(
            self.cache, [keys[i] for i in present], lambda pos: self._encode_uncached([waves[present[p]] for p in pos])
        )
        out = torch.zeros(len(clips), self.dim)
        for i in present:
            out[i] = found[keys[i]]
        self.last_stats = stats | {"failed": len(clips) - len(present)}
        return out, mask

    def _prepare(self, clip: AudioInput) -> tuple[str, np.ndarray]:
        if isinstance(clip, (str, os.PathLike)):
            if not Path(clip).is_file():
                raise AudioFormatError(f"{clip}: no such file")
            key = file_key(clip)
            data, rate = read_wav(clip)
        else:
            data, rate = clip if isinstance(clip, tuple) else (clip, self.sampling_rate)
            data = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
            data = np.ascontiguousarray(data, dtype=np.float32)
            if data.ndim != 1:
                raise AudioFormatError(f"expected a 1-D waveform, got shape {data.shape}")
            key = content_key(data.tobytes() + str(int(rate)).encode())
        data = resample(data, int(rate), self.sampling_rate)[: self.max_samples]
        if data.size == 0:
            raise AudioFormatError("empty clip")
        return key, data

    @torch.inference_mode()
    def _encode_uncached(self, waves: list[np.ndarray]) -> torch.Tensor:
        order = sorted(range(len(waves)), key=lambda i: -waves[i].size)
        out = torch.empty(len(waves), self.dim)
        starts = range(0, len(waves), self.batch_size)
        for start in tqdm(starts, desc=f"audio [{self.name}]", unit="batch", disable=not self.show_progress):
            idx = order[start : start + self.batch_size]
            feats = self.extractor(
                [waves[i] for i in idx], sampling_rate=self.sampling_rate, padding=True, return_tensors="pt"
            )
            values = feats["input_values"].to(self.device, self.dtype)
            kwargs = {}
            if "attention_mask" in feats:
                kwargs["attention_mask"] = feats["attention_mask"].to(self.device)
            hidden = self.model(values, **kwargs).last_hidden_state
            lengths = self.model._get_feat_extract_output_lengths(torch.tensor([waves[i].size for i in idx]))
            frames = torch.arange(hidden.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
            out[idx] = mean_pool(hidden, frames.to(hidden.device)).cpu()
        return out
