"""Throughput of the systematic evaluation (`probe.evaluate.match_pairs`, what every shard of a repro sweep
runs): pairs per second, at batch sizes and torch thread counts, for the quick profile on the CPU and for
ViT-B-32 / ViT-H-14 on a GPU.

Each configuration matches `--pairs` pairs of the quick profile's sweep set (generated mini-CLIP shapes, 10
classes) for exactly `--steps` steps (a stopping rule that never triggers, so every configuration does the same
work), after one warm-up batch; pairs/s = pairs / wall seconds, pair-steps/s = pairs x steps / wall seconds.
The CPU part uses the quick profile's fast settings on the mini-CLIP (64 px). The GPU part (`--device cuda`)
uses the same settings at 224 px on OpenCLIP ViT-B-32 and ViT-H-14 with random weights (the same arithmetic
as the pretrained ones, offline), at batch 1 and at the largest batch that fits (doubled until CUDA runs out
of memory); it runs only on a machine with a CUDA GPU.

    python benchmarks/bench_sweep.py [--device cpu] [--batches 1,4,8,16] [--threads 1,2] [--steps 60] [--pairs 16]
    python benchmarks/bench_sweep.py --threads 2 --batches 8 --pairs 8 --append    # add rows to the saved table
    python benchmarks/bench_sweep.py --render                                       # rewrite sweep.md
    python benchmarks/bench_sweep.py --device cuda [--models openclip:ViT-B-32@random,openclip:ViT-H-14@random]

Prints a markdown table and writes OUT/sweep.json (one entry per device kind, the others kept) and
OUT/sweep.md, with machine, versions, load average and command.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from probe import experiments
from probe.data import Pairs
from probe.evaluate import match_pairs
from probe.matching import settings_from_dict
from probe.models import load_encoder
from probe.files import write_bytes, write_json
from probe.results import package_versions
from repro import data
from repro.engines import torch_threads
from repro.profiles.quick import FAST, SWEEP_CLASSES

ROOT = Path(__file__).resolve().parents[1]
GPU_MODELS = "openclip:ViT-B-32@random,openclip:ViT-H-14@random"


def sweep_inputs(encoder, pairs: int):
    """The quick sweep set at the model's input size, and the first `pairs` of its all-pairs list."""
    image_set = data.load("toy:shapes:" + ",".join(SWEEP_CLASSES))
    settings = replace(settings_from_dict(FAST), rel_l2_below=1e-12)   # never stops early: fixed work
    plan = experiments.plan_systematic(encoder, image_set, settings)
    cut = Pairs(plan.pairs.sources[:pairs], plan.pairs.targets[:pairs], plan.pairs.rule)
    return plan, cut


def timed(encoder, plan, pairs: Pairs, settings, batch: int) -> float:
    sync = torch.cuda.synchronize if encoder.device.type == "cuda" else (lambda: None)
    warm = Pairs(pairs.sources[:batch], pairs.targets[:batch], pairs.rule)
    match_pairs(encoder, plan.head, plan.images, warm, settings, batch_size=batch)
    sync()
    start = time.perf_counter()
    match_pairs(encoder, plan.head, plan.images, pairs, settings, batch_size=batch)
    sync()
    return time.perf_counter() - start


