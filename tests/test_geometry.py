"""Jacobian, spectra, directions and Lipschitz estimates: exact on a linear encoder, cross-checked
against torch.autograd.functional.jacobian and float64 central differences on an MLP and the tiny ViT."""
import copy
import json
import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from probe import geometry as geo
from probe.cli import main
from probe.errors import ProbeError
from probe.images import load_image, save_png
from probe.models import Encoder, Preprocess

SIGMAS = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.5, 0.0], dtype=torch.float64)
STD = (0.2, 0.25, 0.5)
TINY_IMAGE = torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(3))
# the tiny ViT's normalisation, taken from open_clip's constants rather than from probe's Preprocess
TINY_MEAN, TINY_STD = (torch.tensor(v).view(3, 1, 1) for v in (OPENAI_DATASET_MEAN, OPENAI_DATASET_STD))


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
    emap = geo.embedding_map(tiny_encoder, TINY_IMAGE, "normalized")
    emap64 = geo.embedding_map(tiny_encoder, TINY_IMAGE, "normalized", torch.float64)
    J = geo.jacobian(emap.f, emap.x0)
    return emap, emap64, J, geo.exact_spectrum(J, tuple(emap.x0.shape), vectors=4)


@pytest.fixture(scope="module")
def tiny_pixel(tiny_encoder):
    """The tiny ViT in pixel space at the same image: the map and its Jacobian."""
    pixel = geo.embedding_map(tiny_encoder, TINY_IMAGE, "pixel")
    return pixel, geo.jacobian(pixel.f, pixel.x0)


def by_hand(image: torch.Tensor, size: int = 224) -> torch.Tensor:
    """[0,1] pixels (3,H,W) at the model's input: torchvision's bicubic resize of the shorter side, centre crop."""
    return TF.center_crop(TF.resize(image[None], size, interpolation=TF.InterpolationMode.BICUBIC, antialias=True),
                          [size, size])[0]


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


def test_tiny_vit_pixel_space_is_the_chain_rule(tiny_encoder, tiny, tiny_pixel):
    emap, _, J, _ = tiny
    _, J_pixel = tiny_pixel
    std = torch.tensor(tiny_encoder.pre.std).view(1, 3, 1, 1)
    expected = (J.view(-1, *emap.x0.shape) / std).reshape(J.shape)
    assert torch.allclose(J_pixel, expected, rtol=1e-4, atol=1e-7)


