"""`python -m probe classify`: zero-shot probabilities of images over class texts, as JSON and a heatmap."""
from __future__ import annotations

import argparse

from probe.cli.common import add_model_args, existing_file, load_encoder_from_args, prepare_out_dir
from probe.errors import ProbeError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "classify", help="zero-shot vision x text probabilities of images over class names",
        description="Classify images zero-shot with the model's own text tower (softmax of logit scale x "
                    "cosine), or, for models without one, with a nearest-prototype head from --reference. "
                    "Writes DIR/classify.json and DIR/classify.png.")
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
    parser.add_argument("--out", required=True, help="output folder")
    parser.set_defaults(func=run)


def parse_labels(text: str | None) -> list[str]:
    labels = [part.strip() for part in (text or "").split(",") if part.strip()]
    if len(labels) < 2:
        raise ProbeError(f'--labels needs at least 2 comma-separated class names, got {text!r}')
    return labels


def run(args: argparse.Namespace) -> int:
    from probe.images import load_image
    from probe.plots import vision_text_figure
    from probe.results import provenance, save_figure, write_json
    from probe.zeroshot import prototype_head, resolve_templates, text_head, vision_text_matrix

    if bool(args.reference) == bool(args.labels):
        raise ProbeError('pass either --labels "a,b,c" (the model\'s text tower) or --reference FOLDER '
                         "(a nearest-prototype head from class subfolders)")
    if args.labels:
        labels = parse_labels(args.labels)
        templates = resolve_templates(args.templates)
    out = prepare_out_dir(args.out)
    images = [load_image(path) for path in args.images]
    encoder = load_encoder_from_args(args)
    if args.reference:
        from probe.data import load_image_set

        reference = load_image_set(args.reference, layout="folder")
        head = prototype_head(encoder, reference.images, reference.labels, reference.class_names)
    else:
        head = text_head(encoder, labels, templates=templates)
    probabilities = vision_text_matrix(encoder, head, images)
    names = [path.name for path in args.images]
    fig, _ = vision_text_figure(probabilities, names, list(head.classes),
                                title=f"vision x text probabilities ({encoder.spec})")
    save_figure(fig, out / "classify.png")
    record = provenance(labels=list(head.classes), images=[str(p) for p in args.images],
                        probabilities=probabilities, model=encoder.spec, weights=encoder.weights,
                        predictions=[head.classes[i] for i in probabilities.argmax(1)],
                        head=head.describe(), encoder=encoder.describe(), seed=args.seed,
                        reference=args.reference)
    write_json(out / "classify.json", record)
    for name, row in zip(names, probabilities):
        best = int(row.argmax())
        print(f"{name}: {head.classes[best]} ({row[best]:.3f})")
    print(f"wrote {out / 'classify.json'} and {out / 'classify.png'}")
    return 0
