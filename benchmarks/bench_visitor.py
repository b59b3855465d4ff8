"""What a visitor gets on the mini-CLIPs with their own defaults (`probe.models.defaults_for(model, "fast")`, the one
entry the CLI and the app share): how long a default match of a 224 px picture takes, plain and surviving JPEG and
resizing (`survive=("jpeg", "resize")`), and how often a drawn shape matched to another drawn shape is read as the
target.

Timing: `probe.match` of a bundled photo (centre-cropped to 224 px) onto a plain drawing at 224 px, as the CLI
runs it: the model's defaults, the result read back through PNG and the web's codecs, classified zero-shot over
the 30 classes. One warm-up per mode, then `--repeats` runs; the median is the number (the bars: within 10 s on 2
idle cores, 20 s surviving), with the load average before and after. Effect: `probe.toy.effect.visitor_effect` on
`--pairs` drawn pairs of seed `--seed` (default 7, a seed the defaults were not chosen on).

    python benchmarks/bench_visitor.py [--models mini-clip,mini-clip-drawn] [--threads 2] [--repeats 3] [--pairs 24]

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
SURVIVE = ("jpeg", "resize")


def measure(model: str, pair, repeats: int, pairs: int, seed: int) -> dict:
    """One model's row: match times (plain, surviving), steps run, and the drawn-pair effect."""
    encoder = load_encoder(model)
    defaults = defaults_for(model, "fast")
    modes = {"plain": settings_for("fast", defaults), "survive": settings_for("fast", defaults, survive=SURVIVE)}
    for warm in (FastSettings(steps=2), FastSettings(steps=2, survive=SURVIVE)):   # imports, caches
        match(encoder, pair.source, pair.target, warm, classes=class_names())
    load_before, seconds, steps_run = os.getloadavg()[0], {name: [] for name in modes}, {}
    for _ in range(repeats):
        for name, settings in modes.items():
            start = time.perf_counter()
            result = match(encoder, pair.source, pair.target, settings, classes=class_names())
            seconds[name].append(time.perf_counter() - start)
            steps_run[name] = result.values["steps_run"]
    load_after = os.getloadavg()[0]
    effect = visitor_effect(encoder, pairs, seed=seed)
    return {"model": model, "weights": encoder.weights, "defaults": defaults, "steps": modes["plain"].steps,
            "match_seconds": seconds, "median_seconds": {k: statistics.median(v) for k, v in seconds.items()},
            "steps_run": steps_run, "load_before": load_before, "load_after": load_after,
            "effect": {k: v for k, v in effect.items() if k != "rows"},
            "targets_misread": sum(r["target_read_as_16_labels"] != r["target"] for r in effect["rows"]),
            "rows": effect["rows"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mini-clip,mini-clip-drawn", help="comma-separated mini-CLIP presets")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed matches per mode (default 3)")
    parser.add_argument("--pairs", type=int, default=24, help="drawn pairs for the effect (default 24)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the drawn pairs (default 7)")
    args = parser.parse_args()
    if args.repeats < 1 or args.pairs < 2:
        parser.error("--repeats must be >= 1 and --pairs >= 2")

    torch.set_num_threads(args.threads)
    pair = photo_drawing_pairs(1, side=224)[0]
    rows = [measure(m.strip(), pair, args.repeats, args.pairs, args.seed) for m in args.models.split(",") if m.strip()]
    device = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads"
    lines = [f"A visitor's default match: fast mode, L-inf 8/255, 8-bit PNG read back, each model's own defaults; "
             f"{pair.source_label} -> {pair.target_label} at 224 px, median of {args.repeats}; drawn pairs: "
             f"{args.pairs}, seed {args.seed}, read over the 16 drawn labels / all 30 classes; {device}.", "",
             "| model (weights) | own defaults | match, plain | match, surviving jpeg + resize | drawn pairs read as the "
             "target | mean PSNR | targets misread | load before / after |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        own = ", ".join(f"{k} {v}" for k, v in r["defaults"].items()) or "none"
        times = {k: f"{r['median_seconds'][k]:.1f} s ({r['steps_run'][k]} of {r['steps']} steps)" for k in r["steps_run"]}
        e = r["effect"]
        lines.append(f"| {r['model']} ({r['weights']}) | {own} | {times['plain']} | {times['survive']} | "
                     f"{e['target_top1_16_labels']:.1%} / {e['target_top1_all_classes']:.1%} | "
                     f"{e['psnr_db_mean']:.2f} dB | {r['targets_misread']} of {e['pairs']} | "
                     f"{r['load_before']:.1f} / {r['load_after']:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_bytes(RESULTS / "visitor.md", text.encode())
    write_json(RESULTS / "visitor.json", provenance(device=device, seed=args.seed, rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
