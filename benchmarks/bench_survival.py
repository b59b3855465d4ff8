"""Do matches survive what the web does to a picture? Plain fast matching against transformation-aware matching
(`survive`), on the same pairs, in one run.

The shipped mini-CLIP, fast mode at each picture's own resolution, L-inf 8/255, the model's defaults otherwise
(the visitor's defaults). Pairs: independently drawn shapes (`probe.toy.effect.drawn_pairs`, half at 64 px and
half at 224 px) and the bundled photos at 224 px matched to plain drawings (`photo_drawing_pairs`). Each matched
picture is saved and read back through Pillow (`probe.readback`: PNG; JPEG 95, 90, 75, 50; 0.5x and back up;
PNG -> JPEG 85 -> 0.75x, a screenshot posted online) and classified: the share read as the target's class (drawn
pairs over their 16 labels, photos over all 30 classes) and the mean cosine to the target embedding. The cost:
mean PSNR of the 8-bit results, seconds per step (same run, same machine) and, on the lossless PNG, how many steps
the transformation-aware run needs to reach the cosine plain matching ends at.

    python benchmarks/bench_survival.py [--survive jpeg,resize] [--pairs 24] [--per-photo 3] [--steps N]

Results: benchmarks/results/survival.json and survival.md (survival_<model>.* for another `--model`).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from probe.experiments.effects import read_as_target
from probe.files import write_bytes, write_json
from probe.images import from_pil
from probe.matching import match, settings_for
from probe.models import defaults_for, load_encoder
from probe.readback import READ_BACK, SHOWN, SURVIVAL
from probe.results import provenance
from probe.toy.data import class_names
from probe.toy.effect import drawn_pairs, label_sets, photo_drawing_pairs

RESULTS = Path(__file__).resolve().parent / "results"
CODECS = READ_BACK + SURVIVAL


def steps_to_reach(encoder, pairs, settings, goal: float) -> dict:
    """Median over pairs of the first step whose cosine to the target reaches `goal` (None: fewer than half do)."""
    firsts = []
    for size in sorted({p.source.size for p in pairs}):
        group = [p for p in pairs if p.source.size == size]
        batch = match(encoder, torch.stack([from_pil(p.source) for p in group]),
                      torch.stack([from_pil(p.target) for p in group]), settings)
        cos = batch.trace["cos_to_target"]                       # (steps + 1, n)
        reached = cos >= goal
        firsts += [int(reached[:, k].nonzero()[0]) if reached[:, k].any() else None for k in range(cos.shape[1])]
    known = sorted(f for f in firsts if f is not None)
    return {"median": known[len(known) // 2] if len(known) > len(firsts) / 2 else None,
            "reached": len(known), "pairs": len(firsts)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--survive", default="jpeg,resize", help="the transformations to survive (default jpeg,resize)")
    parser.add_argument("--pairs", type=int, default=24, help="drawn pairs (half at 64 px, half at 224 px)")
    parser.add_argument("--per-photo", type=int, default=3, help="target classes per bundled photo")
    parser.add_argument("--steps", type=int, default=None, help="steps for both (default: the model's defaults)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pairs and of the matching")
    parser.add_argument("--model", default="mini-clip")
    args = parser.parse_args()

    encoder = load_encoder(args.model)
    sets = {"drawn": (drawn_pairs(args.pairs, seed=args.seed), {"16 labels": label_sets()["16_labels"]}),
            "photos": (photo_drawing_pairs(args.per_photo, seed=args.seed), {"30 classes": class_names()})}
    options = {"steps": args.steps} if args.steps else {}
    methods = {"plain": settings_for("fast", defaults_for(encoder.spec, "fast"), **options),
               "survive": settings_for("fast", defaults_for(encoder.spec, "fast"), survive=args.survive, **options)}
    rows = []
    for set_name, (pairs, labels) in sets.items():
        for method, settings in methods.items():
            start = time.perf_counter()
            out = read_as_target(encoder, pairs, {k.replace(" ", "_"): v for k, v in labels.items()}, settings,
                                 seed=args.seed, codecs=CODECS)
            label = next(iter(labels)).replace(" ", "_")
            rows.append({"set": set_name, "method": method, "pairs": out["pairs"], "labels": next(iter(labels)),
                         "steps": settings.steps, "psnr_db_mean": out["psnr_db_mean"],
                         "seconds_per_step": out["seconds_per_step"], "seconds": time.perf_counter() - start,
                         "read_as_target": {c: out["survival"][c][f"target_top1_{label}"] for c in CODECS},
                         "cos_to_target": {c: out["survival"][c]["cos_to_target_mean"] for c in CODECS},
                         "settings": out["settings"], "rows": out["rows"]})
            print(f"{set_name} {method}: " + ", ".join(f"{SHOWN[c]} {rows[-1]['read_as_target'][c]:.0%}"
                                                        for c in CODECS), flush=True)
        plain = next(r for r in rows if r["set"] == set_name and r["method"] == "plain")
        goal = plain["cos_to_target"]["png"]
        rows[-1]["steps_to_plain_png_cosine"] = steps_to_reach(encoder, pairs, methods["survive"], goal)
        rows[-1]["plain_png_cosine"] = goal

    device = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    header = ["set (pairs)", "matching", *(SHOWN[c] for c in CODECS), "PSNR (dB)", "s / step"]
    table = [f"Share of matched pictures read as the target's class after each transformation (mean cosine to the "
             f"target below), {encoder.spec} ({encoder.weights}), fast mode, L-inf 8/255, steps "
             f"{', '.join(sorted({str(r['steps']) for r in rows}))}, seed {args.seed}; {device}.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [f"{r['read_as_target'][c]:.0%} ({r['cos_to_target'][c]:.3f})" for c in CODECS]
        name = "plain" if r["method"] == "plain" else f"survive {args.survive}"
        table.append(f"| {r['set']} ({r['pairs']}, {r['labels']}) | {name} | " + " | ".join(cells)
                     + f" | {r['psnr_db_mean']:.2f} | {r['seconds_per_step']:.3f} |")
    table += ["", "| set | time per step, survive / plain | steps (median) for survive to reach plain's final "
              "PNG cosine | pairs that reach it |", "|---|---|---|---|"]
    for set_name in sets:
        plain, survive = (next(r for r in rows if r["set"] == set_name and r["method"] == m) for m in methods)
        reach = survive["steps_to_plain_png_cosine"]
        table.append(f"| {set_name} | {survive['seconds_per_step'] / plain['seconds_per_step']:.2f}x | "
                     f"{reach['median'] if reach['median'] is not None else 'not reached'} "
                     f"(plain: {plain['steps']}, cos {survive['plain_png_cosine']:.3f}) | "
                     f"{reach['reached']}/{reach['pairs']} |")
    text = "\n".join(table) + "\n"
    print(text)
    stem = "survival" if args.model == "mini-clip" else f"survival_{args.model}"   # one table per model
    write_bytes(RESULTS / f"{stem}.md", text.encode())
    write_json(RESULTS / f"{stem}.json", provenance(model=encoder.spec, weights=encoder.weights, seed=args.seed,
                                                     survive=args.survive, device=device, rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
