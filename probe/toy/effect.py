"""The paper's effect on the mini-CLIP: a picture takes on another class's embedding and looks unchanged.

Two fixed pair sets, both offline:

* ``photos``: the nine colour photographs that ship with scikit-image and matplotlib, each matched to the
  plain drawing (``draw_plain_shape``) of ``per_photo`` target classes drawn with a seeded generator;
* ``shapes``: generated held-out images (one per class), ``n`` ordered pairs of different classes.

Each source is matched to its target's embedding under a root-mean-square pixel budget (fast mode, cosine
loss, normalised-gradient steps), rounded to 8 bits as a saved PNG would be, then classified zero-shot with
the model's own text head over all classes. A pair succeeds when the target's class is top-1. PSNR is measured
between the rounded matched image and the source at the model's input resolution. One call sweeps several
budgets; ``psnr_to_rms`` turns a PSNR floor into the budget that lands each rounded image just above it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF

from probe.errors import ProbeError
from probe.images import load_image, quantize
from probe.matching import match
from probe.metrics import psnr
from probe.toy.data import EVAL_SEED, class_names, draw_plain_shape, generate_samples
from probe.zeroshot import text_head, vision_text_matrix

SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
                  "motorcycle_left.png", "retina.jpg", "rocket.jpg")
MATPLOTLIB_PHOTOS = ("grace_hopper.jpg",)
PAIR_SETS = ("photos", "shapes")


@dataclass
class PairSet:
    """Sources and targets at the model's input size, with what each row is."""

    name: str
    sources: torch.Tensor        # (N,3,h,w) [0,1]
    targets: torch.Tensor        # (N,3,h,w) [0,1]
    target_classes: list[int]
    source_names: list[str]      # file name, or the source's class for generated images


