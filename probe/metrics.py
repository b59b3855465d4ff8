"""The numbers every module reports: embedding closeness and pixel change, per sample."""
import math

import torch

from probe.errors import ProbeError

Tensor = torch.Tensor


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).float()


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of each row of a with the same row of b, shape (N,)."""
    return torch.nn.functional.cosine_similarity(_flat(a), _flat(b), dim=1, eps=1e-12)


def l2(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distance per sample, shape (N,)."""
    return (_flat(a) - _flat(b)).norm(dim=1)


def linf(a: Tensor, b: Tensor) -> Tensor:
    """Largest absolute element difference per sample, shape (N,)."""
    return (_flat(a) - _flat(b)).abs().amax(dim=1)


def psnr(a: Tensor, b: Tensor, peak: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per sample for images in [0, peak]; inf for identical images."""
    mse = (_flat(a) - _flat(b)).pow(2).mean(dim=1)
    return 10.0 * torch.log10(peak**2 / mse)


def pixel_change(x: Tensor, x0: Tensor) -> dict[str, Tensor]:
    """How far pixels x moved from x0 ([0,1] images, same size): L-inf, L2, mean-abs, PSNR."""
    delta = _flat(x) - _flat(x0)          # one difference for all four (was four)
    size = delta.abs()
    squared = delta.pow(2).sum(dim=1)
    return {
        "linf_pixel": size.amax(dim=1),
        "l2_pixel": squared.sqrt(),
        "mean_abs_pixel": size.mean(dim=1),
        "psnr_db": 10.0 * torch.log10(delta.shape[1] / squared),
    }


ROUNDING_RMS = 0.5 / 255  # rounding to 8 bits moves a pixel by at most half a level


def psnr_to_rms(psnr_db: float) -> float:
    """The RMS budget ([0,1] units) whose result, once rounded to 8 bits, stays at or just above `psnr_db`.

    Rounding is nearly independent of the change, so its error adds in quadrature; taking its largest value
    leaves a margin of a few hundredths of a dB. The PSNR reported is always the one measured."""
    total = 10 ** (-psnr_db / 20)
    if total <= ROUNDING_RMS:
        raise ProbeError(f"a PSNR of {psnr_db} dB is finer than 8-bit rounding allows")
    return math.sqrt(total**2 - ROUNDING_RMS**2)
