"""`python -m probe match`: make a source image take on a target image's embedding.

Writes DIR/matched.png, DIR/source.png (the source at the same resolution), DIR/diff_x50.png (the paper's
amplified difference), DIR/trace.csv (every step), DIR/curves.png (+ .json), with --labels the zero-shot reading
before and after (in the summary), with --reference the PCA view (DIR/pca_bars.png), and DIR/summary.json
(written last: its presence means the run finished). Every setting is declared once in `probe.matching`; a
model's own defaults (e.g. the mini-CLIP's) apply unless an option says otherwise.
"""
from __future__ import annotations

import argparse

from probe import experiments
from probe.cli.common import (add_model_args, add_out_arg, bars, check_out_dir, existing_file, finish,
                              load_encoder_from_args, model_spec)
from probe.errors import ProbeError
from probe.images import load_image
from probe.matching import MODE, MODES, settings_for
from probe.models import defaults_for, presets
from probe.params import add_options, given, params_of
from probe.zeroshot import parse_labels


def settings_options(parser: argparse.ArgumentParser, skip=()) -> None:
    """--mode and every matching setting of both modes (their defaults per mode and per model in the help)."""
    parser.add_argument("--mode", type=MODE.check, default=None, help=MODE.describe())
    declared = {name: param for cls in MODES.values() for name, param in params_of(cls).items()}
    defaults = {}
    for name in declared:
        per_mode = [f"{mode} {params_of(cls)[name].default:.4g}" if isinstance(params_of(cls)[name].default, float)
                    else f"{mode} {params_of(cls)[name].default}" for mode, cls in MODES.items()
                    if name in params_of(cls)]
        per_model = [f"{model} ({mode}) {value}" for model, preset in presets().items()
                     for mode, values in preset.defaults.items() for key, value in values.items() if key == name]
        defaults[name] = ", ".join(per_mode + per_model)
    add_options(parser, declared.values(), defaults, skip=skip)


def settings_from_args(args: argparse.Namespace):
    """The settings the options ask for, over the model's own defaults for the mode."""
    mode = args.mode or "fast"
    declared = params_of(MODES[mode])
    others = {name for cls in MODES.values() for name in params_of(cls)} - set(declared)
    wrong = sorted(name for name in others if getattr(args, name, None) is not None)
    if wrong:
        raise ProbeError(f"--{wrong[0].replace('_', '-')} is for --mode {'fast' if mode == 'paper' else 'paper'}; "
                         f"the {mode} mode has no such setting")
    return settings_for(mode, defaults_for(model_spec(args), mode), **given(args, declared.values()))


def register(subparsers) -> None:
    p = subparsers.add_parser("match", help="match a source image's embedding to a target image's",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--source", required=True, type=existing_file, help="image to change")
    p.add_argument("--target", required=True, type=existing_file, help="image whose embedding to take on")
    add_out_arg(p)
    settings_options(p)
    p.add_argument("--labels", help="comma-separated class names: the zero-shot reading of the source and of the "
                                    "matched picture read back (models with a text tower)")
    p.add_argument("--reference", nargs="+", type=existing_file, metavar="IMG",
                   help="images whose embeddings' principal components show source, target and matched (Fig 1)")
    p.set_defaults(func=run_match)


def run_match(args) -> int:
    settings = settings_from_args(args)
    labels = parse_labels(args.labels, []) if args.labels else None
    load_image(args.source), load_image(args.target)  # unreadable files fail before anything else
    out = check_out_dir(args.out)
    encoder = load_encoder_from_args(args)
    progress = bars(args)
    result = experiments.match(encoder, args.source, args.target, settings, classes=labels,
                               reference=args.reference, seed=args.seed, progress=progress)
    return finish(result, out, progress)
