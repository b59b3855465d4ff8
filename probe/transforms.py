"""Random differentiable stand-ins for what the web does to a picture, for matching that survives it
(expectation over transformations, Athalye et al. 2018): each step the loss is taken on a fresh random version
of the picture, so the result carries the target's embedding through JPEG, rescaling and small shifts, not only
as a lossless PNG.

The stand-ins are for optimising only; what a result is reported to survive is always measured through the
real codecs (Pillow's JPEG and resize, `probe.readback`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from probe.errors import ProbeError

Tensor = torch.Tensor
SURVIVE = ("jpeg", "resize", "shift")


@dataclass(frozen=True)
class RandomTransforms:
    """Applies the named transformations in a fixed order (resize, shift, then JPEG, as a picture is reposted:
    rescaled and cropped, then re-encoded), each with fresh random parameters per image and call.

    jpeg: kornia's differentiable JPEG at a quality drawn uniformly from `quality`; resize: down to a scale drawn
    from `scale` and back up (bicubic, antialiased); shift: a translation of up to `shift` of the side (reflected
    border)."""

    names: tuple[str, ...]
    quality: tuple[float, float] = (50.0, 95.0)
    scale: tuple[float, float] = (0.5, 1.0)
    shift: float = 0.03

    def __post_init__(self):
        unknown = [n for n in self.names if n not in SURVIVE]
        if unknown or not self.names:
            raise ProbeError(f"survive must name some of {', '.join(SURVIVE)}, got {list(self.names)}")

    def __call__(self, x: Tensor) -> Tensor:
        if "resize" in self.names:
            x = random_rescale(x, self.scale)
        if "shift" in self.names:
            x = random_shift(x, self.shift)
        if "jpeg" in self.names:
            x = differentiable_jpeg(x, self.quality)
        return x


def random_rescale(x: Tensor, scale: tuple[float, float]) -> Tensor:
    """Down to a random scale and back to the same size; one scale per call (a batch shares its size)."""
    factor = float(torch.empty(()).uniform_(*scale))
    height, width = x.shape[-2:]
    small = (max(1, round(height * factor)), max(1, round(width * factor)))
    if small == (height, width):
        return x
    down = F.interpolate(x, size=small, mode="bicubic", antialias=True, align_corners=False)
    return F.interpolate(down, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)


def random_shift(x: Tensor, fraction: float) -> Tensor:
    """Each image translated by a random whole number of pixels, up to `fraction` of its side, borders reflected."""
    height, width = x.shape[-2:]
    pad_y, pad_x = max(1, round(fraction * height)), max(1, round(fraction * width))
    padded = F.pad(x, (pad_x, pad_x, pad_y, pad_y), mode="reflect")
    dy = torch.randint(0, 2 * pad_y + 1, (len(x),)).tolist()
    dx = torch.randint(0, 2 * pad_x + 1, (len(x),)).tolist()
    return torch.stack([padded[i, :, a:a + height, b:b + width] for i, (a, b) in enumerate(zip(dy, dx))])


def differentiable_jpeg(x: Tensor, quality: tuple[float, float]) -> Tensor:
    """JPEG compression and decompression with gradients (kornia), at a random quality per image."""
    from kornia.enhance import jpeg_codec_differentiable   # kornia loads on first use: it is slow to import

    q = torch.empty(len(x), device=x.device).uniform_(*quality)
    return jpeg_codec_differentiable(x, q)
