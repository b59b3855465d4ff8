"""What a visitor gets on the mini-CLIP with its own defaults (`probe.models.defaults_for("mini-clip", "fast")`,
the one entry the CLI and the app share): how long a default match of a 224 px picture takes, and how often a
drawn shape matched to another drawn shape is read as the target; and the same match surviving JPEG and resizing
(`survive=("jpeg", "resize")`, issue 22's bar: within 20 s).

Timing: `probe.match` of a bundled photo (centre-cropped to 224 px) onto a plain drawing at 224 px, as the CLI
runs it: the model's defaults, the result read back through PNG and the web's codecs, classified zero-shot over
the 30 classes. One warm-up, then `--repeats` runs; the median is the number (the bar: within 10 s on 2 idle
cores), with the load average before and after. Effect: `probe.toy.effect.visitor_effect` on `--pairs` drawn
pairs of seed `--seed` (default 7, a seed the defaults were not chosen on).

    python benchmarks/bench_visitor.py [--threads 2] [--repeats 3] [--pairs 24] [--seed 7]

Results: benchmarks/results/visitor.json and visitor.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from probe.experiments.pairs import match
from probe.files import write_bytes, write_json
from probe.matching import FastSettings, settings_for
from probe.models import defaults_for, load_encoder
from probe.results import provenance
from probe.toy.data import class_names
from probe.toy.effect import photo_drawing_pairs, visitor_effect

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed matches (default 3)")
    parser.add_argument("--pairs", type=int, default=24, help="drawn pairs for the effect (default 24)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the drawn pairs (default 7)")
    args = parser.parse_args()
    if args.repeats < 1 or args.pairs < 2:
        parser.error("--repeats must be >= 1 and --pairs >= 2")

    torch.set_num_threads(args.threads)
    encoder = load_encoder("mini-clip")
    defaults = defaults_for("mini-clip", "fast")
    settings = settings_for("fast", defaults)
    pair = photo_drawing_pairs(1, side=224)[0]
    surviving = settings_for("fast", defaults, survive=("jpeg", "resize"))
    for warm in (FastSettings(steps=2), FastSettings(steps=2, survive=("jpeg", "resize"))):   # imports, caches
        match(encoder, pair.source, pair.target, warm, classes=class_names())
    load_before, seconds, steps_run = os.getloadavg()[0], {"plain": [], "survive": []}, {}
    for _ in range(args.repeats):
        for name, chosen in (("plain", settings), ("survive", surviving)):
            start = time.perf_counter()
            result = match(encoder, pair.source, pair.target, chosen, classes=class_names())
            seconds[name].append(time.perf_counter() - start)
            steps_run[name] = result.values["steps_run"]
    load_after = os.getloadavg()[0]
    effect = visitor_effect(encoder, args.pairs, seed=args.seed)

    device = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads"
    median = {name: statistics.median(times) for name, times in seconds.items()}
    own = ", ".join(f"{k} {v}" for k, v in defaults.items()) or "nothing of its own"
    lines = [f"The mini-CLIP's visitor defaults ({encoder.weights}): fast mode, {own}, over the library's "
             f"(L-inf 8/255, 8-bit PNG read back); {device}; load average {load_before:.1f} before, "
             f"{load_after:.1f} after the timed runs.", "",
             "| what | measured |", "|---|---|",
             *(f"| default match of a 224 px picture ({pair.source_label} -> {pair.target_label})"
               f"{', surviving jpeg, resize' if name == 'survive' else ''}, median of {args.repeats} | "
               f"{median[name]:.1f} s (runs {', '.join(f'{s:.1f}' for s in seconds[name])}; {steps_run[name]} of "
               f"{settings.steps} steps run) |"
               for name in seconds),
             f"| drawn pairs read as the target, 16 labels / all 30 classes ({effect['pairs']} pairs, seed "
             f"{args.seed}) | {effect['target_top1_16_labels']:.1%} / {effect['target_top1_all_classes']:.1%} |",
             f"| mean PSNR of those 8-bit results | {effect['psnr_db_mean']:.2f} dB |",
             f"| targets themselves misread (16 labels) | "
             f"{sum(r['target_read_as_16_labels'] != r['target'] for r in effect['rows'])} of {effect['pairs']} |"]
    text = "\n".join(lines) + "\n"
    print(text)
    write_bytes(RESULTS / "visitor.md", text.encode())
    write_json(RESULTS / "visitor.json", provenance(
        model=encoder.spec, weights=encoder.weights, defaults=defaults, settings=effect["settings"], device=device, load_before=load_before,
        load_after=load_after, match_seconds=seconds, steps=settings.steps, steps_run=steps_run,
        effect={k: v for k, v in effect.items() if k != "rows"}, rows=effect["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
