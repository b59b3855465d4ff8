"""The per-sample numbers every module reports (cosine, L2, L-inf, PSNR), against NumPy in float64, one row per
sample of a batch whose samples differ."""
import math

import numpy as np
import pytest
import torch

from probe import metrics

A = torch.rand(3, 2, 4, 5, generator=torch.Generator().manual_seed(0))
B = torch.rand(3, 2, 4, 5, generator=torch.Generator().manual_seed(1)) * torch.tensor([0.2, 1.0, 3.0]).view(3, 1, 1, 1)


def rows(x: torch.Tensor) -> np.ndarray:
    return x.reshape(len(x), -1).double().numpy()


def test_cosine_l2_and_linf_per_sample():
    """Each sample's cosine, Euclidean distance and largest absolute difference over all its elements."""
    a, b = rows(A), rows(B)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    np.testing.assert_allclose(metrics.cosine(A, B).numpy(), cos, rtol=1e-6)
    np.testing.assert_allclose(metrics.l2(A, B).numpy(), np.linalg.norm(a - b, axis=1), rtol=1e-6)
    np.testing.assert_allclose(metrics.linf(A, B).numpy(), np.abs(a - b).max(1), rtol=1e-6)
    assert metrics.cosine(A, B).shape == metrics.l2(A, B).shape == metrics.linf(A, B).shape == (3,)


def test_cosine_of_tiny_and_zero_embeddings():
    """Cosine does not depend on scale down to norms of 1e-9 (no clamping there); against a zero vector it is 0."""
    a, b = A.flatten(1)[:2] * 1e-9, B.flatten(1)[:2] * 1e-9
    np.testing.assert_allclose(metrics.cosine(a, b).numpy(), metrics.cosine(A[:2], B[:2]).numpy(), rtol=1e-5)
    assert metrics.cosine(torch.zeros(1, 4), torch.ones(1, 4)).tolist() == [0.0]


def test_psnr_per_sample_and_peak():
    """PSNR = 10 log10(peak^2 / MSE) per sample: 20 dB for a uniform 0.1 change of [0,1] pixels, the same for the
    same images in [0,255] with peak 255, 10 log10(4 / 0.01) at peak 2, inf for identical images; a batch gives
    each sample its own."""
    zero, tenth = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1)
    assert float(metrics.psnr(tenth, zero)[0]) == pytest.approx(20.0, rel=1e-6)
    assert float(metrics.psnr(255 * tenth, zero, peak=255.0)[0]) == pytest.approx(20.0, rel=1e-6)
    assert float(metrics.psnr(tenth, zero, peak=2.0)[0]) == pytest.approx(10 * math.log10(400), rel=1e-6)
    assert metrics.psnr(A, A).tolist() == [math.inf] * 3
    mse = ((rows(A) - rows(B)) ** 2).mean(1)
    np.testing.assert_allclose(metrics.psnr(A, B).numpy(), 10 * np.log10(1 / mse), rtol=1e-6)
