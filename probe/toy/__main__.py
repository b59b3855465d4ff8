"""Command line for the mini-CLIP: ``python -m probe.toy {train,eval}``."""

from __future__ import annotations

import argparse
import sys

from probe.toy import MINI_CLIP_DIR


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            from probe.toy.train import train

            train(args.out, seed=args.seed, steps=args.steps, batch=args.batch, lr=args.lr,
                  threads=args.threads, resume=args.resume, checkpoint=args.checkpoint,
                  checkpoint_every=args.checkpoint_every)
        else:
            _print_eval(args.model_dir, args.per_class)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m probe.toy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a mini-CLIP into an OpenCLIP Hub-layout folder")
    train.add_argument("--out", required=True, help="output folder for open_clip_config.json + weights")
    train.add_argument("--seed", type=int, default=0, help="seed for weights and data (default 0)")
    train.add_argument("--steps", type=int, default=3000, help="optimisation steps (default 3000)")
    train.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    train.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    train.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    train.add_argument("--checkpoint", help="checkpoint path (default OUT/checkpoint.pt)")
    train.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (default 100)")

    evaluate = commands.add_parser("eval", help="zero-shot accuracy and centroid spread of a mini-CLIP")
    evaluate.add_argument("--model-dir", default=str(MINI_CLIP_DIR), help="model folder (default: the shipped one)")
    evaluate.add_argument("--per-class", type=int, default=20, help="held-out images per class (default 20)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
