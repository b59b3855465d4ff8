"""Arguments, checks and the save-and-print ending shared by the CLI commands."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from probe.errors import ProbeError
from probe.models import ENCODERS, default_spec
from probe.results import save
from probe.terminal import Bars


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="model spec BACKEND:NAME[@WEIGHTS] or preset (see `python -m probe models`); "
                             "default: the shipped mini-clip (offline), or tiny where it is absent")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="forward-pass precision; input gradients stay float32")
    parser.add_argument("--seed", type=int, default=0, help="random seed (recorded in the outputs)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_out_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (created when the results are ready)")


def model_spec(args: argparse.Namespace) -> str:
    return args.model or default_spec()


def load_encoder_from_args(args: argparse.Namespace):
    """Load --model (or the offline default) and say which weights it holds."""
    encoder = ENCODERS.get(model_spec(args), device=args.device, dtype=args.dtype)
    note = " (random weights: the mechanics, not a trained model's meaning)" if encoder.weights.startswith(
        "random") else ""
    print(f"model {encoder.spec}, weights {encoder.weights}{note}", file=sys.stderr)
    return encoder


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return path


def check_out_dir(path: str | Path) -> Path:
    """The output folder, checked but not created: a failed run leaves nothing behind."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ProbeError(f"--out {out} exists and is not a folder")
    return out


def bars(args: argparse.Namespace) -> Bars:
    return Bars(enabled=not args.quiet)


def finish(result, out: Path, progress: Bars | None = None) -> int:
    """Save a result (`probe.results.save`), print its headline and where it went; 130 when it was cancelled."""
    if progress is not None:
        progress.close()
    summary = save(result, out)
    print(result.headline())
    if result.cancelled:
        print(f"interrupted: the partial result (marked cancelled) is in {summary}", file=sys.stderr)
        return 130
    print(f"wrote {out}/ ({summary.name} last)")
    return 0
