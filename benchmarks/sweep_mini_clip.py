"""Which mini-CLIP training recipe shows the paper's effect? One training per recipe variant, then its accuracy
and the effect on the two fixed pair sets of `probe.toy.effect`.

Each variant changes a few knobs of the recipe (model config, data generator, weight decay, seed) against
the baseline it lists, trains 3000 steps (`probe.toy.train.train`, data generated in the training process),
then measures zero-shot accuracy (`probe.toy.quality.model_quality`) and the share of pairs whose 8-bit matched
image takes the target's class at PSNR floors 35 and 40 dB (300 steps). Both use the generator with opaque
shapes, so every variant is scored on the same held-out images and the same shape pairs (`python -m
probe effect` uses the current generator, faint shapes included, so its shapes numbers differ). Variants run in parallel processes, one CPU
thread each; on a GPU a variant takes ~5 min (bound by data generation). Usage:

    python benchmarks/sweep_mini_clip.py --device cuda [--variants base,faint3_p4] [--jobs 14] [--out DIR]
    python benchmarks/sweep_mini_clip.py --render      # rewrite mini_clip_sweep.md from mini_clip_sweep.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# The recipe before this sweep: patch 8, opaque shapes (OPACITY (1, 1)), min. contrast 90, weight decay 0.1.
BASE = {"patch_size": 8, "opacity": 1.0}
VARIANTS = {
    "base": {}, "base_s1": {"seed": 1}, "wd0": {"wd": 0.0}, "p4": {"patch_size": 4}, "w128": {"width": 128},
    "faint3": {"opacity": 0.3}, "faint15": {"opacity": 0.15}, "lowc40": {"min_contrast": 40},
    "faint3_lowc40": {"opacity": 0.3, "min_contrast": 40}, "faint3_p4": {"opacity": 0.3, "patch_size": 4},
    "faint3_wd0": {"opacity": 0.3, "wd": 0.0}, "nonoise": {"no_noisy_background": True},
    "p4_wd0": {"patch_size": 4, "wd": 0.0},
    "faint3_p4_w128_wd0": {"opacity": 0.3, "patch_size": 4, "width": 128, "wd": 0.0},
}
FLOORS_DB = (35.0, 40.0)


def run_variant(name: str, device: str, out_root: Path, steps: int = 3000, effect_steps: int = 300) -> dict:
    """Set the variant's knobs on the modules, train, evaluate; returns one result row."""
    import torch

    from probe.toy import data, model
    from probe.toy.train import train

    knobs = {**BASE, **VARIANTS[name]}
    torch.set_num_threads(1)
    backgrounds = data.BACKGROUNDS
    data.OPACITY = (knobs["opacity"], 1.0)
    data._MIN_CONTRAST = knobs.get("min_contrast", data._MIN_CONTRAST)
    if knobs.get("no_noisy_background"):
        data.BACKGROUNDS = tuple(b for b in data.BACKGROUNDS if b != "noisy")
    for key in ("patch_size", "width"):
        if key in knobs:
            model.MODEL_CFG["vision_cfg"][key] = knobs[key]
    out = out_root / name
    start = time.monotonic()
    train(out, seed=knobs.get("seed", 0), steps=steps, weight_decay=knobs.get("wd", 0.1), device=device,
          checkpoint_every=10**6)
    train_s = time.monotonic() - start

    from probe.models import load_encoder
    from probe.toy.effect import measure, photo_pairs, psnr_to_rms, shape_pairs
    from probe.toy.quality import model_quality

    data.OPACITY, data._MIN_CONTRAST, data.BACKGROUNDS = (1.0, 1.0), 90.0, backgrounds
    row = {"name": name, "knobs": knobs, "train_s": train_s, **model_quality(out)}
    encoder = load_encoder(f"openclip:local-dir:{out}", device=device)
    for pairs in (photo_pairs(encoder), shape_pairs(encoder)):
        runs = measure(encoder, pairs, [psnr_to_rms(db) for db in FLOORS_DB], steps=effect_steps)
        row[pairs.name] = [{"psnr_floor_db": db, "target_top1": r["target_top1"],
                            "target_probability_mean": r["target_probability_mean"]} for db, r in zip(FLOORS_DB, runs)]
    return row


