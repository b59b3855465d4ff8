"""`python -m probe spectrum`, `lipschitz` and `inspect`: the Jacobian spectrum of the embedding at one image,
directional Lipschitz estimates along families of directions (the paper's Figs 3 and 4), and both together
with the top singular directions as images."""
from __future__ import annotations

import argparse

from probe import experiments, geometry
from probe.cli.common import (add_model_args, add_out_arg, bars, check_out_dir, existing_file, finish, float_list,
                              load_encoder_from_args, positive)
from probe.images import load_image

DEFAULT_EPS = ",".join(f"{e:g}" for e in experiments.DEFAULT_EPS)


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
    add_out_arg(parser)
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
    spectrum.add_argument("--directions", type=int, default=0,
                          help="also save this many top right singular vectors as images (default 0)")
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

    inspect = subparsers.add_parser("inspect", help="spectrum, Lipschitz estimates along the top singular "
                                                    "directions, and those directions as images")
    _add_common(inspect)
    inspect.add_argument("--method", choices=["exact", "topk"], default="exact",
                         help="exact Jacobian, or matrix-free top-k (for large models)")
    inspect.add_argument("--k", type=positive(int, "--k"), default=4, help="top singular directions (default 4)")
    inspect.add_argument("--matched", type=existing_file, default=None,
                         help="an image matched from --image: adds the displacement direction")
    inspect.set_defaults(func=run_inspect)


def _prepare(args):
    load_image(args.image)
    if getattr(args, "matched", None) is not None:
        load_image(args.matched)
    out = check_out_dir(args.out)
    return out, load_encoder_from_args(args), bars(args)


def run_spectrum(args) -> int:
    if args.k is not None and args.method != "topk":
        from probe.errors import ProbeError

        raise ProbeError("--k applies to --method topk only (exact computes all m singular values)")
    out, encoder, progress = _prepare(args)
    result = experiments.spectrum(encoder, args.image, space=args.space, method=args.method, k=args.k, tol=args.tol,
                                  rtol=args.rtol, chunk_size=args.chunk_size, directions=args.directions,
                                  seed=args.seed, progress=progress)
    return finish(result, out, progress)


def run_lipschitz(args) -> int:
    geometry.check_eps(args.eps)
    out, encoder, progress = _prepare(args)
    result = experiments.lipschitz(encoder, args.image, families=args.directions, samples=args.samples, eps=args.eps,
                                   space=args.space, optimize_eps=args.opt_eps, optimize_steps=args.opt_steps,
                                   estimate_dtype=args.estimate_dtype, matched=args.matched,
                                   chunk_size=args.chunk_size, seed=args.seed, progress=progress)
    return finish(result, out, progress)


def run_inspect(args) -> int:
    out, encoder, progress = _prepare(args)
    result = experiments.inspect(encoder, args.image, method=args.method, k=args.k, space=args.space,
                                 matched=args.matched, chunk_size=args.chunk_size, seed=args.seed, progress=progress)
    return finish(result, out, progress)