def test_tiny_vit_pixel_jacobian_matches_float64_differences_by_hand(tiny_encoder, tiny_pixel):
    """Without probe's preprocessing or maps: the pixel-space point is torchvision's resize and crop of the image,
    and J v equals float64 central differences of the OpenCLIP model called directly on pixels normalised by hand.
    J is float32 (relative error ~1e-6); the differences' truncation error at h = 1e-4 is far below 1e-4."""
    pixel, J = tiny_pixel
    assert torch.allclose(pixel.x0, by_hand(TINY_IMAGE), rtol=0, atol=1e-5)
    model = copy.deepcopy(tiny_encoder.model).double()
    mean, std = TINY_MEAN.double(), TINY_STD.double()

    def f(p):
        return model.encode_image(((p - mean) / std)[None])[0]

    x0, h = pixel.x0.double(), 1e-4
    directions = torch.randn(2, *x0.shape, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    with torch.no_grad():
        for v in directions / directions.flatten(1).norm(dim=1).view(-1, 1, 1, 1):
            fd = (f(x0 + h * v) - f(x0 - h * v)) / (2 * h)
            assert torch.allclose(J.double() @ v.flatten(), fd, rtol=1e-4, atol=1e-6 * fd.abs().max())


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


@pytest.mark.slow
def test_cli_spectrum_and_lipschitz_write_results(tmp_path, small_png, tiny_encoder):
    """The singular values written (summary and the JSON beside the figure) are torch.linalg.svdvals of a Jacobian
    computed here by torch.autograd.functional.jacobian of the model at the image preprocessed by hand; top-k in
    pixel space keeps its stopping guarantee against them; the Lipschitz estimates lie between ratios sampled here
    and sigma_1, and the matched displacement's equal a float64 recomputation."""
    def normalized(path) -> torch.Tensor:
        return (by_hand(load_image(path)) - TINY_MEAN) / TINY_STD

    x0 = normalized(small_png)
    J = torch.autograd.functional.jacobian(lambda x: tiny_encoder.model.encode_image(x[None])[0], x0,
                                           vectorize=True).reshape(64, -1).double()
    sigma = torch.linalg.svdvals(J)

    def close_to_sigma(values):   # J is float32: its singular values agree to ~1e-6 relative
        return torch.allclose(torch.tensor(values, dtype=torch.float64), sigma[:len(values)], rtol=1e-4,
                              atol=1e-6 * float(sigma[0]))

    assert main(["spectrum", "--model", "tiny", "--image", small_png, "--out", str(tmp_path / "s")]) == 0
    spectrum = json.loads((tmp_path / "s" / "summary.json").read_text())
    for key in ("method", "space", "seconds", "model", "weights", "rtol", "versions"):
        assert key in spectrum
    figure = json.loads((tmp_path / "s" / "spectrum.json").read_text())
    assert figure["singular_values"] == spectrum["singular_values"] and close_to_sigma(spectrum["singular_values"])
    assert (spectrum["m"], spectrum["n"]) == (64, x0.numel()) and len(spectrum["singular_values"]) == 64
    assert spectrum["numerical_rank"] == int((sigma > spectrum["tol"]).sum()) and spectrum["tol"] > 0
    assert (tmp_path / "s" / "spectrum.png").stat().st_size > 0

    assert main(["spectrum", "--model", "tiny", "--image", small_png, "--out", str(tmp_path / "t"),
                 "--method", "topk", "--k", "2", "--tol", "0.1", "--space", "pixel"]) == 0
    top = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert top["method"] == "topk" and top["space"] == "pixel"
    J_pixel = (J.view(64, *x0.shape) / TINY_STD.double()).reshape(64, -1)   # d normalised / d pixel = 1 / std
    exact = torch.linalg.svdvals(J_pixel @ J_pixel.T)[:2].sqrt()   # the 64 x 64 Gram: sigma^2, quicker
    found = torch.tensor(top["singular_values"], dtype=torch.float64)
    # Ritz values never exceed the true ones; stopping at tol bounds each sigma_i^2 error by tol * sigma_1^2
    assert len(found) == 2 and (found <= exact * (1 + 1e-4)).all()
    assert (found.pow(2) >= exact.pow(2) - 0.1 * exact[0] ** 2).all(), (found, exact)

    matched = tmp_path / "matched.png"
    save_png(torch.rand(3, 32, 40, generator=torch.Generator().manual_seed(1)), matched)
    assert main(["lipschitz", "--model", "tiny", "--image", small_png, "--out", str(tmp_path / "l"),
                 "--samples", "2", "--eps", "1e-3,1", "--opt-steps", "2", "--matched", str(matched)]) == 0
    result = json.loads((tmp_path / "l" / "summary.json").read_text())
    assert result["eps"] == [1e-3, 1.0] and close_to_sigma(result["singular_values"])
    assert result["frobenius_over_sqrt_n"] == pytest.approx(float(sigma.norm()) / math.sqrt(x0.numel()), rel=1e-4)
    assert set(result["families"]) == {*geo.FAMILIES, "displacement"}
    for name, family in result["families"].items():
        rows = 1 if name == "displacement" else 2
        assert len(family["estimates"]) == rows and all(len(row) == 2 for row in family["estimates"])
    at_small = {name: torch.tensor([row[0] for row in family["estimates"]], dtype=torch.float64)
                for name, family in result["families"].items()}

    model = copy.deepcopy(tiny_encoder.model).double()
    x64 = x0.double()
    delta = normalized(matched).double() - x64
    sampled = torch.randn(4, *x0.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        f0 = model.encode_image(x64[None])[0]

        def ratio(d):
            return float((model.encode_image((x64 + d)[None])[0] - f0).norm() / d.norm())

        displacement = [ratio(eps * delta / delta.norm()) for eps in (1e-3, 1.0)]
        random_ratios = torch.tensor([ratio(1e-3 * d / d.norm()) for d in sampled])
    assert result["families"]["displacement"]["estimates"][0] == pytest.approx(displacement, rel=1e-5)
    # at eps = 1e-3 the second-order term is ~1e-5 of sigma here: along v_i the estimate is sigma_i, and no
    # direction beats sigma_1; null-space directions move the embedding only to second order
    assert close_to_sigma(at_small["singular"].tolist())
    assert max(float(v.max()) for v in at_small.values()) <= float(sigma[0]) * (1 + 1e-4)
    assert float(at_small["nullspace"].max()) < 1e-5 * float(sigma[0])
    # random directions, the family's and those sampled here, change it by about ||J||_F / sqrt(n) (concentration
    # over 150528 pixels); two optimisation steps already reach most of sigma_1, far above any of them
    typical = float(sigma.norm()) / math.sqrt(x0.numel())
    for ratios in (at_small["gaussian"], random_ratios):
        assert ((ratios > 0.5 * typical) & (ratios < 2 * typical)).all(), (ratios, typical)
    assert float(at_small["optimized"].min()) > 0.75 * float(sigma[0]) > 10 * float(random_ratios.max())
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


def test_exact_rank_counts_values_strictly_above_the_tolerance():
    """numerical_rank counts the singular values strictly above rtol * sigma_1, with the rtol given: J with
    singular values exactly (2, 1) has rank 1 at rtol 1/2 (sigma_2 is at the tolerance, not above) and 2 just
    below; a rank-one J has rank 1, a zero J rank 0. No right vectors unless asked (then in J's dtype), and
    m x n is recorded."""
    J = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])   # diagonal Gram diag(4, 1): exact eigenvalues
    at = geo.exact_spectrum(J, rtol=0.5)
    assert at.singular_values.tolist() == [2.0, 1.0]
    assert (at.rtol, at.tol, at.numerical_rank) == (0.5, 1.0, 1)
    assert geo.exact_spectrum(J, rtol=0.49).numerical_rank == 2
    assert at.right is None and (at.m, at.n) == (2, 3)
    vectors = geo.exact_spectrum(J, vectors=2)
    assert vectors.numerical_rank == 2 and vectors.right.dtype == torch.float32
    assert torch.equal(vectors.right.abs(), torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    rank_one = geo.exact_spectrum(torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), vectors=2)
    assert rank_one.singular_values.tolist() == [3.0, 0.0] and rank_one.numerical_rank == 1
    assert rank_one.right.shape == (1, 3)
    zero = geo.exact_spectrum(torch.zeros(2, 3), vectors=2)
    assert zero.numerical_rank == 0 and zero.right is None


