"""`python -m probe match`: make a source image take on a target image's embedding.

Writes DIR/matched.png, DIR/source.png (the source at the same resolution), DIR/diff_x50.png (the paper's
amplified difference), DIR/trace.csv (every step), DIR/curves.png (+ .json) and DIR/summary.json (written
last: its presence means the run finished).
"""
from __future__ import annotations

from probe import experiments
from probe.cli.common import (add_model_args, add_out_arg, bars, check_out_dir, existing_file, finish,
                              load_encoder_from_args, positive)
from probe.errors import ProbeError
from probe.images import load_image
from probe.matching import settings_for


def register(subparsers) -> None:
    p = subparsers.add_parser("match", help="match a source image's embedding to a target image's",
                              description=__doc__)
    add_model_args(p)
    p.add_argument("--source", required=True, type=existing_file, help="image to change")
    p.add_argument("--target", required=True, type=existing_file, help="image whose embedding to take on")
    add_out_arg(p)
    p.add_argument("--mode", choices=["paper", "fast"], default="fast",
                   help="paper: the authors' exact procedure; fast: optimise [0,1] pixels under a budget")
    p.add_argument("--steps", type=positive(int, "--steps"), help="iteration cap (paper 15000, fast 300)")
    p.add_argument("--lr", type=positive(float, "--lr"),
                   help="step size (paper 0.09; fast budget/8, or budget/4 for normalized steps)")
    p.add_argument("--optimizer", choices=["adam", "sign", "normalized"],
                   help="fast: update rule (default adam for --norm linf, normalized for --norm l2)")
    p.add_argument("--loss", choices=["mse", "cosine", "l2"], default="mse")
    p.add_argument("--budget", type=float, help="fast: pixel budget in (0,1] (default 8/255); "
                   "paper: optional extra budget (not in the paper)")
    p.add_argument("--norm", choices=["linf", "l2"], default="linf", help="budget norm")
    p.add_argument("--l2sq-below", type=float, default=16.0, help="paper stop: squared L2 below this")
    p.add_argument("--cos-above", type=float, default=0.96, help="paper stop: cosine above this")
    p.add_argument("--rel-l2-below", type=float, default=0.01,
                   help="fast stop: L2 to target at most this fraction of its start")
    p.add_argument("--resolution", choices=["model", "source"], default="source",
                   help="fast: optimise the source's own pixels (default; scaled down above ~1 megapixel) "
                        "or the model's input size")
    p.set_defaults(func=run)


def settings_from_args(args):
    if args.budget is not None and not 0 < args.budget <= 1:
        raise ProbeError(f"--budget must be in (0, 1] ([0,1]-pixel units), got {args.budget}")
    if args.mode == "paper" and args.optimizer:
        raise ProbeError("--optimizer is for --mode fast; the paper's procedure is plain gradient descent")
    if args.mode == "paper":
        options = {"l2sq_below": args.l2sq_below, "cos_above": args.cos_above, "loss": args.loss,
                   "budget": args.budget, "norm": args.norm}
    else:
        options = {"norm": args.norm, "rel_l2_below": args.rel_l2_below, "loss": args.loss,
                   "resolution": args.resolution, "optimizer": args.optimizer}
        if args.budget is not None:
            options["budget"] = args.budget
    if args.steps is not None:
        options["steps"] = args.steps
    if args.lr is not None:
        options["lr"] = args.lr
    return settings_for(args.mode, **options)


def run(args) -> int:
    settings = settings_from_args(args)
    load_image(args.source), load_image(args.target)  # unreadable files fail before anything else
    out = check_out_dir(args.out)
    encoder = load_encoder_from_args(args)
    progress = bars(args)
    result = experiments.match(encoder, args.source, args.target, settings, seed=args.seed, progress=progress)
    return finish(result, out, progress)
