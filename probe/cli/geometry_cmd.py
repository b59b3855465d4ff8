"""`python -m probe spectrum` and `python -m probe lipschitz`: the Jacobian spectrum of the embedding at
one image and directional Lipschitz estimates along families of directions (the paper's Figs 3 and 4)."""
from __future__ import annotations

import argparse
import time

import torch

from probe import geometry, plots
from probe.cli.common import (add_model_args, existing_file, float_list, load_encoder_from_args, positive,
                              prepare_out_dir)
from probe.errors import ProbeError
from probe.images import load_image
from probe.results import provenance, save_figure, write_json

DEFAULT_EPS = "1e-3,1e-2,1e-1,1,10,100"


def family_list(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in geometry.FAMILIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown direction family {', '.join(unknown) or text!r}; "
                                         f"choose from {','.join(geometry.FAMILIES)}")
    return names


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    parser.add_argument("--image", required=True, type=existing_file, help="image file (any size; resized "
                        "and centre-cropped to the model's input as in its preprocessing)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--space", choices=geometry.SPACES, default="normalized",
                        help="input space of the Jacobian: pixel ([0,1] at model resolution) or normalized "
                             "(the model's normalised input, as the paper); default normalized")
    parser.add_argument("--chunk-size", type=positive(int, "--chunk-size"), default=None,
                        help="Jacobian rows per batched VJP (default: from free memory)")


def register(subparsers) -> None:
    spectrum = subparsers.add_parser("spectrum", help="singular values of the Jacobian of the embedding "
                                                      "at an image (paper Fig 3 top)")
    _add_common(spectrum)
    spectrum.add_argument("--method", choices=["exact", "topk"], default="exact",
                          help="exact: full Jacobian, all m singular values; topk: matrix-free Krylov "
                               "from JVP/VJP products, the top k only (default exact)")
    spectrum.add_argument("--k", type=positive(int, "--k"), default=None,
                          help="how many top singular values for --method topk (default 16)")
    spectrum.add_argument("--tol", type=positive(float, "--tol"), default=1e-3,
                          help="topk stopping tolerance: Ritz residual / sigma_1^2 (default 1e-3)")
    spectrum.add_argument("--rtol", type=positive(float, "--rtol"), default=None,
                          help="numerical-rank tolerance relative to sigma_1 (default m * float32 eps)")
    spectrum.set_defaults(func=run_spectrum)

    lipschitz = subparsers.add_parser("lipschitz", help="directional Lipschitz estimates along singular, "
                                                        "random, null-space and optimised directions (Figs 3-4)")
    _add_common(lipschitz)
    lipschitz.add_argument("--directions", type=family_list, default=geometry.FAMILIES,
                           help=f"comma-separated families (default {','.join(geometry.FAMILIES)})")
    lipschitz.add_argument("--samples", type=positive(int, "--samples"), default=8,
                           help="directions per family (default 8)")
    lipschitz.add_argument("--eps", type=float_list, default=float_list(DEFAULT_EPS),
                           help=f"step sizes, input-space L2 norm (default {DEFAULT_EPS})")
    lipschitz.add_argument("--opt-eps", type=positive(float, "--opt-eps"), default=0.1,
                           help="fixed step of the direction optimisation (default 0.1)")
    lipschitz.add_argument("--opt-steps", type=positive(int, "--opt-steps"), default=20,
                           help="steps of the direction optimisation (default 20)")
    lipschitz.add_argument("--matched", type=existing_file, default=None,
                           help="an image matched from --image (e.g. by `probe match`): adds the direction of "
                                "the actual displacement as the family `displacement`")
    lipschitz.add_argument("--estimate-dtype", choices=["float64", "float32"], default="float64",
                           help="precision of the estimates: float64 (default) probes a float64 copy of the "
                                "model, so small eps is not float32 rounding noise; float32 saves memory")
    lipschitz.set_defaults(func=run_lipschitz)