def run_all(names: list[str], args) -> list[dict]:
    """Run every variant in its own process, ``args.jobs`` at a time; stop them all if one fails."""
    rows, running = [], []
    try:
        for name in names + [None] * args.jobs:
            while len(running) >= args.jobs or (name is None and running):
                variant, proc = running.pop(0)
                out, _ = proc.communicate()
                if proc.returncode != 0:
                    raise SystemExit(f"variant {variant} failed (exit {proc.returncode}); see its output above")
                rows.append(json.loads(out.strip().splitlines()[-1]))
                print(f"{variant}: done", file=sys.stderr, flush=True)
            if name:
                command = [sys.executable, __file__, "--variant", name, "--device", args.device, "--out", args.out,
                           "--steps", str(args.steps), "--effect-steps", str(args.effect_steps)]
                running.append((name, subprocess.Popen(command, stdout=subprocess.PIPE, text=True)))
    finally:
        for _, proc in running:
            proc.kill()
    return rows


def markdown(record: dict) -> str:
    lines = [f"# mini-CLIP recipe sweep ({record['device']})", "", record["note"], "",
             f"Command: `{record['command']}`", "",
             "| variant | changes | held-out top-1 | plain top-1 | photos 35 dB | shapes 35 dB | photos 40 dB "
             "| shapes 40 dB |", "|---|---|---|---|---|---|---|---|"]
    rows = sorted(record["rows"], key=lambda r: -min(r["photos"][0]["target_top1"], r["shapes"][0]["target_top1"]))
    for r in rows:
        changes = ", ".join(f"{k} {v}" for k, v in VARIANTS[r["name"]].items()) or "(baseline)"
        cells = [f"{r[s][i]['target_top1']:.1%}" for i in (0, 1) for s in ("photos", "shapes")]
        lines.append(f"| {r['name']} | {changes} | {r['heldout_accuracy']:.1%} | {r['plain_accuracy']:.1%} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--jobs", type=int, default=len(VARIANTS), help="variants trained at once")
    parser.add_argument("--out", default="/tmp/mini_clip_sweep", help="folder for the trained variants")
    parser.add_argument("--note", default="", help="a line stored with the run")
    parser.add_argument("--steps", type=int, default=3000, help="training steps per variant (default 3000)")
    parser.add_argument("--effect-steps", type=int, default=300, help="matching steps (default 300)")
    parser.add_argument("--render", action="store_true")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from probe.results import provenance, write_bytes, write_json

    if args.variant:
        print(json.dumps(run_variant(args.variant, args.device, Path(args.out), args.steps, args.effect_steps)))
        return 0
    if not args.render:
        names = [n.strip() for n in args.variants.split(",")]
        unknown = sorted(set(names) - set(VARIANTS))
        if unknown:
            parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
        if args.jobs < 1:
            parser.error("--jobs must be >= 1")
        existing = [n for n in names if (Path(args.out) / n).exists()]
        if existing:
            parser.error(f"{args.out} already holds {existing}; remove them or pass another --out")
        rows = run_all(names, args)
        import torch

        device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
        write_json(RESULTS / "mini_clip_sweep.json",
                   provenance(device=device, note=args.note, command=" ".join(sys.argv), rows=rows))
    if not (RESULTS / "mini_clip_sweep.json").is_file():
        parser.error(f"no {RESULTS / 'mini_clip_sweep.json'} to render; run the sweep first")
    record = json.loads((RESULTS / "mini_clip_sweep.json").read_text())
    text = markdown(record)
    write_bytes(RESULTS / "mini_clip_sweep.md", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
