from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from encoders.audio import AudioEncoder, AudioFormatError, read_wav, resample
from encoders.registry import MODALITIES, create_encoder
from kg.errors import MMKGError


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def encoder(tiny_wav2vec2: Path) -> AudioEncoder:
    return AudioEncoder(str(tiny_wav2vec2), batch_size=4, show_progress=False)


def clips(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (4000, 1600, 8000)]


def test_read_wav_int16_stereo(tmp_path: Path) -> None:
    frames = np.array([[16384, 0], [-32768, -16384], [0, 32767]])
    data, rate = read_wav(write_wav(tmp_path / "s.wav", frames.reshape(-1), 8000, channels=2))
    assert rate == 8000
    np.testing.assert_allclose(data, [0.25, -0.75, 32767 / 65536], rtol=0, atol=1e-7)


def test_resample_linear() -> None:
    up = resample(np.array([0.0, 1.0, 2.0, 3.0], np.float32), 2, 4)
    np.testing.assert_allclose(up, [0, 0.5, 1, 1.5, 2, 2.5, 3, 3])
    x = np.arange(5, dtype=np.float32)
    assert resample(x, 16000, 16000) is x


def test_waveforms_are_mean_pooled_and_batch_invariant(encoder: AudioEncoder) -> None:
    waves = clips()
    emb, mask = encoder(waves)
    assert emb.shape == (3, 16) and emb.dtype == torch.float32 and mask.all()
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    singles = torch.cat([encoder([w])[0] for w in waves])
    torch.testing.assert_close(emb, singles, atol=1e-5, rtol=0)
    # hand-computed: mean of the last hidden states of the unpadded clip, normalised
    feats = encoder.extractor(waves[1], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.model(feats["input_values"]).last_hidden_state[0]
    torch.testing.assert_close(emb[1], hidden.mean(0) / hidden.mean(0).norm(), atol=1e-5, rtol=0)


def test_inputs_as_tensor_pair_and_wav_path(encoder: AudioEncoder, tmp_path: Path) -> None:
    wave16k = clips()[0]
    ref = encoder([wave16k])[0][0]
    torch.testing.assert_close(encoder([torch.from_numpy(wave16k)])[0][0], ref)
    torch.testing.assert_close(encoder([(wave16k, 16000)])[0][0], ref)
    ints = np.round(wave16k * 32767).astype(np.int16)
    path = write_wav(tmp_path / "a.wav", ints, 16000)
    torch.testing.assert_close(encoder([str(path)])[0][0], encoder([ints / 32768.0])[0][0], atol=1e-5, rtol=0)
    # an 8 kHz clip is resampled to 16 kHz before encoding
    low = wave16k[::2].copy()
    torch.testing.assert_close(encoder([(low, 8000)])[0][0], encoder([resample(low, 8000, 16000)])[0][0])


def test_missing_or_bad_clips_are_masked(encoder: AudioEncoder, tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"not a wav")
    emb, mask = encoder([clips()[0], str(tmp_path / "missing.wav"), str(tmp_path / "bad.wav"), np.zeros(0)])
    assert mask.tolist() == [True, False, False, False]
    assert torch.all(emb[1:] == 0) and encoder.last_stats["failed"] == 3
    with pytest.raises(AudioFormatError, match="bad.wav"):
        read_wav(tmp_path / "bad.wav")


def test_cache_serves_rerun(tiny_wav2vec2: Path, tmp_path: Path) -> None:
    first = AudioEncoder(str(tiny_wav2vec2), cache_dir=tmp_path, show_progress=False)
    emb = first(clips())[0]
    second = AudioEncoder(str(tiny_wav2vec2), cache_dir=tmp_path, show_progress=False)
    calls: list[int] = []
    second.model.register_forward_hook(lambda m, a, o: calls.append(1))
    torch.testing.assert_close(second(clips())[0], emb, atol=0, rtol=0)
    assert calls == [] and second.last_stats == {"encoded": 0, "cached": 3, "failed": 0}


def test_registry_audio_and_text(tiny_wav2vec2: Path, tiny_bert: Path) -> None:
    assert set(MODALITIES) == {"text", "image", "clip_text", "audio"}
    audio = create_encoder("audio", model=str(tiny_wav2vec2), show_progress=False)
    emb, mask = audio([clips()[0]])
    assert emb.shape == (1, 16) and mask.tolist() == [True] and audio.identity.startswith("audio:")
    text = create_encoder("text", model=str(tiny_bert), show_progress=False)
    emb, mask = text(["a dog", ""])
    assert emb.shape == (2, 32) and mask.tolist() == [True, False] and text.dim == 32
    assert text.last_stats["empty"] == 1
    with pytest.raises(MMKGError, match="unknown modality 'video'"):
        create_encoder("video")
    with pytest.raises(MMKGError, match="not-a-model"):
        create_encoder("audio", model=str(tiny_wav2vec2.parent / "not-a-model"))
