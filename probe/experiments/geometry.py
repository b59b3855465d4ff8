"""The geometry behind matching, at one image: the Jacobian spectrum (`spectrum`, several at once: `spectra`),
directional Lipschitz estimates (`lipschitz`, the paper's Figs 3 and 4), and both with the top directions as
images (`inspect`). Each function's settings are declared once below it (`probe.params.declare`): the CLI's
options and the app's checks come from those declarations."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from probe import geometry, plots
from probe.errors import ProbeError
from probe.experiments.base import Result, as_encoder, name_of, tolist
from probe.images import as_pixels
from probe.params import Param, check_call, declare
from probe.progress import Cancelled, Progress, within

Tensor = torch.Tensor


# --- Jacobian spectrum ---------------------------------------------------------------------------


def direction_images(directions: Tensor, space: str, encoder) -> Tensor:
    """Singular directions (k,3,h,w) in `space`, shown as [0,1] images: grey is 0, each scaled to its own
    largest pixel change (pixel space: the normalised-space direction divided back by std)."""
    pixels = directions * encoder.std.to(directions) if space == "normalized" else directions
    peak = pixels.flatten(1).abs().amax(1).clamp_min(1e-30).view(-1, 1, 1, 1)
    return (0.5 + 0.5 * pixels / peak).clamp(0, 1).float().cpu()


@dataclass
class SpectrumResult(Result):
    """Singular values of the Jacobian of the embedding at one image."""
    image: str = ""
    space: str = "normalized"
    method: str = "exact"
    singular_values: Tensor | None = None
    numerical_rank: int | None = None
    rtol: float | None = None
    tol: float | None = None
    m: int = 0
    n: int = 0
    info: dict = field(default_factory=dict)
    right: Tensor | None = None                # (k, *input shape) top right singular vectors, probed space
    directions: Tensor | None = None           # the same as [0,1] images

    def numbers(self) -> dict:
        sigma = self.singular_values
        return {"image": self.image, "space": self.space, "method": self.method, "m": self.m, "n": self.n,
                "singular_values": tolist(sigma), "sigma_1": None if sigma is None or not len(sigma) else float(sigma[0]),
                "numerical_rank": self.numerical_rank, "rtol": self.rtol, "tol": self.tol,
                "topk": self.info or None}

    def figures(self) -> list[tuple[str, Any, dict]]:
        if self.singular_values is None:
            return []
        title = f"singular values of the Jacobian ({self.model['model']})"
        if self.method == "exact":
            fig, data = plots.singular_values_figure(self.singular_values, tol=self.tol, space=self.space, title=title)
        else:
            fig, data = plots.topk_singular_values_figure(self.singular_values, self.m, space=self.space, title=title)
        return [("spectrum", fig, data)]

    def images(self) -> dict[str, Tensor]:
        if self.directions is None:
            return {}
        return {f"direction_{i + 1}": d for i, d in enumerate(self.directions)}

    def headline(self) -> str:
        if self.singular_values is None:
            return "spectrum cancelled"
        rank = ("rank not known (top-k only)" if self.numerical_rank is None
                else f"numerical rank {self.numerical_rank} of {self.m} (tol {self.tol:.2g})")
        return f"sigma_1 = {float(self.singular_values[0]):.4g}, {rank}, {self.seconds:.1f} s"


def spectrum(encoder, image, *, space: str = "normalized", method: str = "exact", k: int | None = None,
             tol: float = 1e-3, rtol: float | None = None, chunk_size: int | None = None, directions: int = 0,
             seed: int = 0, progress: Progress | None = None) -> SpectrumResult:
    """Singular values of J = d embedding / d input at `image` (the paper's Fig 3 top): `exact` (all m, from
    the full Jacobian) or `topk` (the top k, matrix-free). `directions` > 0 also returns that many top right
    singular vectors as images."""
    check_call(SPECTRUM, space=space, method=method, k=k, tol=tol, rtol=rtol, chunk_size=chunk_size,
               directions=directions)
    encoder = as_encoder(encoder)
    if k is not None and method != "topk":
        raise ProbeError("k applies to method 'topk' only (exact computes all m singular values)")
    pixels = as_pixels(image)
    emap = geometry.embedding_map(encoder, pixels, space)
    settings = {"space": space, "method": method, "k": k, "tol": tol, "rtol": rtol, "chunk_size": chunk_size,
                "directions": directions}
    start = time.perf_counter()
    common = dict(kind="spectrum", model=encoder.describe(), settings=settings, seed=seed, image=name_of(image, "image"),
                  space=space, method=method)
    try:
        if method == "exact":
            J = geometry.jacobian(emap.f, emap.x0, chunk_size=chunk_size, progress=progress)
            result = geometry.exact_spectrum(J, tuple(emap.x0.shape), vectors=directions, rtol=rtol)
        else:
            with torch.no_grad():
                m = emap.f(emap.x0[None]).shape[1]
            result = geometry.topk_spectrum(emap.f, emap.x0, k=min(k or max(16, directions), m), tol=tol, seed=seed,
                                            rtol=rtol, progress=progress)
    except Cancelled:
        return SpectrumResult(**common, seconds=time.perf_counter() - start, cancelled=True)
    right = result.right[:directions] if directions and result.right is not None else None
    return SpectrumResult(**common, seconds=time.perf_counter() - start, cancelled=False,
                       singular_values=result.singular_values, numerical_rank=result.numerical_rank,
                       rtol=result.rtol, tol=result.tol, m=result.m, n=result.n, info=result.info, right=right,
                       directions=None if right is None else direction_images(right, space, encoder))


SPECTRUM = declare(
    spectrum,
    space=Param("input space of the Jacobian: pixel ([0,1] pixels at the model's resolution) or normalized (the "
                "model's normalised input, as the paper)", kind=str, choices=geometry.SPACES),
    method=Param("exact: the full Jacobian, all m singular values; topk: matrix-free (JVP/VJP products), the top "
                 "k only", kind=str, choices=("exact", "topk")),
    k=Param("how many top singular values for method topk (default 16)", kind=int, low=1, optional=True),
    tol=Param("topk stopping tolerance: Ritz residual / sigma_1^2", low=0, open_low=True),
    rtol=Param("numerical-rank tolerance relative to sigma_1 (default m x float32 eps)", low=0, open_low=True,
               optional=True),
    chunk_size=Param("Jacobian rows per batched VJP (default: as many as free memory allows)", kind=int, low=1,
                     optional=True),
    directions=Param("also return this many top right singular vectors as images", kind=int, low=0),
)


# --- directional Lipschitz estimates -------------------------------------------------------------

DEFAULT_EPS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@dataclass
class LipschitzResult(Result):
    """Lipschitz estimates per direction family (the paper's Figs 3 and 4)."""
    image: str = ""
    space: str = "normalized"
    eps: list[float] = field(default_factory=list)
    study: Any = None   # geometry.LipschitzStudy

    @property
    def reference_eps(self) -> float:
        return min(self.eps)

    def _ref(self) -> int:
        return self.eps.index(self.reference_eps)

    def numbers(self) -> dict:
        if self.study is None:
            return {"image": self.image, "space": self.space, "eps": self.eps}
        spectrum, ref = self.study.spectrum, self._ref()
        return {"image": self.image, "space": self.space, "eps": self.eps, "reference_eps": self.reference_eps,
                "families": {name: est.to_dict() for name, est in self.study.families.items()},
                "medians_at_reference_eps": {name: float(est.estimates[:, ref].median())
                                             for name, est in self.study.families.items()},
                "singular_values": spectrum.singular_values.tolist(), "sigma_1": float(spectrum.singular_values[0]),
                "numerical_rank": spectrum.numerical_rank, "rtol": spectrum.rtol, "tol": spectrum.tol,
                "frobenius_over_sqrt_n": self.study.frobenius_over_sqrt_n, "m": spectrum.m, "n": spectrum.n,
                "optimized_values": tolist(self.study.optimized_values)}

    def figures(self) -> list[tuple[str, Any, dict]]:
        if self.study is None:
            return []
        study, ref = self.study, self._ref()
        sigma = study.spectrum.singular_values
        sigma_1 = float(sigma[0])
        families = study.families
        out = []
        fig, data = plots.lipschitz_distributions_figure({n: e.estimates[:, ref] for n, e in families.items()},
                                                         self.eps[ref], sigma_1, study.frobenius_over_sqrt_n,
                                                         space=self.space)
        out.append(("lipschitz", fig, data))
        fig, data = plots.lipschitz_vs_eps_figure(self.eps, {n: e.estimates for n, e in families.items()},
                                                  {n: e.first_order_error for n, e in families.items()}, sigma_1,
                                                  space=self.space)
        out.append(("lipschitz_eps", fig, data))
        if "singular" in families:
            fig, data = plots.singular_lipschitz_figure(sigma, families["singular"].estimates[:, ref], self.eps[ref],
                                                        study.spectrum.tol, space=self.space)
            out.append(("lipschitz_singular", fig, data))
        return out

    def headline(self) -> str:
        if self.study is None:
            return "lipschitz cancelled"
        medians = ", ".join(f"{name} {value:.3g}" for name, value in self.numbers()["medians_at_reference_eps"].items())
        return (f"median estimates at eps={self.reference_eps:g}: {medians} "
                f"(sigma_1 {float(self.study.spectrum.singular_values[0]):.3g}), {self.seconds:.1f} s")


def lipschitz(encoder, image, *, families: Sequence[str] = geometry.FAMILIES, samples: int = 8,
              eps: Sequence[float] = DEFAULT_EPS, space: str = "normalized", optimize_eps: float = 0.1,
              optimize_steps: int = 20, estimate_dtype: str = "float64", matched=None, chunk_size: int | None = None,
              seed: int = 0, progress: Progress | None = None) -> LipschitzResult:
    """Directional Lipschitz estimates ||f(x + eps v) - f(x)|| / eps at `image` along `samples` directions of
    each family, over the eps grid; `matched` (an image matched from `image`) adds the direction of the actual
    displacement. Estimates use a float64 copy of the model unless `estimate_dtype` is float32."""
    check_call(LIPSCHITZ, families=families, samples=samples, eps=eps, space=space, optimize_eps=optimize_eps,
               optimize_steps=optimize_steps, estimate_dtype=estimate_dtype, chunk_size=chunk_size)
    encoder = as_encoder(encoder)
    eps = geometry.check_eps(list(eps))
    pixels = as_pixels(image)
    emap = geometry.embedding_map(encoder, pixels, space)
    estimate_map = (geometry.embedding_map(encoder, pixels, space, dtype=torch.float64)
                    if estimate_dtype == "float64" else None)
    displacement = None
    if matched is not None:
        displacement = geometry.embedding_map(encoder, as_pixels(matched, "matched"), space).x0 - emap.x0
    settings = {"families": list(families), "samples": samples, "eps": eps, "space": space,
                "optimize_eps": optimize_eps, "optimize_steps": optimize_steps, "estimate_dtype": estimate_dtype,
                "matched": None if matched is None else name_of(matched, "matched image"), "chunk_size": chunk_size}
    common = dict(kind="lipschitz", model=encoder.describe(), settings=settings, seed=seed,
                  image=name_of(image, "image"), space=space, eps=eps)
    start = time.perf_counter()
    try:
        study = geometry.lipschitz_study(emap, tuple(families), samples, eps, seed=seed, estimate_map=estimate_map,
                                         optimize_eps=optimize_eps, optimize_steps=optimize_steps,
                                         chunk_size=chunk_size, displacement=displacement, progress=progress)
    except Cancelled:
        return LipschitzResult(**common, seconds=time.perf_counter() - start, cancelled=True)
    return LipschitzResult(**common, seconds=time.perf_counter() - start, cancelled=False, study=study)


LIPSCHITZ = declare(
    lipschitz,
    families=Param("direction families", kind=str, many=True, choices=geometry.FAMILIES, cli="--directions"),
    samples=Param("directions per family", kind=int, low=1),
    eps=Param("step sizes", many=True, low=0, open_low=True, unit="input-space L2 norm"),
    space=Param("input space of the Jacobian: pixel ([0,1] pixels at the model's resolution) or normalized (the "
                "model's normalised input, as the paper)", kind=str, choices=geometry.SPACES),
    optimize_eps=Param("fixed step of the direction optimisation", low=0, open_low=True, cli="--opt-eps"),
    optimize_steps=Param("steps of the direction optimisation", kind=int, low=0, cli="--opt-steps"),
    estimate_dtype=Param("precision of the estimates: float64 probes a float64 copy of the model, so small eps is "
                         "not float32 rounding noise; float32 saves memory", kind=str, choices=("float64", "float32")),
    chunk_size=Param("Jacobian rows per batched VJP (default: as many as free memory allows)", kind=int, low=1,
                     optional=True),
)


# --- inspect: why matching works at this image ----------------------------------------------------


@dataclass
class InspectResult(Result):
    """Spectrum, estimates along the top singular directions (and a matching displacement), directions as images."""
    image: str = ""
    spectrum: SpectrumResult | None = None
    eps: list[float] = field(default_factory=list)
    estimates: dict = field(default_factory=dict)   # family -> geometry.LipschitzEstimates

    def numbers(self) -> dict:
        out = {"image": self.image, **(self.spectrum.numbers() if self.spectrum else {}), "eps": self.eps}
        out["families"] = {name: est.to_dict() for name, est in self.estimates.items()}
        return out

    def figures(self) -> list[tuple[str, Any, dict]]:
        figures = self.spectrum.figures() if self.spectrum else []
        if self.estimates:
            sigma_1 = float(self.spectrum.singular_values[0])
            fig, data = plots.lipschitz_vs_eps_figure(self.eps, {n: e.estimates for n, e in self.estimates.items()},
                                                      {n: e.first_order_error for n, e in self.estimates.items()},
                                                      sigma_1, space=self.spectrum.space)
            figures.append(("lipschitz_eps", fig, data))
        return figures

    def images(self) -> dict[str, Tensor]:
        return self.spectrum.images() if self.spectrum else {}

    def headline(self) -> str:
        return self.spectrum.headline() if self.spectrum else "inspect cancelled"


def inspect(encoder, image, *, method: str = "exact", k: int = 4, space: str = "normalized",
            eps: Sequence[float] = (1e-2, 1e-1, 1.0, 10.0), matched=None, samples: int = 4,
            chunk_size: int | None = None, seed: int = 0, progress: Progress | None = None) -> InspectResult:
    """The geometry behind matching at one image: the Jacobian spectrum (`exact`, or matrix-free `topk` when
    the full Jacobian is too slow), Lipschitz estimates along the top `k` right singular vectors and `samples`
    random Gaussian directions (plus the displacement to `matched`), and the top directions as images."""
    check_call(INSPECT, method=method, k=k, space=space, eps=eps, samples=samples, chunk_size=chunk_size)
    encoder = as_encoder(encoder)
    eps = geometry.check_eps(list(eps))
    start = time.perf_counter()
    spec = spectrum(encoder, image, space=space, method=method, k=k if method == "topk" else None,
                    chunk_size=chunk_size, directions=k, seed=seed, progress=within(progress, "spectrum"))
    settings = {"method": method, "k": k, "space": space, "eps": eps, "samples": samples,
                "matched": None if matched is None else name_of(matched, "matched image")}
    run = InspectResult(kind="inspect", model=encoder.describe(), settings=settings, seed=seed, seconds=0.0,
                     cancelled=spec.cancelled, image=name_of(image, "image"), spectrum=spec, eps=eps)
    if spec.cancelled:
        run.seconds = time.perf_counter() - start
        return run
    pixels = as_pixels(image)
    emap = geometry.embedding_map(encoder, pixels, space)
    shape = tuple(emap.x0.shape)
    families = {"singular": spec.right.to(emap.x0),
                "gaussian": geometry.gaussian_directions(shape, samples, seed, emap.x0.dtype, emap.x0.device)}
    if matched is not None:
        delta = geometry.embedding_map(encoder, as_pixels(matched, "matched"), space).x0 - emap.x0
        families["displacement"] = geometry.displacement_direction(delta, shape)
    try:
        for name, directions in families.items():
            run.estimates[name] = geometry.lipschitz_estimates(emap.f, emap.x0, directions, eps,
                                                               progress=within(progress, name))
    except Cancelled:
        run.cancelled = True
    run.seconds = time.perf_counter() - start
    return run


INSPECT = declare(
    inspect,
    method=Param("exact Jacobian, or matrix-free top-k (for large models)", kind=str, choices=("exact", "topk")),
    k=Param("top singular directions to estimate along and show", kind=int, low=1),
    space=Param("input space of the Jacobian: pixel ([0,1] pixels at the model's resolution) or normalized (the "
                "model's normalised input, as the paper)", kind=str, choices=geometry.SPACES),
    eps=Param("step sizes", many=True, low=0, open_low=True, unit="input-space L2 norm"),
    samples=Param("random Gaussian directions", kind=int, low=1),
    chunk_size=Param("Jacobian rows per batched VJP (default: as many as free memory allows)", kind=int, low=1,
                     optional=True),
)


# --- spectra at several images or of several models ----------------------------------------------


@dataclass
class SpectraResult(Result):
    """Several Jacobian spectra side by side (images of one model, or one image through several models)."""
    labels: list[str] = field(default_factory=list)
    runs: list[SpectrumResult] = field(default_factory=list)
    normalize: bool = False

    def numbers(self) -> dict:
        return {"labels": self.labels, "normalized_by_sigma_1": self.normalize,
                "spectra": [dict(r.numbers(), model=r.model["model"], weights=r.model["weights"]) for r in self.runs]}

    def figures(self) -> list[tuple[str, Any, dict]]:
        curves = {label: r.singular_values for label, r in zip(self.labels, self.runs)}
        ranks = {label: (r.numerical_rank, r.m) for label, r in zip(self.labels, self.runs)}
        fig, data = plots.spectra_figure(curves, ranks, normalize=self.normalize, space=self.runs[0].space)
        return [("spectra", fig, data)]

    def headline(self) -> str:
        return "; ".join(f"{label}: sigma_1 {float(r.singular_values[0]):.3g}, rank {r.numerical_rank} of {r.m}"
                         for label, r in zip(self.labels, self.runs))


def spectra(items: Sequence[tuple[Any, Any]], *, labels: Sequence[str] | None = None, normalize: bool = False,
            space: str = "normalized", seed: int = 0, progress: Progress | None = None) -> SpectraResult:
    """Exact Jacobian spectra for (encoder or spec, image) items: several images through one model (Fig 12
    style), or one image through several models, normalised by sigma_1 to compare their decay (Fig 13)."""
    items = [(as_encoder(encoder), image) for encoder, image in items]
    if not items:
        raise ProbeError("give at least one (model, image) item")
    labels = list(labels or [f"{e.spec}: {name_of(image, f'image {i + 1}')}" for i, (e, image) in enumerate(items)])
    start = time.perf_counter()
    runs = []
    for index, (encoder, image) in enumerate(items):
        run = spectrum(encoder, image, space=space, seed=seed, progress=within(progress, labels[index]))
        if run.cancelled:
            break
        runs.append(run)
    specs = list(dict.fromkeys(e.spec for e, _ in items))
    model = {"model": ", ".join(specs), "weights": ", ".join(dict.fromkeys(e.weights for e, _ in items)),
             "models": [e.describe() for e in dict((e.spec, e) for e, _ in items).values()]}
    return SpectraResult(kind="spectra", model=model, settings={"space": space, "normalize": normalize}, seed=seed,
                      seconds=time.perf_counter() - start, cancelled=len(runs) < len(items),
                      labels=labels[:len(runs)], runs=runs, normalize=normalize)