def largest_batch(encoder, plan, settings, limit: int = 1024) -> int:
    """The largest power-of-two batch whose matching step fits in GPU memory."""
    batch, fits = 1, 1
    while batch <= limit:
        pairs = Pairs(tuple([0] * batch), tuple([1] * batch), "probe")
        try:
            match_pairs(encoder, plan.head, plan.images, pairs, replace(settings, steps=2), batch_size=batch)
            fits, batch = batch, batch * 2
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
    return fits


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", help=f"model specs (default: mini-clip on the CPU, {GPU_MODELS} on CUDA)")
    p.add_argument("--batches", default="1,4,8,16", help="CPU batch sizes (on CUDA: 1 and the largest that fits)")
    p.add_argument("--threads", default="1,2", help="torch thread counts (CPU)")
    p.add_argument("--steps", type=int, default=60, help="matching steps per pair (the quick profile's 60)")
    p.add_argument("--pairs", type=int, default=16, help="pairs timed per configuration")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--append", action="store_true", help="add the rows to this device's saved entry (e.g. a "
                                                         "2-thread run measured on its own)")
    p.add_argument("--render", action="store_true", help="only rewrite OUT/sweep.md from OUT/sweep.json")
    args = p.parse_args()
    if args.render:
        saved = json.loads((Path(args.out) / "sweep.json").read_text())
        write_bytes(Path(args.out) / "sweep.md", render(saved).encode())
        return 0
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device on this machine (the GPU part needs one)")
    models = (args.models or (GPU_MODELS if cuda else "mini-clip")).split(",")
    threads = [torch.get_num_threads()] if cuda else [int(t) for t in args.threads.split(",")]
    load_before = os.getloadavg()
    rows = []
    for spec in models:
        encoder = load_encoder(spec, device=args.device)
        plan, pairs = sweep_inputs(encoder, args.pairs)
        settings = replace(plan.settings, steps=args.steps)
        batches = ([1, largest_batch(encoder, plan, settings)] if cuda
                   else [int(b) for b in args.batches.split(",")])
        for count in threads:
            for batch in batches:
                work = pairs if batch <= len(pairs) else Pairs(tuple(pairs.sources * (batch // len(pairs) + 1))[:batch],
                                                              tuple(pairs.targets * (batch // len(pairs) + 1))[:batch],
                                                              pairs.rule)
                with torch_threads(count):
                    seconds = timed(encoder, plan, work, settings, batch)
                rows.append({"model": spec, "input": f"{encoder.input_size[0]} px", "threads": count, "batch": batch,
                             "pairs": len(work), "steps": args.steps, "seconds": seconds,
                             "pairs_per_s": len(work) / seconds, "pair_steps_per_s": len(work) * args.steps / seconds})
                print(f"{spec} threads {count} batch {batch}: {rows[-1]['pairs_per_s']:.3f} pairs/s "
                      f"({rows[-1]['pair_steps_per_s']:.1f} pair-steps/s)", file=sys.stderr, flush=True)
    kind = "cuda" if cuda else "cpu"
    entry = {"device": torch.cuda.get_device_name(0) if cuda else f"{platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores", "load_average_before": load_before, "load_average_after": os.getloadavg(),
             "versions": package_versions(), "command": " ".join(shlex.quote(a) for a in sys.argv),
             "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rows": rows}
    out = Path(args.out)
    path = out / "sweep.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if args.append and kind in saved:
        entry = {**saved[kind], "rows": saved[kind]["rows"] + rows,
                 "command": saved[kind]["command"] + "; then " + entry["command"],
                 "load_average_after": entry["load_average_after"]}
    saved[kind] = entry
    write_json(path, saved)
    table = render(saved)
    write_bytes(out / "sweep.md", table.encode())
    print(table)
    return 0


def _load(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def render(saved: dict) -> str:
    lines = ["# Sweep throughput (`benchmarks/bench_sweep.py`)", ""]
    for kind, entry in saved.items():
        lines += [f"## {kind}: {entry['device']}", "",
                  f"Load average before / after (1, 5, 15 min): {_load(entry['load_average_before'])} / "
                  f"{_load(entry['load_average_after'])} (a shared machine: other jobs ran beside it); "
                  f"`{entry['command']}`; torch {entry['versions'].get('torch')}; {entry['created']}", "",
                  "| model | input | torch threads | batch | pairs | steps | seconds | pairs/s | pair-steps/s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['input']} | {r['threads']} | {r['batch']} | {r['pairs']} | {r['steps']} | "
                  f"{r['seconds']:.1f} | {r['pairs_per_s']:.3f} | {r['pair_steps_per_s']:.1f} |" for r in entry["rows"]]
        lines.append("")
    if "cuda" not in saved:
        lines += ["No GPU entry yet: the GPU part (`--device cuda`: ViT-B-32 and ViT-H-14 at batch 1 and the largest "
                  "batch that fits) runs only on a machine with a CUDA GPU.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
