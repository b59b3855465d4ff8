"""Arguments, checks and the save-and-print ending shared by the CLI commands."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from probe.cli.progress import Bars
from probe.errors import ProbeError


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
    from probe.results import save

    if progress is not None:
        progress.close()
    summary = save(result, out)
    print(result.headline())
    if result.cancelled:
        print(f"interrupted: the partial result (marked cancelled) is in {summary}", file=sys.stderr)
        return 130
    print(f"wrote {out}/ ({summary.name} last)")
    return 0
