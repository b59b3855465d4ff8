"""PCA projections against numpy's SVD, and the Fig 1 style plots built on them."""
import json

import numpy as np
import pytest
import torch

from probe.errors import ProbeError
from probe.plots import pca_bars_figure, pca_scatter_figure
from probe.projection import fit_pca
from probe.results import save_figure


def numpy_pca(x: np.ndarray, k: int):
    """Reference: SVD of the centred data; sign so each component's largest-magnitude loading is positive."""
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:k] * np.sign(vt[:k][np.arange(k), np.abs(vt[:k]).argmax(axis=1)])[:, None]
    return mean, comps, (s**2)[:k] / (s**2).sum()


def test_pca_matches_numpy_svd():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(30, 12)) @ np.diag(np.linspace(3, 0.1, 12))  # distinct variances
    others = rng.normal(size=(5, 12))
    pca = fit_pca(torch.from_numpy(reference).float(), k=4)
    x = reference.astype(np.float32).astype(np.float64)
    mean, comps, ratio = numpy_pca(x, 4)
    assert np.allclose(pca.mean.numpy(), mean)
    assert np.allclose(pca.components.numpy(), comps, atol=1e-10)
    assert np.allclose(pca.explained_variance_ratio.numpy(), ratio)
    coefficients = pca.transform(torch.from_numpy(others))
    assert np.allclose(coefficients.numpy(), (others - mean) @ comps.T)
    assert np.allclose(pca.components @ pca.components.T, np.eye(4), atol=1e-10)


def test_pca_refuses_what_it_cannot_fit():
    with pytest.raises(ProbeError, match="more than k reference embeddings"):
        fit_pca(torch.randn(6, 10), k=6)
    with pytest.raises(ProbeError, match="all identical"):
        fit_pca(torch.ones(8, 4), k=2)
    with pytest.raises(ProbeError, match="dimension 5.*fitted on 4"):
        fit_pca(torch.randn(8, 4), k=2).transform(torch.randn(2, 5))


def test_projection_plots_carry_their_numbers(tmp_path):
    """The JSON saved beside each PCA figure holds the coefficients and variance shares numpy's SVD gives for the
    same embeddings (not merely what was handed to the plot): every coefficient for the bars, the first two for
    the scatter."""
    gen = torch.Generator().manual_seed(1)
    spread = torch.diag(torch.linspace(3, 0.3, 8, dtype=torch.float64))   # distinct variances: unique components
    reference = torch.randn(20, 8, generator=gen, dtype=torch.float64) @ spread
    points = torch.randn(4, 8, generator=gen, dtype=torch.float64)
    mean, comps, ratio = numpy_pca(reference.numpy(), 6)
    expected = (points.numpy() - mean) @ comps.T
    pca = fit_pca(reference, k=6)
    coefficients = pca.transform(points)
    titles = ["a", "a -> b", "b", "b -> a"]
    fig, data = pca_bars_figure(coefficients, titles, images=torch.rand(4, 3, 16, 16, generator=gen),
                                explained=pca.explained_variance_ratio)
    assert len(fig.axes) == 8
    bars = json.loads(save_figure(fig, tmp_path / "bars.png", data).with_suffix(".json").read_text())
    assert np.allclose(bars["coefficients"], expected, rtol=0, atol=1e-12)
    assert np.allclose(bars["explained_variance_ratio"], ratio, rtol=1e-12, atol=0)
    assert bars["components"] == [f"PC{i}" for i in range(1, 7)] and bars["titles"] == titles
    fig, data = pca_scatter_figure(coefficients[:2], coefficients[2:3], coefficients[2:], target_of=[0, 0],
                                   explained=pca.explained_variance_ratio)
    scatter = json.loads(save_figure(fig, tmp_path / "scatter.png", data).with_suffix(".json").read_text())
    assert np.allclose(scatter["sources"], expected[:2, :2], rtol=0, atol=1e-12)
    assert np.allclose(scatter["targets"], expected[2:3, :2], rtol=0, atol=1e-12)
    assert np.allclose(scatter["matched"], expected[2:, :2], rtol=0, atol=1e-12)
    assert scatter["target_of"] == [0, 0] and np.allclose(scatter["explained_variance_ratio"], ratio)
    assert (tmp_path / "bars.png").stat().st_size > 0 and (tmp_path / "scatter.png").stat().st_size > 0
