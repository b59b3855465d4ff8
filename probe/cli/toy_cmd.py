"""`python -m probe toy train|eval` (the mini-CLIP: train one, check one) and `python -m probe effect` (the
paper's effect on it: fixed pairs matched under PSNR floors, rounded to 8 bits, classified). The training and
effect options are the functions' declared settings (`probe.toy.train.TRAIN`, `probe.toy.effect.PAIRS`,
`probe.experiments.effects.EFFECT`)."""
from __future__ import annotations

import sys

import torch

from probe import experiments
from probe.cli.common import (add_model_args, add_out_arg, bars, check_out_dir, finish, load_encoder_from_args)
from probe.models import load_encoder
from probe.params import Param, add_options, given
from probe.toy import MINI_CLIP_DIR, drawn
from probe.toy.data import class_names
from probe.toy.effect import PAIR_SETS, PAIRS, pair_sets
from probe.toy.quality import model_quality
from probe.toy.train import TRAIN, train

EVAL = {"per_class": Param("held-out images per class", kind=int, low=1).named("per_class", 20),
        "per_drawn": Param("independently drawn shapes per label and resolution", kind=int,
                           low=1).named("per_drawn", 10),
        "drawn_seed": Param("seed of the drawn set (the bars are reported on seed 7, which model selection never "
                            "saw)", kind=int, low=0).named("drawn_seed", 7)}


def register(subparsers) -> None:
    toy = subparsers.add_parser("toy", help="train or check a mini-CLIP (the shipped small trained CLIP)")
    commands = toy.add_subparsers(dest="toy_command", required=True, parser_class=type(toy))

    training = commands.add_parser("train", help="train a mini-CLIP into an OpenCLIP Hub-layout folder")
    training.add_argument("--out", required=True, help="output folder for open_clip_config.json + weights")
    add_options(training, TRAIN.values())
    training.add_argument("--init", help="start from this mini-CLIP folder's weights (a second stage) instead of "
                                         "a fresh initialisation")
    training.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    training.add_argument("--checkpoint", help="checkpoint path (default OUT/checkpoint.pt)")
    training.add_argument("--quiet", action="store_true", help="no progress bar")
    training.set_defaults(func=run_train)

    evaluate = commands.add_parser("eval", help="zero-shot accuracy and centroid spread of a mini-CLIP")
    evaluate.add_argument("--model-dir", default=str(MINI_CLIP_DIR), help="model folder (default: the shipped one)")
    add_options(evaluate, EVAL.values())
    evaluate.set_defaults(func=run_eval)

    effect = subparsers.add_parser("effect", help="the paper's effect on the mini-CLIP: match its fixed pairs "
                                                  "under PSNR floors, round to 8 bits, classify")
    add_out_arg(effect)
    add_model_args(effect)
    effect.add_argument("--sets", default=",".join(PAIR_SETS), help="pair sets: photos, shapes or both (default "
                                                                   "both)")
    add_options(effect, experiments.EFFECT.values())
    add_options(effect, PAIRS.values())
    effect.set_defaults(func=run_effect)


def run_train(args) -> int:
    progress = bars(args)
    try:
        result = train(args.out, resume=args.resume, checkpoint=args.checkpoint, progress=progress, init=args.init,
                       **given(args, TRAIN.values()))
    finally:
        progress.close()
    if result.cancelled:
        print(f"stopped at step {result.step} of {result.steps}; the checkpoint holds it: run the same command "
              "with --resume to continue", file=sys.stderr)
        return 130
    print(f"trained to step {result.steps} in {result.seconds:.0f} s; model written to {args.out}")
    return 0


def run_eval(args) -> int:
    options = {**{p.name: p.default for p in EVAL.values()}, **given(args, EVAL.values())}
    torch.set_num_threads(1)
    results = model_quality(args.model_dir, per_class=options["per_class"])
    encoder = load_encoder(f"openclip:local-dir:{args.model_dir}")
    named = "@sha256:" in encoder.weights   # shipped weights have a stable id; a folder gets its sha256 too
    print(f"weights: {encoder.weights}" + ("" if named else f" (sha256 {encoder.weights_sha256[:12]})"))
    print(f"zero-shot top-1, held-out generated images: {results['heldout_accuracy']:.1%}")
    print(f"zero-shot top-1, plain PIL shapes:          {results['plain_accuracy']:.1%}")
    print(f"mean cosine between class centroids:        {results['centroid_cosine']:.3f} "
          f"(random init: {results['random_init_centroid_cosine']:.3f})")
    drawings = drawn.drawn_set(options["per_drawn"], seed=options["drawn_seed"])
    shares = drawn.evaluate(encoder, drawings, class_names())
    overall = shares["overall"]
    print(f"zero-shot top-1, independently drawn shapes ({overall['n']}, probe.toy.drawn, seed "
          f"{options['drawn_seed']}): "
          f"{overall['labels_16']:.1%} over its 16 labels, {overall['all_classes']:.1%} over all classes")
    for group in ("by_size", "by_background", "by_style", "by_resolution"):
        print(f"  {group.replace('_', ' ')}: " + ", ".join(f"{name} {value['labels_16']:.0%}"
                                                          for name, value in shares[group].items()))
    print("confusion over the 16 labels (rows: drawn, columns: read as):")
    print(confusion_table(shares["labels"], shares["confusion"]))
    return 0


def confusion_table(labels: list[str], counts: list[list[int]]) -> str:
    """A markdown confusion matrix; columns abbreviated to the colour's initial and the shape's first two letters
    (`rci`: red circle, `rsq`: red square, `rst`: red star)."""
    short = [f"{label.split()[0][0]}{label.split()[-1][:2]}" for label in labels]
    lines = ["| drawn \\ read as | " + " | ".join(short) + " |", "|---" * (len(labels) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(str(n) if n else "." for n in row) + " |"
              for label, row in zip(labels, counts)]
    return "\n".join(lines)


def run_effect(args) -> int:
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    out = check_out_dir(args.out)
    encoder = load_encoder_from_args(args)
    chosen = pair_sets(encoder, sets, seed=args.seed, **given(args, PAIRS.values()))
    progress = bars(args)
    result = experiments.effect(encoder, chosen, class_names(), seed=args.seed, progress=progress,
                                **given(args, experiments.EFFECT.values()))
    return finish(result, out, progress)
