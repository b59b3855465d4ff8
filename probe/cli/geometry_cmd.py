"""`python -m probe spectrum`, `lipschitz` and `inspect`: the Jacobian spectrum of the embedding at one image,
directional Lipschitz estimates along families of directions (the paper's Figs 3 and 4), and both together
with the top singular directions as images. The options are the experiments' declared settings
(`probe.experiments.geometry`)."""
from __future__ import annotations

import argparse

from probe import experiments
from probe.cli.common import (add_model_args, add_out_arg, bars, check_out_dir, existing_file, finish,
                              load_encoder_from_args)
from probe.images import load_image
from probe.params import Param, add_options, given


def _command(subparsers, name: str, help: str, declared: dict[str, Param], run, matched: bool) -> None:
    parser = subparsers.add_parser(name, help=help)
    add_model_args(parser)
    parser.add_argument("--image", required=True, type=existing_file, help="image file (any size; resized "
                        "and centre-cropped to the model's input as in its preprocessing)")
    add_out_arg(parser)
    add_options(parser, declared.values())
    if matched:
        parser.add_argument("--matched", type=existing_file, default=None,
                            help="an image matched from --image (e.g. by `probe match`): adds the direction of the "
                                 "actual displacement as the family `displacement`")
    parser.set_defaults(func=lambda args: _run(args, run, declared))


def register(subparsers) -> None:
    _command(subparsers, "spectrum", "singular values of the Jacobian of the embedding at an image (paper Fig 3 top)",
             experiments.SPECTRUM, experiments.spectrum, matched=False)
    _command(subparsers, "lipschitz", "directional Lipschitz estimates along singular, random, null-space and "
                                      "optimised directions (Figs 3-4)", experiments.LIPSCHITZ, experiments.lipschitz,
             matched=True)
    _command(subparsers, "inspect", "spectrum, Lipschitz estimates along the top singular directions, and those "
                                    "directions as images", experiments.INSPECT, experiments.inspect, matched=True)


def _run(args: argparse.Namespace, experiment, declared: dict[str, Param]) -> int:
    options = given(args, declared.values())
    load_image(args.image)
    if getattr(args, "matched", None) is not None:
        load_image(args.matched)
        options["matched"] = args.matched
    out = check_out_dir(args.out)
    encoder = load_encoder_from_args(args)
    progress = bars(args)
    result = experiment(encoder, args.image, seed=args.seed, progress=progress, **options)
    return finish(result, out, progress)