def test_estimates_normalise_in_the_points_dtype_and_use_the_given_jacobian(linear):
    """float32 directions (not unit) for a float64 point are normalised in float64: a linear map's estimates are
    ||A v|| / ||v|| to 1e-11 (a float32 normalisation is off by ~1e-7). J v comes from the Jacobian passed in
    (here 1.5 A): derivative_norm is 1.5 ||A v|| and the first-order error 0.5 eps ||A v||. eps is returned as given."""
    A = linear[0]
    x0 = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    V = 3 * torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(6))
    v = V.double().flatten(1)
    exact = (v @ A.T).norm(dim=1) / v.norm(dim=1)
    eps = [0.1, 1.0]
    result = geo.lipschitz_estimates(lambda x: x.flatten(1) @ A.T, x0, V, eps, 1.5 * A)
    assert result.eps == eps
    assert torch.allclose(result.estimates, exact[:, None].expand(-1, 2), rtol=1e-11, atol=0)
    assert torch.allclose(result.derivative_norm, 1.5 * exact, rtol=1e-11, atol=0)
    expected = 0.5 * torch.tensor(eps, dtype=torch.float64) * exact[:, None]
    assert torch.allclose(result.first_order_error, expected, rtol=1e-9, atol=0)


def test_estimates_step_by_eps_exactly():
    """The steps are the eps given, in float64: for f(x) = x^2 (elementwise) at x0 along a unit v, the estimate is
    ||2 x0 v + eps v^2||, the first-order error eps^2 ||v^2||, the derivative norm ||2 x0 v||, to 1e-12 at
    eps = 1/3 (a float32 step, 1/3 + 1e-8, is off by ~1e-8)."""
    x0 = torch.tensor([0.5, -1.0, 2.0, 0.25, 1.5], dtype=torch.float64)
    v = torch.tensor([[1.0, 2.0, -2.0, 0.5, 1.0]], dtype=torch.float64)
    v = v / v.norm()
    eps = 1 / 3
    result = geo.lipschitz_estimates(lambda x: x.pow(2), x0, v, [eps], torch.diag(2 * x0))
    assert float(result.estimates[0, 0]) == pytest.approx(float((2 * x0 * v + eps * v**2).norm()), rel=1e-12)
    assert float(result.first_order_error[0, 0]) == pytest.approx(eps**2 * float((v**2).norm()), rel=1e-12)
    assert float(result.derivative_norm[0]) == pytest.approx(float((2 * x0 * v).norm()), rel=1e-12)


