"""`python -m probe classify`: zero-shot probabilities of images over class texts, as JSON and a heatmap."""
from __future__ import annotations

from probe import experiments
from probe.cli.common import add_model_args, add_out_arg, check_out_dir, existing_file, finish, load_encoder_from_args
from probe.errors import ProbeError
from probe.images import load_image
from probe.params import add_options, given
from probe.zeroshot import parse_labels, resolve_templates


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "classify", help="zero-shot vision x text probabilities of images over class names",
        description="Classify images zero-shot with the model's own text tower (softmax of logit scale x "
                    "cosine), or, for models without one, with a nearest-prototype head from --reference. "
                    "Image files are read through the model's own preprocessing. Writes DIR/summary.json and "
                    "DIR/classify.png.")
    add_model_args(parser)
    parser.add_argument("--images", nargs="+", required=True, type=existing_file, metavar="IMG",
                        help="image files to classify")
    parser.add_argument("--labels", help='comma-separated class names, e.g. "tench,church,parachute"')
    add_options(parser, experiments.CLASSIFY.values())
    parser.add_argument("--reference", metavar="FOLDER",
                        help="class-per-subfolder reference images: use a nearest-prototype head "
                             "(class names = subfolder names) instead of the text tower")
    add_out_arg(parser)
    parser.set_defaults(func=run_classify)


def run_classify(args) -> int:
    if bool(args.reference) == bool(args.labels):
        raise ProbeError('pass either --labels "a,b,c" (the model\'s text tower) or --reference FOLDER '
                         "(a nearest-prototype head from class subfolders)")
    labels = parse_labels(args.labels) if args.labels else None
    options = given(args, experiments.CLASSIFY.values())
    if labels:
        resolve_templates(options.get("templates", "none"))
    for path in args.images:
        load_image(path)
    out = check_out_dir(args.out)
    encoder = load_encoder_from_args(args)
    result = experiments.classify(encoder, args.images, labels, reference=args.reference, seed=args.seed, **options)
    return finish(result, out)
