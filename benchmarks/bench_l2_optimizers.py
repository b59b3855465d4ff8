"""Which update rule takes matched images to their target's class under an RMS (L2) pixel budget?

Runs `probe.experiments.effects.measure` on the shipped mini-CLIP's two fixed pair sets (9 photos x 5 target classes;
40 generated shape pairs) at one PSNR floor, once per optimiser, same steps and seed, and writes a table:
share of pairs whose 8-bit matched image is classified as the target's class, mean target probability,
mean cosine to the target embedding, seconds. Usage:

    .venv/bin/python benchmarks/bench_l2_optimizers.py [--psnr 35] [--steps 300] [--device cpu]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from probe.experiments.effects import measure
from probe.files import write_bytes, write_json
from probe.metrics import psnr_to_rms
from probe.models import load_encoder
from probe.results import provenance
from probe.toy.data import class_names
from probe.toy.effect import photo_pairs, shape_pairs

OPTIMIZERS = ("normalized", "adam", "sign")
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--psnr", type=float, default=35.0, help="PSNR floor in dB (default 35)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    encoder = load_encoder("mini-clip", device=args.device)
    budget = psnr_to_rms(args.psnr)
    rows = []
    for pair_set in (photo_pairs(encoder), shape_pairs(encoder)):
        for optimizer in OPTIMIZERS:
            start = time.perf_counter()
            (outcome,) = measure(encoder, pair_set, class_names(), [budget], steps=args.steps, optimizer=optimizer)
            rows.append({"set": pair_set.name, "pairs": len(pair_set.target_classes), "optimizer": optimizer,
                         "lr": outcome["settings"]["lr"], "target_top1": outcome["target_top1"],
                         "target_probability_mean": outcome["target_probability_mean"],
                         "cos_to_target_mean": outcome["cos_to_target_mean"], "psnr_db_min": outcome["psnr_db_min"],
                         "seconds": time.perf_counter() - start})
            print(rows[-1], flush=True)
    table = [f"L2 (RMS {budget * 255:.2f}/255, PSNR floor {args.psnr} dB) matching on mini-CLIP, {args.steps} steps, "
             f"cosine loss, 8-bit rounded, device {args.device}", "",
             "| set | optimiser | lr (x 1/255; normalized: RMS per step, others: per pixel) | target top-1 "
             "| mean target prob. | mean cos to target | min PSNR (dB) | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['set']} ({r['pairs']}) | {r['optimizer']} | {r['lr'] * 255:.2f}/255 | {r['target_top1']:.1%} | "
              f"{r['target_probability_mean']:.3f} | {r['cos_to_target_mean']:.3f} | {r['psnr_db_min']:.2f} | "
              f"{r['seconds']:.0f} |" for r in rows]
    text = "\n".join(table) + "\n"
    print(text)
    write_bytes(RESULTS / "l2_optimizers.md", text.encode())
    write_json(RESULTS / "l2_optimizers.json", provenance(model=encoder.spec, weights=encoder.weights,
                                                         psnr_floor_db=args.psnr, steps=args.steps, rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
