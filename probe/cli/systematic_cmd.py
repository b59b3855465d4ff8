"""`python -m probe systematic`: match every image of a set to every image of another class, round to 8 bits,
classify (the sister paper's N x N evaluation: clean accuracy > 99% -> matched accuracy 0%)."""
from __future__ import annotations

from probe import experiments
from probe.cli.common import (add_model_args, add_out_arg, bars, check_out_dir, finish, load_encoder_from_args,
                              positive)
from probe.cli.match_cmd import settings_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser("systematic", help="N x N evaluation: every image matched to every image of "
                                                 "another class, then classified", description=__doc__)
    add_model_args(p)
    p.add_argument("--images", required=True,
                   help="image set: a folder of class subfolders, an imagefolder, parquet, save_to_disk folder, "
                        "a Hub dataset id, or a named set (imagenette, imagenet-paper)")
    p.add_argument("--per-class", type=positive(int, "--per-class"), default=1, help="images per class (default 1)")
    p.add_argument("--classes", help="comma-separated classes to keep (default all)")
    p.add_argument("--templates", default="none", help="zero-shot templates: none, ensemble or FILE")
    p.add_argument("--batch-size", type=positive(int, "--batch-size"), default=8, help="pairs per batch (default 8)")
    add_out_arg(p)
    p.add_argument("--mode", choices=["paper", "fast"], default="fast")
    p.add_argument("--steps", type=positive(int, "--steps"), help="iteration cap (paper 15000, fast 300)")
    p.add_argument("--lr", type=positive(float, "--lr"))
    p.add_argument("--budget", type=float, help="pixel budget in (0,1] (fast default 8/255)")
    p.add_argument("--norm", choices=["linf", "l2"], default="linf")
    p.set_defaults(func=run, optimizer=None, loss="mse", l2sq_below=16.0, cos_above=0.96, rel_l2_below=0.01,
                   resolution="model")


def load_set(args):
    from probe.data import NAMED_SETS, load_image_set, load_named_set

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    if args.images in NAMED_SETS:
        return load_named_set(args.images, per_class=args.per_class, seed=args.seed)
    return load_image_set(args.images, classes=classes, per_class=args.per_class, seed=args.seed)


def run(args) -> int:
    settings = settings_from_args(args)
    image_set = load_set(args)
    out = check_out_dir(args.out)
    encoder = load_encoder_from_args(args)
    progress = bars(args)
    result = experiments.systematic(encoder, image_set, settings, templates=args.templates,
                                    batch_size=args.batch_size, seed=args.seed, progress=progress)
    return finish(result, out, progress)
