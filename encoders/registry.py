"""Modality -> encoder factory, all behind one interface.

Every encoder made here is a callable on a list of inputs returning
``(embeddings [N, D] float32 CPU, mask [N] bool)`` (``mask[i]`` False where input
``i`` is empty, missing or unreadable, its row then zeros), with an ``identity``
string (what the cache and ``features.json`` record) and a ``dim``.

- ``text``: texts -> :class:`~encoders.text.TextEncoder` (its arguments);
- ``image``: image paths -> the CLIP image tower (``model_name`` + ``pretrained``, or a
  loaded ``bundle``, plus ``ClipImageEncoder``'s arguments);
- ``clip_text``: texts -> the CLIP text tower (same arguments, ``ClipTextEncoder``'s);
- ``audio``: waveforms / ``.wav`` paths -> :class:`~encoders.audio.AudioEncoder` (its arguments).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from kg.errors import MMKGError


class ModalityEncoder(Protocol):
    identity: str
    dim: int

    def __call__(self, inputs: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]: ...


class MaskedEncoder:
    """Adapts an encoder object to the registry interface.

    ``call`` (default: ``encoder`` itself) maps inputs to a tensor ``[N, D]`` or
    ``(tensor, mask)``; with ``skip_empty`` (for text), empty strings are not passed
    to it and get mask False. ``identity``, ``dim`` and ``last_stats`` come from ``encoder``.
    """

    def __init__(self, encoder: Any, call: Callable | None = None, skip_empty: bool = False) -> None:
        self.encoder = encoder
        self.call = call or encoder
        self.identity = encoder_identity(encoder)
        self.skip_empty = skip_empty
        self.dim = int(getattr(encoder, "dim", 0) or 0)

    def __call__(self, inputs: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = list(inputs)
        keep = [i for i, x in enumerate(inputs) if not self.skip_empty or (isinstance(x, str) and x.strip())]
        if len(keep) == len(inputs):
            emb, mask = as_pair(self.call(inputs), len(inputs))
        else:
            emb = torch.zeros(len(inputs), self.dim)
            mask = torch.zeros(len(inputs), dtype=torch.bool)
            if keep:
                sub, sub_mask = as_pair(self.call([inputs[i] for i in keep]), len(keep))
                emb = torch.zeros(len(inputs), sub.shape[1])
                emb[keep], mask[keep] = sub, sub_mask
        self.dim = int(emb.shape[1]) or self.dim
        return emb, mask

    @property
    def last_stats(self) -> dict[str, int]:
        return dict(getattr(self.encoder, "last_stats", {}) or {})


def as_pair(result: torch.Tensor | tuple, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(float32 CPU [n, D], bool [n])`` from an encoder's tensor or ``(tensor, mask)`` result."""
    emb, mask = result if isinstance(result, tuple) else (result, None)
    emb = emb.detach().to("cpu", torch.float32)
    if emb.dim() != 2 or emb.shape[0] != n:
        raise MMKGError(f"encoder returned a tensor of shape {tuple(emb.shape)}, expected [{n}, D]")
    mask = torch.ones(n, dtype=torch.bool) if mask is None else torch.as_tensor(mask, dtype=torch.bool).cpu()
    return emb, mask


def encoder_identity(encoder: object) -> str:
    """The encoder's ``identity`` (attribute or property), else its class and model name."""
    ident = getattr(encoder, "identity", None)
    if isinstance(ident, str) and ident:
        return ident
    name = getattr(encoder, "name", None) or getattr(getattr(encoder, "bundle", None), "model_name", None)
    return f"{type(encoder).__name__}:{name or '?'}"


def _text(**kwargs: Any) -> MaskedEncoder:
    from encoders.text import TextEncoder

    enc = TextEncoder(**kwargs)
    return MaskedEncoder(enc, call=enc.encode)


def _clip_bundle(model_name: str | None, pretrained: str | None, bundle: Any) -> Any:
    if bundle is not None:
        return bundle
    if model_name is None:
        raise MMKGError("a CLIP encoder needs model_name (and pretrained) or a loaded bundle")
    from encoders.clip import load_clip

    return load_clip(model_name, pretrained)


def _image(model_name: str | None = None, pretrained: str | None = None, bundle: Any = None, **kwargs: Any):
    from encoders.clip import ClipImageEncoder

    return MaskedEncoder(ClipImageEncoder(_clip_bundle(model_name, pretrained, bundle), **kwargs))


def _clip_text(model_name: str | None = None, pretrained: str | None = None, bundle: Any = None, **kwargs: Any):
    from encoders.clip import ClipTextEncoder

    return MaskedEncoder(ClipTextEncoder(_clip_bundle(model_name, pretrained, bundle), **kwargs), skip_empty=True)


def _audio(**kwargs: Any) -> MaskedEncoder:
    from encoders.audio import AudioEncoder

    return MaskedEncoder(AudioEncoder(**kwargs))


MODALITIES: dict[str, Callable[..., ModalityEncoder]] = {
    "text": _text,
    "image": _image,
    "clip_text": _clip_text,
    "audio": _audio,
}


def create_encoder(modality: str, **kwargs: Any) -> ModalityEncoder:
    """An encoder for ``modality`` (one of :data:`MODALITIES`), built with ``kwargs``."""
    try:
        factory = MODALITIES[modality]
    except KeyError:
        raise MMKGError(f"unknown modality {modality!r} (expected one of {', '.join(MODALITIES)})") from None
    return factory(**kwargs)