def photo_paths() -> list[Path]:
    """The shipped colour photographs (scikit-image's data folder and matplotlib's sample data)."""
    import matplotlib
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    samples = Path(matplotlib.get_data_path()) / "sample_data"
    paths = [folder / name for name in SKIMAGE_PHOTOS] + [samples / name for name in MATPLOTLIB_PHOTOS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ProbeError(f"photos missing from the installed packages: {missing}")
    return paths


def photo_pairs(encoder, per_photo: int = 5, seed: int = 0) -> PairSet:
    """Every photo x ``per_photo`` distinct target classes (seeded); targets are plain drawings.
    Photos are brought to the model's input by the encoder's own resize and centre crop."""
    names = class_names()
    if not 1 <= per_photo <= len(names):
        raise ProbeError(f"per_photo must be in [1, {len(names)}], got {per_photo}")
    side = encoder.input_size[0]
    rng = np.random.default_rng(seed)
    sources, targets, classes, source_names = [], [], [], []
    for path in photo_paths():
        photo = encoder.to_model_input(load_image(path)[None].to(encoder.device))[0].clamp(0, 1).cpu()
        for target in rng.choice(len(names), per_photo, replace=False).tolist():
            sources.append(photo)
            targets.append(_plain_drawing(names[target], side))
            classes.append(target)
            source_names.append(path.name)
    return PairSet("photos", torch.stack(sources), torch.stack(targets), classes, source_names)


def shape_pairs(encoder, n: int = 40, seed: int = 0) -> PairSet:
    """``n`` ordered pairs of different classes over one held-out generated image per class."""
    names = class_names()
    if n < 1:
        raise ProbeError(f"n must be >= 1, got {n}")
    side = encoder.input_size[0]
    images = [TF.to_tensor(s.image) for s in generate_samples(len(names), EVAL_SEED + seed, image_size=side,
                                                              balanced=True)]
    rng = np.random.default_rng(seed)
    pairs = [tuple(rng.choice(len(names), 2, replace=False).tolist()) for _ in range(n)]
    return PairSet("shapes", torch.stack([images[a] for a, _ in pairs]), torch.stack([images[b] for _, b in pairs]),
                   [b for _, b in pairs], [names[a] for a, _ in pairs])


def _plain_drawing(class_name: str, side: int) -> torch.Tensor:
    colour, shape = class_name.split()
    return TF.to_tensor(draw_plain_shape(colour, shape, image_size=side))


ROUNDING_RMS = 0.5 / 255  # rounding to 8 bits moves a pixel by at most half a level


def psnr_to_rms(psnr_db: float) -> float:
    """The RMS budget ([0,1] units) whose result, once rounded to 8 bits, stays at or just above ``psnr_db``.

    Rounding is nearly independent of the change, so its error adds in quadrature; taking its largest
    value leaves a margin of a few hundredths of a dB. The PSNR reported is always the one measured."""
    total = 10 ** (-psnr_db / 20)
    if total <= ROUNDING_RMS:
        raise ProbeError(f"a PSNR of {psnr_db} dB is finer than 8-bit rounding allows")
    return math.sqrt(total**2 - ROUNDING_RMS**2)


def measure(encoder, pair_set: PairSet, budgets_rms: list[float], steps: int = 300, seed: int = 0,
            optimizer: str = "normalized", verbose: bool = False) -> list[dict]:
    """Match every pair once per budget. Per budget: success rate, mean target probability, PSNR, one row per
    pair, and ``matched``, the 8-bit-rounded matched images (N,3,h,w) on the CPU."""
    names = class_names()
    head = text_head(encoder, names)
    labels = torch.tensor(pair_set.target_classes)
    runs = []
    for budget in budgets_rms:
        result = match(encoder, pair_set.sources, pair_set.targets, mode="fast", norm="l2", budget=budget,
                       loss="cosine", steps=steps, optimizer=optimizer, seed=seed, verbose=verbose)
        matched = quantize(result.images).cpu()
        probabilities = vision_text_matrix(encoder, head, matched)
        predicted = probabilities.argmax(1)
        target_probability = probabilities[torch.arange(len(labels)), labels]
        db = psnr(matched, result.sources.cpu())
        runs.append({
            "budget_rms": budget, "budget_rms_255": budget * 255, "steps": steps,
            "target_top1": (predicted == labels).float().mean().item(),
            "target_probability_mean": target_probability.mean().item(),
            "psnr_db_mean": db.mean().item(), "psnr_db_min": db.min().item(),
            "cos_to_target_mean": result.final["cos_to_target"].mean().item(),
            "settings": result.description,
            "pairs": [{"source": s, "target": names[t], "predicted": names[p],
                       "target_probability": float(q), "psnr_db": float(d)}
                      for s, t, p, q, d in zip(pair_set.source_names, labels.tolist(), predicted.tolist(),
                                               target_probability, db)],
            "matched": matched,
        })
    return runs


def run(encoder, out_dir: str | Path, sets: list[str], psnr_floors: list[float], steps: int = 300,
        per_photo: int = 5, n_shapes: int = 40, seed: int = 0, verbose: bool = True) -> dict:
    """Measure every set at every PSNR floor and write effect.json, pairs.csv and the figures to ``out_dir``.
    Prints one line per set and floor; ``verbose`` adds progress bars.

    effect.json is written last: its presence means the run finished.
    """
    from probe.plots import budget_sweep_figure, matched_examples_figure
    from probe.results import provenance, save_figure, write_csv, write_json

    unknown = sorted(set(sets) - set(PAIR_SETS))
    if unknown or not sets:
        raise ProbeError(f"sets must be some of {list(PAIR_SETS)}, got {sets}")
    if not psnr_floors:
        raise ProbeError("give at least one PSNR floor")
    budgets = [psnr_to_rms(db) for db in psnr_floors]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    builders = {"photos": lambda: photo_pairs(encoder, per_photo, seed),
                "shapes": lambda: shape_pairs(encoder, n_shapes, seed)}
    summary, rows, curves = {}, [], {}
    for name in sets:
        pair_set = builders[name]()
        runs = measure(encoder, pair_set, budgets, steps=steps, seed=seed, verbose=verbose)
        for floor, result in zip(psnr_floors, runs):
            rows += [{"set": name, "psnr_floor_db": floor, **pair} for pair in result["pairs"]]
            print(f"{name:7s} PSNR floor {floor:5.1f} dB (RMS {result['budget_rms_255']:.2f}/255): target top-1 "
                  f"{result['target_top1']:.1%} of {len(pair_set.target_classes)} pairs, mean target probability "
                  f"{result['target_probability_mean']:.3f}, PSNR mean {result['psnr_db_mean']:.2f} "
                  f"min {result['psnr_db_min']:.2f} dB")
        first = runs[0]
        n = len(pair_set.target_classes)
        show = list(range(0, n, max(1, n // 4)))[:4]  # spread over the set: different sources
        captions = [(pair_set.source_names[i], f"-> {first['pairs'][i]['target']}: predicted "
                     f"{first['pairs'][i]['predicted']} ({first['pairs'][i]['target_probability']:.2f}), "
                     f"{first['pairs'][i]['psnr_db']:.1f} dB") for i in show]
        fig, data = matched_examples_figure(pair_set.sources[show].numpy(), first["matched"][show].numpy(),
                                            captions, title=f"{name}: source, matched ({psnr_floors[0]} dB floor), "
                                            "difference x 50")
        save_figure(fig, out / f"examples_{name}.png", data)
        curves[name] = [(r["psnr_db_mean"], r["target_top1"]) for r in runs]
        summary[name] = [{k: v for k, v in r.items() if k not in ("pairs", "matched")} | {"psnr_floor_db": f}
                         for f, r in zip(psnr_floors, runs)]
    fig, data = budget_sweep_figure(curves, title=f"{encoder.spec}: matched image classified as its target")
    save_figure(fig, out / "effect_vs_psnr.png", data)
    write_csv(out / "pairs.csv", rows)
    record = provenance(model=encoder.spec, weights=encoder.weights, device=str(encoder.device), seed=seed,
                        steps=steps, per_photo=per_photo, shape_pairs=n_shapes, psnr_floors_db=psnr_floors,
                        classes=class_names(), results=summary)
    write_json(out / "effect.json", record)
    return record
