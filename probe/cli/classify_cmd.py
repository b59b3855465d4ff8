"""`python -m probe classify`: zero-shot probabilities of images over class texts, as JSON and a heatmap."""
from __future__ import annotations

from probe import experiments
from probe.cli.common import add_model_args, add_out_arg, check_out_dir, existing_file, finish, load_encoder_from_args
from probe.errors import ProbeError


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
    parser.add_argument("--templates", default="none",
                        help="none (plain class names, as the paper), ensemble (the 80 CLIP ImageNet "
                             "prompts) or FILE (one template per line with {}); default none")
    parser.add_argument("--reference", metavar="FOLDER",
                        help="class-per-subfolder reference images: use a nearest-prototype head "
                             "(class names = subfolder names) instead of the text tower")
    add_out_arg(parser)
    parser.set_defaults(func=run)


def parse_labels(text: str | None) -> list[str]:
    labels = [part.strip() for part in (text or "").split(",") if part.strip()]
    if len(labels) < 2:
        raise ProbeError(f'--labels needs at least 2 comma-separated class names, got {text!r}')
    return labels


def run(args) -> int:
    from probe.images import load_image
    from probe.zeroshot import resolve_templates

    if bool(args.reference) == bool(args.labels):
        raise ProbeError('pass either --labels "a,b,c" (the model\'s text tower) or --reference FOLDER '
                         "(a nearest-prototype head from class subfolders)")
    labels = parse_labels(args.labels) if args.labels else None
    if labels:
        resolve_templates(args.templates)
    for path in args.images:
        load_image(path)
    out = check_out_dir(args.out)
    encoder = load_encoder_from_args(args)
    result = experiments.classify(encoder, args.images, labels, templates=args.templates, reference=args.reference,
                                  seed=args.seed)
    return finish(result, out)