def run_spectrum(args) -> int:
    if args.k is not None and args.method != "topk":
        raise ProbeError("--k applies to --method topk only (exact computes all m singular values)")
    out = prepare_out_dir(args.out)
    image = load_image(args.image)
    encoder = load_encoder_from_args(args)
    emap = geometry.embedding_map(encoder, image, args.space)
    start = time.perf_counter()
    if args.method == "exact":
        J = geometry.jacobian(emap.f, emap.x0, chunk_size=args.chunk_size, progress=True)
        spectrum = geometry.exact_spectrum(J, rtol=args.rtol)
    else:
        with torch.no_grad():
            m = emap.f(emap.x0[None]).shape[1]
        spectrum = geometry.topk_spectrum(emap.f, emap.x0, k=args.k or min(16, m), tol=args.tol, seed=args.seed,
                                          rtol=args.rtol, progress=True)
    seconds = time.perf_counter() - start
    sigma = spectrum.singular_values
    if spectrum.method == "exact":
        fig, _ = plots.singular_values_figure(sigma, tol=spectrum.tol, space=args.space)
    else:
        fig, _ = plots.topk_singular_values_figure(sigma, spectrum.m, space=args.space)
    save_figure(fig, out / "spectrum.png")
    summary = provenance(
        **encoder.describe(), image=str(args.image), space=args.space, method=spectrum.method,
        m=spectrum.m, n=spectrum.n, seconds=seconds, singular_values=sigma.tolist(),
        numerical_rank=spectrum.numerical_rank, rtol=spectrum.rtol, tol=spectrum.tol,
        chunk_size=args.chunk_size, seed=args.seed, topk=spectrum.info or None)
    write_json(out / "spectrum.json", summary)
    rank = ("rank not known (top-k only)" if spectrum.numerical_rank is None
            else f"numerical rank {spectrum.numerical_rank} (tol {spectrum.tol:.2g})")
    print(f"sigma_1 = {float(sigma[0]):.4g}, {rank}, {seconds:.1f} s -> {out / 'spectrum.json'}")
    return 0


def run_lipschitz(args) -> int:
    eps = geometry.check_eps(args.eps)
    out = prepare_out_dir(args.out)
    image = load_image(args.image)
    encoder = load_encoder_from_args(args)
    emap = geometry.embedding_map(encoder, image, args.space)
    estimate_map = (geometry.embedding_map(encoder, image, args.space, dtype=torch.float64)
                    if args.estimate_dtype == "float64" else None)
    displacement = None
    if args.matched is not None:
        displacement = geometry.embedding_map(encoder, load_image(args.matched), args.space).x0 - emap.x0
    start = time.perf_counter()
    study = geometry.lipschitz_study(emap, args.directions, args.samples, eps, seed=args.seed,
                                     estimate_map=estimate_map, optimize_eps=args.opt_eps,
                                     optimize_steps=args.opt_steps, chunk_size=args.chunk_size,
                                     displacement=displacement, progress=True)
    seconds = time.perf_counter() - start
    spectrum = study.spectrum
    sigma = spectrum.singular_values
    sigma_1 = float(sigma[0])
    ref = min(range(len(eps)), key=lambda j: eps[j])
    fig, _ = plots.lipschitz_distributions_figure(
        {name: est.estimates[:, ref] for name, est in study.families.items()}, eps[ref], sigma_1,
        study.frobenius_over_sqrt_n, space=args.space)
    save_figure(fig, out / "lipschitz.png")
    fig, data = plots.lipschitz_vs_eps_figure(
        eps, {name: est.estimates for name, est in study.families.items()},
        {name: est.first_order_error for name, est in study.families.items()}, sigma_1, space=args.space)
    save_figure(fig, out / "lipschitz_eps.png", data)
    if "singular" in study.families:
        fig, data = plots.singular_lipschitz_figure(sigma, study.families["singular"].estimates[:, ref],
                                                    eps[ref], spectrum.tol, space=args.space)
        save_figure(fig, out / "lipschitz_singular.png", data)
    summary = provenance(
        **encoder.describe(), image=str(args.image), matched=args.matched, space=args.space, eps=eps,
        reference_eps=eps[ref],
        families={name: est.to_dict() for name, est in study.families.items()},
        singular_values=sigma.tolist(), sigma_1=sigma_1, numerical_rank=spectrum.numerical_rank,
        rtol=spectrum.rtol, tol=spectrum.tol, frobenius_over_sqrt_n=study.frobenius_over_sqrt_n,
        m=spectrum.m, n=spectrum.n, samples=args.samples, seed=args.seed, estimate_dtype=args.estimate_dtype,
        optimization={"eps": args.opt_eps, "steps": args.opt_steps,
                      "values": None if study.optimized_values is None else study.optimized_values.tolist()},
        seconds=seconds)
    write_json(out / "lipschitz.json", summary)
    medians = ", ".join(f"{name} {float(est.estimates[:, ref].median()):.3g}"
                        for name, est in study.families.items())
    print(f"median estimates at eps={eps[ref]:g}: {medians} (sigma_1 {sigma_1:.3g}) -> {out / 'lipschitz.json'}")
    return 0
