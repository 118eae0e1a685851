"""Reading images for CLIP: PIL decoding with a reason for every failure, a uint8
tensor cache of square centre crops, and batched random-resized-crop augmentation.

A failure is never raised to the caller of the encoders: the image is reported as an
:class:`ImageFailure` (path + reason: missing file, not an image, truncated/corrupt
data) and its row is masked.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from kg.errors import MMKGError


class ImageLoadError(MMKGError):
    """One image cannot be read; the message is the reason."""


@dataclass(frozen=True)
class ImageFailure:
    """An image that could not be used, and why."""

    path: str | None
    reason: str


def open_rgb(path: str | os.PathLike | None) -> Image.Image:
    """The fully decoded RGB image at ``path``.

    Raises:
        ImageLoadError: no path, a missing file, a non-image file or corrupt/truncated data
            (the message says which).
    """
    if path is None or str(path) == "":
        raise ImageLoadError("no image")
    if not os.path.exists(path):
        raise ImageLoadError("missing file")
    if not os.path.isfile(path):
        raise ImageLoadError("not a file")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")  # convert() forces the full decode
    except UnidentifiedImageError:
        raise ImageLoadError("not an image (unidentified format)") from None
    except Image.DecompressionBombError as e:
        raise ImageLoadError(f"image too large ({e})") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageLoadError(f"unreadable image ({str(e).strip() or type(e).__name__})") from None


def square_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bicubic) and crop the centre square (open_clip's eval recipe)."""
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return image.crop((left, top, left + size, top + size))


def decode_uint8(
    paths: Sequence[str | None], size: int, show_progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor, list[ImageFailure]]:
    """Decode images once into ``(uint8 [N, 3, size, size], mask [N], failures)``;
    a failed image is a zero tensor with mask False. Identical paths are decoded once."""
    out = torch.zeros(len(paths), 3, size, size, dtype=torch.uint8)
    mask = torch.zeros(len(paths), dtype=torch.bool)
    failures: list[ImageFailure] = []
    first: dict[str | None, int] = {}
    for i, path in enumerate(tqdm(paths, desc=f"decode images @{size}px", unit="img", disable=not show_progress)):
        if path in first and path is not None:
            out[i], mask[i] = out[first[path]], mask[first[path]]
            continue
        first[path] = i
        try:
            image = square_crop(open_rgb(path), size)
        except ImageLoadError as e:
            failures.append(ImageFailure(None if path is None else str(path), str(e)))
            continue
        out[i] = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
        mask[i] = True
    return out, mask, failures


def random_resized_crop(
    images: torch.Tensor,
    size: int,
    scale: tuple[float, float] = (0.5, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A different random crop (area fraction in ``scale``, aspect in ``ratio``), resized to
    ``size`` and optionally mirrored, per image of ``images`` ``[B, 3, H, W]`` (uint8 or float)
    -> float ``[B, 3, size, size]`` in [0, 1]; one batched ``grid_sample``."""
    b = images.shape[0]
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    area = torch.empty(b).uniform_(*scale, generator=generator)
    log_r = torch.empty(b).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = torch.exp(log_r)
    w = torch.sqrt(area * aspect).clamp(max=1.0)  # crop size as a fraction of the side
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - w)  # centre in [-1, 1] keeping the crop inside
    cy = (torch.rand(b, generator=generator) * 2 - 1) * (1 - h)
    sign = torch.ones(b)
    if flip:
        sign = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta.to(x.device), [b, 3, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(images - mean) / std`` per channel of a float ``[B, 3, H, W]`` batch in [0, 1]."""
    m = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - m) / s
