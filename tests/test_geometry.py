"""Jacobian, spectra, directions and Lipschitz estimates: exact on a linear encoder, cross-checked
against torch.autograd.functional.jacobian and float64 central differences on an MLP and the tiny ViT."""
import json

import pytest
import torch

from probe import geometry as geo
from probe.cli import main
from probe.errors import ProbeError
from probe.images import save_png
from probe.models import Encoder, Preprocess

SIGMAS = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.5, 0.0], dtype=torch.float64)
STD = (0.2, 0.25, 0.5)


class LinearModel(torch.nn.Module):
    def __init__(self, A: torch.Tensor):
        super().__init__()
        self.A = torch.nn.Parameter(A)

    def forward(self, x):
        return x.flatten(1) @ self.A.T.to(x.dtype)


def orthonormal(rows: int, cols: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(cols, rows, generator=gen, dtype=torch.float64))[0].T


@pytest.fixture(scope="module")
def linear():
    """f(x) = A x on 3x4x4 images with singular values SIGMAS (rank 5): J, spectrum, null space known."""
    U, V = orthonormal(6, 6, 0), orthonormal(6, 48, 1)
    A = U.T @ torch.diag(SIGMAS) @ V
    pre = Preprocess(size=(4, 4), resize_shorter=None, mean=(0.5, 0.4, 0.3), std=STD)
    encoder = Encoder(LinearModel(A), lambda model, x: model(x), pre, spec="linear", weights="test")
    image = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(2))
    return A, V, geo.embedding_map(encoder, image, "normalized", torch.float64), encoder, image


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 6 * 6, 32), torch.nn.Tanh(),
                              torch.nn.Linear(32, 10)).double()
    return net, torch.randn(3, 6, 6, dtype=torch.float64)


@pytest.fixture(scope="module")
def tiny(tiny_encoder):
    """The tiny ViT probed at a small random image: float32 and float64 maps, J and its spectrum."""
    image = torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(3))
    emap = geo.embedding_map(tiny_encoder, image, "normalized")
    emap64 = geo.embedding_map(tiny_encoder, image, "normalized", torch.float64)
    J = geo.jacobian(emap.f, emap.x0)
    return emap, emap64, J, geo.exact_spectrum(J, tuple(emap.x0.shape), vectors=4)


def central_difference(f, x0, v, h):
    return (f((x0 + h * v)[None]) - f((x0 - h * v)[None]))[0] / (2 * h)


def test_linear_encoder_everything_is_exact(linear):
    A, V, emap, encoder, image = linear
    J = geo.jacobian(emap.f, emap.x0, chunk_size=4)
    assert torch.allclose(J, A, atol=1e-12)
    spectrum = geo.exact_spectrum(J, (3, 4, 4), vectors=6)
    assert torch.allclose(spectrum.singular_values, SIGMAS, atol=1e-7)
    assert spectrum.numerical_rank == 5 and spectrum.right.shape == (5, 3, 4, 4)
    overlap = spectrum.right.reshape(5, -1) @ V[:5].T
    assert torch.allclose(overlap.abs(), torch.eye(5, dtype=torch.float64), atol=1e-8)

    null = geo.nullspace_directions(J, spectrum, 5, seed=0, shape=(3, 4, 4))
    assert (A @ null.reshape(5, -1).T).abs().max() < 1e-12

    directions = torch.cat([spectrum.right, null, geo.gaussian_directions((3, 4, 4), 3, 0, torch.float64)])
    result = geo.lipschitz_estimates(emap.f, emap.x0, directions, [1e-6, 1e-2, 1.0, 100.0], J)
    exact = (A @ directions.reshape(len(directions), -1).T).norm(dim=0)
    assert torch.allclose(result.estimates, exact[:, None].expand(-1, 4), atol=1e-8)
    assert torch.allclose(result.derivative_norm, exact, atol=1e-12)
    assert result.first_order_error.max() < 1e-10

    pixel = geo.embedding_map(encoder, image, "pixel", torch.float64)
    std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    assert torch.allclose(geo.jacobian(pixel.f, pixel.x0), (A.view(6, 3, 4, 4) / std).reshape(6, -1))


def test_linear_topk_and_optimized_directions(linear):
    A, _, emap, _, _ = linear
    for mode in ("jvp", "double-vjp"):
        spectrum = geo.topk_spectrum(emap.f, emap.x0, k=3, tol=1e-10, mode=mode)
        assert spectrum.info["product_mode"] == mode
        assert torch.allclose(spectrum.singular_values, SIGMAS[:3], atol=1e-8)
        assert torch.allclose((A @ spectrum.right.reshape(3, -1).T).norm(dim=0), SIGMAS[:3], atol=1e-8)
    _, values = geo.optimized_directions(emap.f, emap.x0, eps=0.5, count=3, steps=60)
    assert torch.allclose(values, SIGMAS[:1].expand(3), rtol=1e-6)


