"""The paper's effect on the mini-CLIP: a picture takes on another class's embedding and looks unchanged.

Two fixed pair sets, both offline:

* ``photos``: the nine colour photographs that ship with scikit-image and matplotlib, each matched to the
  plain drawing (``draw_plain_shape``) of ``per_photo`` target classes drawn with a seeded generator;
* ``shapes``: generated held-out images (one per class), ``n`` ordered pairs of different classes.

``visitor_effect`` measures what a visitor sees instead: independently drawn shape pairs (``drawn_pairs``)
matched with the default fast settings (L-inf 8/255) at their own resolution and read back from 8-bit PNGs.

Each source is matched to its target's embedding under a root-mean-square pixel budget (fast mode, cosine
loss, normalised-gradient steps), rounded to 8 bits as a saved PNG would be, then classified zero-shot with
the model's own text head over all classes. A pair succeeds when the target's class is top-1. PSNR is measured
between the rounded matched image and the source at the model's input resolution. One call sweeps several
budgets; ``psnr_to_rms`` turns a PSNR floor into the budget that lands each rounded image just above it.
``probe.experiments.effect`` runs it as an experiment (figures, files, progress).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF

from probe.errors import ProbeError
from probe.images import from_pil, load_image, quantize, to_pil
from probe.matching import FastSettings, match, sweep
from probe.metrics import psnr
from probe.progress import Progress, within
from probe.toy.data import EVAL_SEED, class_names, draw_plain_shape, generate_samples
from probe.toy.drawn import LABELS as DRAWN_LABELS, Drawing, drawn_set
from probe.zeroshot import embed_images, text_head, vision_text_matrix

DRAWN_RESOLUTIONS = (64, 224)

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
            optimizer: str = "normalized", progress: Progress | None = None) -> list[dict]:
    """Match every pair once per budget. Per budget: success rate, mean target probability, PSNR, one row per
    pair, and ``matched``, the 8-bit-rounded matched images (N,3,h,w) on the CPU. A cancelled sweep returns the
    budgets it finished."""
    names = class_names()
    head = text_head(encoder, names)
    labels = torch.tensor(pair_set.target_classes)
    settings = FastSettings(norm="l2", budget=budgets_rms[0], loss="cosine", steps=steps, optimizer=optimizer,
                            resolution="model")
    runs = []
    for result in sweep(encoder, pair_set.sources, pair_set.targets, settings, budgets_rms, seed=seed,
                        progress=progress):
        if result.cancelled:
            break
        matched = quantize(result.images).cpu()
        probabilities = vision_text_matrix(encoder, head, matched)
        predicted = probabilities.argmax(1)
        target_probability = probabilities[torch.arange(len(labels)), labels]
        db = psnr(matched, result.sources.cpu())
        budget = result.settings["budget"]
        runs.append({
            "budget_rms": budget, "budget_rms_255": budget * 255, "steps": steps,
            "target_top1": (predicted == labels).float().mean().item(),
            "target_probability_mean": target_probability.mean().item(),
            "psnr_db_mean": db.mean().item(), "psnr_db_min": db.min().item(),
            "cos_to_target_mean": result.final["cos_to_target"].mean().item(),
            "settings": result.settings,
            "pairs": [{"source": s, "target": names[t], "predicted": names[p],
                       "target_probability": float(q), "psnr_db": float(d)}
                      for s, t, p, q, d in zip(pair_set.source_names, labels.tolist(), predicted.tolist(),
                                               target_probability, db)],
            "matched": matched,
        })
    return runs


def drawn_pairs(n: int = 24, seed: int = 0) -> list[tuple[Drawing, Drawing]]:
    """``n`` seeded ordered pairs of independently drawn shapes (``probe.toy.drawn``) with different labels, half
    at 64 px and half at 224 px; both images of a pair have the same size."""
    if n < 2:
        raise ProbeError(f"n must be >= 2, got {n}")
    pool = drawn_set(2, seed=seed + 1)
    rng = np.random.default_rng(seed)
    pairs = []
    for index, resolution in enumerate(DRAWN_RESOLUTIONS):
        items = [d for d in pool if d.resolution == resolution]
        wanted = n // 2 + (n % 2 if index == 0 else 0)
        while wanted:
            a, b = rng.choice(len(items), 2, replace=False).tolist()
            if items[a].label != items[b].label:
                pairs.append((items[a], items[b]))
                wanted -= 1
    return pairs


def visitor_effect(encoder, pairs: list[tuple[Drawing, Drawing]], settings: FastSettings | None = None,
                   seed: int = 0, progress: Progress | None = None) -> dict:
    """The effect as a visitor of the CLI or the app gets it: each drawing matched to its partner's embedding
    with the default fast settings (L-inf 8/255, 300 steps, the source's own resolution), saved as an 8-bit PNG,
    read back through the model's own preprocessing and classified over the 16 drawn labels and over all the
    model's classes. Each row also says how the clean source and target were read (a misread target is matched
    faithfully and misread again). Pairs of one size are matched as one batch."""
    settings = settings or FastSettings()
    names, labels = class_names(), list(DRAWN_LABELS)
    head_all, head16 = text_head(encoder, names), text_head(encoder, labels)
    rows = []
    for resolution in sorted({s.image.width for s, _ in pairs}):
        group = [(s, t) for s, t in pairs if s.image.width == resolution]
        sources = torch.stack([from_pil(s.image) for s, _ in group]).to(encoder.device)
        targets = torch.stack([from_pil(t.image) for _, t in group]).to(encoder.device)
        result = match(encoder, sources, targets, settings, seed=seed, progress=within(progress, f"{resolution} px"))
        if result.cancelled:
            break
        matched = quantize(result.images)
        saved = [to_pil(image) for image in matched.cpu()]
        embeddings = embed_images(encoder, saved + [s.image for s, _ in group] + [t.image for _, t in group])
        read_all = head_all.probabilities(embeddings).argmax(1).tolist()
        read16 = head16.probabilities(embeddings).argmax(1).tolist()
        for k, (source, target) in enumerate(group):
            rows.append({"resolution": resolution, "source": source.label, "target": target.label,
                         "source_background": source.background, "source_style": source.style,
                         "source_size": round(source.size, 3), "source_read_as": names[read_all[len(group) + k]],
                         "target_read_as": names[read_all[2 * len(group) + k]],
                         "read_as": names[read_all[k]], "read_as_16": labels[read16[k]],
                         "linf_255": float((matched[k] - sources[k]).abs().max() * 255)})

    def share(key: str) -> float:
        return sum(r[key] == r["target"] for r in rows) / len(rows) if rows else 0.0

    return {"settings": settings.to_dict(), "pairs": len(rows), "target_top1_all_classes": share("read_as"),
            "target_top1_16_labels": share("read_as_16"), "rows": rows}
