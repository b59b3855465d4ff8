"""`python -m probe COMMAND ...`: parse arguments, call the library, write results. No science here.

Each command lives in its own module with `register(subparsers)`, which adds a parser whose
`func(args) -> int` parses and checks its arguments, calls one `probe.experiments` function, saves the result
and prints one line. User errors (ProbeError) print one line and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from probe.errors import ProbeError

COMMAND_MODULES = (
    "probe.cli.models_cmd",
    "probe.cli.match_cmd",
    "probe.cli.geometry_cmd",
    "probe.cli.classify_cmd",
    "probe.cli.systematic_cmd",
    "probe.cli.toy_cmd",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m probe", description="Probe the embedding spaces of vision transformers.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ProbeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was left (files are written whole or not at all)", file=sys.stderr)
        return 130