def test_chunking_does_not_change_the_jacobian(mlp):
    net, x0 = mlp
    reference = geo.jacobian(net, x0, chunk_size=10)
    for chunk in (1, 3, None):  # equal up to rounding: batched matmuls may sum in another order
        assert torch.allclose(geo.jacobian(net, x0, chunk_size=chunk), reference, rtol=0, atol=1e-15)


def test_mlp_jacobian_matches_autograd_and_finite_differences(mlp):
    net, x0 = mlp
    J = geo.jacobian(net, x0)
    expected = torch.autograd.functional.jacobian(lambda x: net(x[None])[0], x0).reshape(10, -1)
    assert torch.allclose(J, expected, atol=1e-12)
    for v in geo.gaussian_directions(tuple(x0.shape), 3, seed=5, dtype=torch.float64):
        assert torch.allclose(central_difference(net, x0, v, 1e-5), J @ v.flatten(), rtol=1e-7, atol=1e-9)
    spectrum = geo.topk_spectrum(net, x0, k=3, tol=1e-9)
    exact = geo.exact_spectrum(J)
    assert torch.allclose(spectrum.singular_values, exact.singular_values[:3], rtol=1e-8)


def test_tiny_vit_jacobian_matches_autograd_and_finite_differences(tiny):
    emap, emap64, J, _ = tiny
    f8 = lambda x: emap64.f(x)[:, :8]  # noqa: E731  (8 embedding dims keep the float64 checks quick)
    rows = torch.autograd.functional.jacobian(lambda x: f8(x[None])[0], emap64.x0).reshape(8, -1)
    assert torch.allclose(J[:8].double(), rows, rtol=1e-4, atol=1e-6 * rows.abs().max())
    J64 = geo.jacobian(f8, emap64.x0, chunk_size=3)
    assert torch.allclose(J64, rows, atol=1e-12)
    for v in geo.gaussian_directions(tuple(emap64.x0.shape), 2, seed=7, dtype=torch.float64):
        fd = central_difference(f8, emap64.x0, v, 1e-4)
        assert torch.allclose(fd, J64 @ v.flatten(), rtol=1e-6, atol=1e-9)


def test_tiny_vit_pixel_space_is_the_chain_rule(tiny_encoder, tiny):
    emap, _, J, _ = tiny
    image = torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(3))
    pixel = geo.embedding_map(tiny_encoder, image, "pixel")
    std = torch.tensor(tiny_encoder.pre.std).view(1, 3, 1, 1)
    expected = (J.view(-1, *emap.x0.shape) / std).reshape(J.shape)
    assert torch.allclose(geo.jacobian(pixel.f, pixel.x0), expected, rtol=1e-4, atol=1e-7)


def test_tiny_vit_topk_matches_exact(tiny):
    emap, _, _, exact = tiny
    top = geo.topk_spectrum(emap.f, emap.x0, k=3, tol=1e-4, seed=1)
    assert top.info["converged"]
    assert torch.allclose(top.singular_values, exact.singular_values[:3], rtol=1e-3)
    overlap = (top.right[:2].flatten(1) @ exact.right[:2].flatten(1).T).diagonal().abs()
    assert (overlap > 0.99).all()


def test_estimates_tend_to_sigma_and_nullspace_is_flat(tiny):
    emap, emap64, J, spectrum = tiny
    eps = [1e-1, 1e-3, 1e-5]
    along = geo.lipschitz_estimates(emap64.f, emap64.x0, spectrum.right.double(), eps, J)
    sigma = spectrum.singular_values[:4]
    error = (along.estimates - sigma[:, None]).abs() / sigma[:, None]
    assert (error[:, -1] < 1e-4).all() and (error[:, -1] <= error[:, 0] + 1e-6).all()

    null = geo.nullspace_directions(J, spectrum, 4, seed=0, shape=tuple(emap.x0.shape))
    first_order = geo.directional_derivatives(emap64.f, emap64.x0, null.double())
    gaussian = geo.directional_derivatives(emap64.f, emap64.x0, geo.gaussian_directions(
        tuple(emap.x0.shape), 4, seed=0, dtype=torch.float64))
    assert first_order.norm(dim=1).max() < 1e-4 * gaussian.norm(dim=1).min()
    assert first_order.norm(dim=1).max() < 1e-5 * sigma[0]


def test_optimized_directions_reach_sigma_1(tiny):
    emap, _, _, spectrum = tiny
    _, values = geo.optimized_directions(emap.f, emap.x0, eps=0.1, count=2, steps=15, seed=0)
    sigma_1 = float(spectrum.singular_values[0])
    assert abs(float(values.max()) - sigma_1) < 0.03 * sigma_1


def test_cpu_results_are_deterministic(mlp, tiny):
    net, x0 = mlp
    emap, _, J, _ = tiny
    assert torch.equal(geo.jacobian(emap.f, emap.x0), J)
    a, b = (geo.topk_spectrum(net, x0, k=2, seed=4) for _ in range(2))
    assert torch.equal(a.singular_values, b.singular_values) and torch.equal(a.right, b.right)
    assert torch.equal(geo.gaussian_directions((5,), 3, seed=1), geo.gaussian_directions((5,), 3, seed=1))
    assert not torch.equal(geo.gaussian_directions((5,), 3, seed=1), geo.gaussian_directions((5,), 3, seed=2))


