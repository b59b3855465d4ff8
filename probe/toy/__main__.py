"""Command line for the mini-CLIP: ``python -m probe.toy {train,eval,effect}``."""

from __future__ import annotations

import argparse
import sys

from probe.cli.common import float_list
from probe.errors import ProbeError
from probe.toy import MINI_CLIP_DIR


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            from probe.toy.train import train

            train(args.out, seed=args.seed, steps=args.steps, batch=args.batch, lr=args.lr,
                  weight_decay=args.weight_decay, threads=args.threads, workers=args.workers,
                  device=args.device, resume=args.resume, checkpoint=args.checkpoint,
                  checkpoint_every=args.checkpoint_every)
        elif args.command == "eval":
            _print_eval(args.model_dir, args.per_class)
        else:
            _effect(args)
    except (ValueError, FileNotFoundError, FileExistsError, ProbeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command with --resume to continue from the last checkpoint", file=sys.stderr)
        return 130
    return 0


def _print_eval(model_dir: str, per_class: int) -> None:
    import torch

    from probe.toy.evaluate import evaluate

    torch.set_num_threads(1)
    results = evaluate(model_dir, per_class=per_class)
    print(f"model: {model_dir}")
    print(f"zero-shot top-1, held-out generated images: {results['heldout_accuracy']:.1%}")
    print(f"zero-shot top-1, plain PIL shapes:          {results['plain_accuracy']:.1%}")
    print(f"mean cosine between class centroids:        {results['centroid_cosine']:.3f} "
          f"(random init: {results['random_init_centroid_cosine']:.3f})")


def _effect(args) -> None:
    from probe.models import load_encoder
    from probe.toy.effect import run

    encoder = load_encoder(args.model, device=args.device)
    print(f"model {encoder.spec}, weights {encoder.weights}", file=sys.stderr)
    run(encoder, args.out, [s.strip() for s in args.sets.split(",")], args.psnr, steps=args.steps,
        per_photo=args.per_photo, n_shapes=args.pairs, seed=args.seed, verbose=not args.quiet)
    print(f"wrote {args.out}/effect.json, pairs.csv, effect_vs_psnr.png, examples_*.png")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m probe.toy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

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
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    train.add_argument("--checkpoint", help="checkpoint path (default OUT/checkpoint.pt)")
    train.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (default 100)")

    evaluate = commands.add_parser("eval", help="zero-shot accuracy and centroid spread of a mini-CLIP")
    evaluate.add_argument("--model-dir", default=str(MINI_CLIP_DIR), help="model folder (default: the shipped one)")
    evaluate.add_argument("--per-class", type=int, default=20, help="held-out images per class (default 20)")

    effect = commands.add_parser("effect", help="the paper's effect: match fixed pairs, round to 8 bits, classify")
    effect.add_argument("--out", required=True, help="output folder")
    effect.add_argument("--model", default="mini-clip",
                        help="model spec or preset with a text tower (default mini-clip)")
    effect.add_argument("--sets", default="photos,shapes", help="pair sets: photos, shapes or both (default both)")
    effect.add_argument("--psnr", type=float_list, default=[35.0],
                        help="PSNR floors in dB, comma-separated; one matching run per floor, example figures at the "
                             "first (default 35)")
    effect.add_argument("--steps", type=int, default=300, help="matching steps (default 300)")
    effect.add_argument("--per-photo", type=int, default=5, help="target classes per photo (default 5)")
    effect.add_argument("--pairs", type=int, default=40, help="pairs in the shapes set (default 40)")
    effect.add_argument("--seed", type=int, default=0, help="seed for the pair choice and matching (default 0)")
    effect.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    effect.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


if __name__ == "__main__":
    sys.exit(main())
