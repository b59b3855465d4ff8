"""`python -m probe systematic`: match every image of a set to every image of another class, round to 8 bits,
classify (the sister paper's N x N evaluation: clean accuracy > 99% -> matched accuracy 0%). The matching options
are `probe match`'s (at the model's resolution)."""
from __future__ import annotations

from probe import experiments
from probe.cli.common import add_model_args, add_out_arg, bars, check_out_dir, finish, load_encoder_from_args
from probe.cli.match_cmd import settings_from_args, settings_options
from probe.data import NAMED_SETS, load_image_set, load_named_set
from probe.params import Param, add_options, given

LOADING = {"per_class": Param("images per class", kind=int, low=1).named("per_class", 1),
           "classes": Param("classes to keep (default all)", kind=str, many=True, optional=True).named("classes", None)}


def register(subparsers) -> None:
    p = subparsers.add_parser("systematic", help="N x N evaluation: every image matched to every image of "
                                                 "another class, then classified", description=__doc__)
    add_model_args(p)
    p.add_argument("--images", required=True,
                   help="image set: a folder of class subfolders, an imagefolder, parquet, save_to_disk folder, "
                        "a Hub dataset id, or a named set (imagenette, imagenet-paper)")
    add_options(p, LOADING.values())
    add_options(p, experiments.SYSTEMATIC.values())
    add_out_arg(p)
    settings_options(p, skip=("resolution",))
    p.set_defaults(func=run_systematic)


def load_set(args):
    loading = {p.name: (getattr(args, p.name) if getattr(args, p.name) is not None else p.default)
               for p in LOADING.values()}
    if args.images in NAMED_SETS:
        return load_named_set(args.images, per_class=loading["per_class"], seed=args.seed)
    return load_image_set(args.images, classes=loading["classes"], per_class=loading["per_class"], seed=args.seed)


def run_systematic(args) -> int:
    settings = settings_from_args(args)
    image_set = load_set(args)
    out = check_out_dir(args.out)
    encoder = load_encoder_from_args(args)
    progress = bars(args)
    result = experiments.systematic(encoder, image_set, settings, seed=args.seed, progress=progress,
                                    **given(args, experiments.SYSTEMATIC.values()))
    return finish(result, out, progress)