def test_estimates_go_through_the_map_in_batches(linear, monkeypatch):
    """batch_size bounds the inputs per forward pass (16 unless told): 6 directions x 3 steps take one pass at the
    point, then passes of 16 and 2, and progress hears each batch; without J the J v products go in batches of
    batch_size too. The numbers do not depend on the batching."""
    A = linear[0]
    sizes, heard = [], []

    def f(x):
        sizes.append(len(x))
        return x.flatten(1) @ A.T

    x0 = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    V = geo.gaussian_directions((3, 4, 4), 6, seed=3, dtype=torch.float64)
    eps = [0.1, 1.0, 10.0]
    result = geo.lipschitz_estimates(f, x0, V, eps, A, progress=lambda stage, done, total, _: heard.append(done))
    assert sizes == [1, 16, 2] and heard == [0, 16, 18]
    sizes.clear()
    products = []
    j = geo.Linearized.j
    monkeypatch.setattr(geo.Linearized, "j", lambda self, W: products.append(len(W)) or j(self, W))
    small = geo.lipschitz_estimates(f, x0, V, eps, batch_size=4)
    assert products == [4, 2] and sizes[-5:] == [4, 4, 4, 4, 2]
    assert torch.allclose(small.estimates, result.estimates, rtol=1e-12, atol=0)
    assert torch.allclose(small.derivative_norm, result.derivative_norm, rtol=1e-12, atol=0)


def test_directions_of_another_shape_are_refused(mlp):
    """Directions with the point's number of dimensions but another shape are refused up front, with or without J."""
    net, x0 = mlp
    for J in (None, geo.jacobian(net, x0)):
        with pytest.raises(ProbeError, match=r"directions must have shape \(d, 3, 6, 6\), got \(2, 3, 6, 5\)"):
            geo.lipschitz_estimates(net, x0, torch.ones(2, 3, 6, 5, dtype=torch.float64), [0.1], J)


def test_spectrum_and_estimates_on_device(linear, device):
    """With J and the point on the device and the directions left on the CPU, the spectrum and the estimates are
    the CPU's numbers (the exact ones of the linear map): J's Gram, the directions, the steps and the changes are
    all taken on the point's device."""
    A = linear[0]
    Ad = A.to(device)
    x0 = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64).to(device)
    spectrum = geo.exact_spectrum(Ad, (3, 4, 4), vectors=2)
    assert torch.allclose(spectrum.singular_values, SIGMAS, atol=1e-6)   # sigma = 0 is the root of ~1e-14
    assert spectrum.right.device == x0.device
    V = geo.gaussian_directions((3, 4, 4), 3, seed=3, dtype=torch.float64)
    result = geo.lipschitz_estimates(lambda x: x.flatten(1) @ Ad.T, x0, V, [0.1, 1.0], Ad)
    exact = (V.flatten(1) @ A.T).norm(dim=1)
    assert torch.allclose(result.estimates, exact[:, None].expand(-1, 2), rtol=1e-11, atol=0)
    assert torch.allclose(result.derivative_norm, exact, rtol=1e-11, atol=0)
    assert result.first_order_error.max() < 1e-12
