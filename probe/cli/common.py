"""Arguments and checks shared by the CLI commands."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from probe.errors import ProbeError


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="model spec BACKEND:NAME[@WEIGHTS] or preset (see `python -m probe models`); "
                             "default: the shipped mini-clip (offline), or tiny where it is absent")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="forward-pass precision; input gradients stay float32")
    parser.add_argument("--seed", type=int, default=0, help="random seed (recorded in the outputs)")


def load_encoder_from_args(args: argparse.Namespace):
    """Load --model (or the offline default) and say which weights it holds."""
    from probe.models import default_spec, load_encoder

    encoder = load_encoder(args.model or default_spec(), device=args.device, dtype=args.dtype)
    note = " (random weights: the mechanics, not a trained model's meaning)" if encoder.weights.startswith(
        "random") else ""
    print(f"model {encoder.spec}, weights {encoder.weights}{note}", file=sys.stderr)
    return encoder


def positive(kind: type, name: str):
    """argparse type: a number > 0, with a message naming the option."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{name} must be > 0, got {text}")
        return value
    return parse


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return path


def float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def prepare_out_dir(path: str | Path) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ProbeError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out
