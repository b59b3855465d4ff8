"""`python -m probe toy train|eval` (the mini-CLIP: train one, check one) and `python -m probe effect` (the
paper's effect on it: fixed pairs matched under PSNR floors, rounded to 8 bits, classified)."""
from __future__ import annotations

import sys

from probe import experiments
from probe.cli.common import add_out_arg, bars, check_out_dir, finish, float_list, positive
from probe.models import MINI_CLIP_DIR
from probe.toy.data import RECIPES


def register(subparsers) -> None:
    toy = subparsers.add_parser("toy", help="train or check a mini-CLIP (the shipped small trained CLIP)")
    commands = toy.add_subparsers(dest="toy_command", required=True, parser_class=type(toy))

    train = commands.add_parser("train", help="train a mini-CLIP into an OpenCLIP Hub-layout folder")
    train.add_argument("--out", required=True, help="output folder for open_clip_config.json + weights")
    train.add_argument("--seed", type=int, default=0, help="seed for weights and data (default 0)")
    train.add_argument("--steps", type=int, default=3000, help="optimisation steps (default 3000)")
    train.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    train.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    train.add_argument("--weight-decay", type=float, default=0.1,
                       help="AdamW weight decay on weight matrices (default 0.1)")
    train.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    train.add_argument("--workers", type=int, default=0,
                       help="processes generating data (default 0: in the training process; on a GPU use ~8)")
    train.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    train.add_argument("--recipe", choices=RECIPES, default=None,
                       help="data generator: narrow (the shipped model's) or wide (any size, position, outline, "
                            "plain/noisy/gradient backgrounds; experimental) (default narrow)")
    train.add_argument("--ramp", type=float, default=0.0,
                       help="wide recipe: share of the steps over which difficulty rises to the full range (default 0)")
    train.add_argument("--init", help="start from this mini-CLIP folder's weights (a second stage) instead of "
                                      "a fresh initialisation")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    train.add_argument("--checkpoint", help="checkpoint path (default OUT/checkpoint.pt)")
    train.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (default 100)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)

    evaluate = commands.add_parser("eval", help="zero-shot accuracy and centroid spread of a mini-CLIP")
    evaluate.add_argument("--model-dir", default=str(MINI_CLIP_DIR), help="model folder (default: the shipped one)")
    evaluate.add_argument("--per-class", type=positive(int, "--per-class"), default=20,
                          help="held-out images per class (default 20)")
    evaluate.add_argument("--per-drawn", type=positive(int, "--per-drawn"), default=10,
                          help="independently drawn shapes per label and resolution (default 10: 320 drawings)")
    evaluate.set_defaults(func=run_eval)

    effect = subparsers.add_parser("effect", help="the paper's effect on the mini-CLIP: match its fixed pairs "
                                                  "under PSNR floors, round to 8 bits, classify")
    add_out_arg(effect)
    effect.add_argument("--model", default="mini-clip",
                        help="model spec or preset with a text tower (default mini-clip)")
    effect.add_argument("--sets", default="photos,shapes", help="pair sets: photos, shapes or both (default both)")
    effect.add_argument("--psnr", type=float_list, default=[35.0],
                        help="PSNR floors in dB, comma-separated; one matching run per floor, example figures at the "
                             "first (default 35)")
    effect.add_argument("--steps", type=positive(int, "--steps"), default=300, help="matching steps (default 300)")
    effect.add_argument("--per-photo", type=positive(int, "--per-photo"), default=5,
                        help="target classes per photo (default 5)")
    effect.add_argument("--pairs", type=positive(int, "--pairs"), default=40, help="pairs in the shapes set (default 40)")
    effect.add_argument("--seed", type=int, default=0, help="seed for the pair choice and matching (default 0)")
    effect.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    effect.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    effect.add_argument("--quiet", action="store_true", help="no progress output")
    effect.set_defaults(func=run_effect)


def run_train(args) -> int:
    from probe.toy.train import train

    progress = bars(args)
    try:
        result = train(args.out, seed=args.seed, steps=args.steps, batch=args.batch, lr=args.lr,
                       weight_decay=args.weight_decay, threads=args.threads, workers=args.workers,
                       device=args.device, resume=args.resume, checkpoint=args.checkpoint,
                       checkpoint_every=args.checkpoint_every, progress=progress, recipe=args.recipe,
                       ramp=args.ramp, init=args.init)
    finally:
        progress.close()
    if result.cancelled:
        print(f"stopped at step {result.step} of {result.steps}; the checkpoint holds it: run the same command "
              "with --resume to continue", file=sys.stderr)
        return 130
    print(f"trained to step {result.steps} in {result.seconds:.0f} s; model written to {args.out}")
    return 0


def run_eval(args) -> int:
    import torch

    from probe.models import load_encoder
    from probe.toy import drawn
    from probe.toy.data import class_names
    from probe.toy.quality import model_quality

    torch.set_num_threads(1)
    results = model_quality(args.model_dir, per_class=args.per_class)
    print(f"model: {args.model_dir}")
    print(f"zero-shot top-1, held-out generated images: {results['heldout_accuracy']:.1%}")
    print(f"zero-shot top-1, plain PIL shapes:          {results['plain_accuracy']:.1%}")
    print(f"mean cosine between class centroids:        {results['centroid_cosine']:.3f} "
          f"(random init: {results['random_init_centroid_cosine']:.3f})")
    drawings = drawn.drawn_set(args.per_drawn)
    shares = drawn.evaluate(load_encoder(f"openclip:local-dir:{args.model_dir}"), drawings, class_names())
    overall = shares["overall"]
    print(f"zero-shot top-1, independently drawn shapes ({overall['n']}, probe.toy.drawn): "
          f"{overall['labels_16']:.1%} over its 16 labels, {overall['all_classes']:.1%} over all classes")
    for group in ("by_size", "by_background", "by_style", "by_resolution"):
        print(f"  {group.replace('_', ' ')}: " + ", ".join(f"{name} {value['labels_16']:.0%}"
                                                          for name, value in shares[group].items()))
    return 0


def run_effect(args) -> int:
    from probe.cli.common import load_encoder_from_args

    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    out = check_out_dir(args.out)
    encoder = load_encoder_from_args(args)
    progress = bars(args)
    result = experiments.effect(encoder, sets, args.psnr, steps=args.steps, per_photo=args.per_photo,
                                n_shapes=args.pairs, seed=args.seed, progress=progress)
    return finish(result, out, progress)