def attention_switches():
    return (torch.backends.mha.get_fastpath_enabled(), torch.backends.cuda.flash_sdp_enabled(),
            torch.backends.cuda.mem_efficient_sdp_enabled(), torch.backends.cuda.math_sdp_enabled(),
            torch.backends.cuda.cudnn_sdp_enabled())


def test_global_attention_switches_are_restored(mlp):
    net, x0 = mlp
    before = attention_switches()
    geo.jacobian(net, x0, attention="math")
    geo.topk_spectrum(net, x0, k=1)
    with pytest.raises(RuntimeError), geo.math_attention():
        assert attention_switches() != before
        raise RuntimeError("boom")
    assert attention_switches() == before


def test_bad_input_gives_probe_errors(linear, mlp):
    _, _, emap, encoder, image = linear
    net, x0 = mlp
    with pytest.raises(ProbeError, match="input space"):
        geo.embedding_map(encoder, image, "latent")
    with pytest.raises(ProbeError, match=r"\[0,1\]"):
        geo.embedding_map(encoder, image * 3, "pixel")
    with pytest.raises(ProbeError, match="eps"):
        geo.lipschitz_estimates(net, x0, geo.gaussian_directions(tuple(x0.shape), 1), [0.1, -1])
    with pytest.raises(ProbeError, match="shape"):
        geo.lipschitz_estimates(net, x0, torch.ones(2, 5), [0.1])
    with pytest.raises(ProbeError, match="k must be"):
        geo.topk_spectrum(net, x0, k=11)
    with pytest.raises(ProbeError, match="chunk"):
        geo.jacobian(net, x0, chunk_size=0)
    with pytest.raises(ProbeError, match="zero"):
        geo.displacement_direction(torch.zeros_like(x0), tuple(x0.shape))
    with pytest.raises(ProbeError, match="batch"):
        geo.jacobian(lambda x: x.sum(), x0)


@pytest.fixture(scope="module")
def small_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "small.png"
    save_png(torch.rand(3, 32, 40, generator=torch.Generator().manual_seed(0)), path)
    return str(path)


def test_cli_spectrum_and_lipschitz_write_results(tmp_path, small_png):
    assert main(["spectrum", "--model", "tiny", "--image", small_png, "--out", str(tmp_path / "s")]) == 0
    spectrum = json.loads((tmp_path / "s" / "summary.json").read_text())
    for key in ("singular_values", "method", "space", "m", "n", "seconds", "model", "weights",
                "numerical_rank", "rtol", "tol", "versions"):
        assert key in spectrum
    figure = json.loads((tmp_path / "s" / "spectrum.json").read_text())
    assert figure["singular_values"] == spectrum["singular_values"]
    sigma = spectrum["singular_values"]
    assert spectrum["m"] == len(sigma) == 64 and sigma == sorted(sigma, reverse=True)
    assert (tmp_path / "s" / "spectrum.png").stat().st_size > 0

    assert main(["spectrum", "--model", "tiny", "--image", small_png, "--out", str(tmp_path / "t"),
                 "--method", "topk", "--k", "2", "--tol", "0.1", "--space", "pixel"]) == 0
    top = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert top["method"] == "topk" and top["space"] == "pixel" and len(top["singular_values"]) == 2

    matched = tmp_path / "matched.png"
    save_png(torch.rand(3, 32, 40, generator=torch.Generator().manual_seed(1)), matched)
    assert main(["lipschitz", "--model", "tiny", "--image", small_png, "--out", str(tmp_path / "l"),
                 "--samples", "2", "--eps", "1e-3,1", "--opt-steps", "2", "--matched", str(matched)]) == 0
    result = json.loads((tmp_path / "l" / "summary.json").read_text())
    assert result["eps"] == [1e-3, 1.0] and len(result["singular_values"]) == 64
    assert set(result["families"]) == {*geo.FAMILIES, "displacement"}
    for name, family in result["families"].items():
        rows = 1 if name == "displacement" else 2
        assert len(family["estimates"]) == rows and all(len(row) == 2 for row in family["estimates"])
    assert (tmp_path / "l" / "lipschitz.png").stat().st_size > 0


def test_cli_bad_arguments_give_one_clear_line(tmp_path, small_png, capsys):
    args = ["lipschitz", "--model", "tiny", "--image", small_png, "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:   # argparse checks the declared range before anything loads
        main(args + ["--eps", "0.1,-1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--eps must be in (0, inf]" in err and "Traceback" not in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        main(args + ["--directions", "singular,sideways"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "sideways" in err and "Traceback" not in err
    assert main(["spectrum", "--model", "tiny", "--image", small_png, "--out", str(tmp_path), "--k", "3"]) == 2
    assert "topk" in capsys.readouterr().err
