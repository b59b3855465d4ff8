"""The mini-CLIP's pair sets for the effect studies (`probe.experiments.effects`), all offline:

* `photo_pairs`: the colour photographs that ship with scikit-image and matplotlib (`probe.data.bundled_photos`),
  each matched to the plain drawing (`draw_plain_shape`) of `per_photo` target classes drawn with a seeded
  generator;
* `shape_pairs`: generated held-out images (one per class), `n` ordered pairs of different classes;
* `drawn_pairs`: independently drawn shapes (`probe.toy.drawn`) with different labels, half at 64 px and half at
  224 px: what a visitor might draw (`probe.experiments.effects.read_as_target` matches them as the CLI and the
  app would);
* `visitor_effect`: `drawn_pairs` matched with the defaults a visitor gets on the mini-CLIP (the CLI's and the
  app's), the share read as the target;
* `photo_drawing_pairs`: the photos (centre-cropped to a square side) each matched to plain drawings of target
  classes at the same side, as labelled pairs: a visitor's photo and a drawn target.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps

from probe.data import bundled_photos
from probe.errors import ProbeError
from probe.experiments.effects import LabelledPair, PairSet, read_as_target
from probe.images import from_pil, load_image, open_pil
from probe.matching import settings_for
from probe.models import defaults_for
from probe.params import Param, declare
from probe.toy.data import EVAL_SEED, class_names, draw_plain_shape, generate_samples
from probe.toy.drawn import LABELS as DRAWN_LABELS, drawn_set

DRAWN_RESOLUTIONS = (64, 224)
PAIR_SETS = ("photos", "shapes")


def photo_pairs(encoder, per_photo: int = 5, seed: int = 0) -> PairSet:
    """Every photo x `per_photo` distinct target classes (seeded); targets are plain drawings. Photos are brought
    to the model's input by the encoder's own resize and centre crop."""
    names = class_names()
    if not 1 <= per_photo <= len(names):
        raise ProbeError(f"per_photo must be in [1, {len(names)}], got {per_photo}")
    side = encoder.input_size[0]
    rng = np.random.default_rng(seed)
    sources, targets, classes, source_names = [], [], [], []
    for path in bundled_photos():
        photo = encoder.to_model_input(load_image(path)[None].to(encoder.device))[0].clamp(0, 1).cpu()
        for target in rng.choice(len(names), per_photo, replace=False).tolist():
            sources.append(photo)
            colour, shape = names[target].split()
            targets.append(from_pil(draw_plain_shape(colour, shape, image_size=side)))
            classes.append(target)
            source_names.append(path.name)
    return PairSet("photos", torch.stack(sources), torch.stack(targets), classes, source_names)


def shape_pairs(encoder, n: int = 40, seed: int = 0) -> PairSet:
    """`n` ordered pairs of different classes over one held-out generated image per class."""
    names = class_names()
    if n < 1:
        raise ProbeError(f"n must be >= 1, got {n}")
    side = encoder.input_size[0]
    images = [from_pil(s.image) for s in generate_samples(len(names), EVAL_SEED + seed, image_size=side,
                                                              balanced=True)]
    rng = np.random.default_rng(seed)
    pairs = [tuple(rng.choice(len(names), 2, replace=False).tolist()) for _ in range(n)]
    return PairSet("shapes", torch.stack([images[a] for a, _ in pairs]), torch.stack([images[b] for _, b in pairs]),
                   [b for _, b in pairs], [names[a] for a, _ in pairs])


def pair_sets(encoder, sets=PAIR_SETS, per_photo: int = 5, n_shapes: int = 40, seed: int = 0) -> list[PairSet]:
    """The named pair sets, in the order asked."""
    sets = list(sets)
    unknown = sorted(set(sets) - set(PAIR_SETS))
    if unknown or not sets:
        raise ProbeError(f"sets must be some of {list(PAIR_SETS)}, got {sets}")
    builders = {"photos": lambda: photo_pairs(encoder, per_photo, seed), "shapes": lambda: shape_pairs(encoder,
                                                                                                    n_shapes, seed)}
    return [builders[name]() for name in sets]


PAIRS = declare(
    pair_sets,
    per_photo=Param("target classes per photo", kind=int, low=1, high=30),
    n_shapes=Param("pairs in the shapes set", kind=int, low=1, cli="--pairs"),
)


def drawn_pairs(n: int = 24, seed: int = 0) -> list[LabelledPair]:
    """`n` seeded ordered pairs of independently drawn shapes (`probe.toy.drawn`) with different labels, half at
    64 px and half at 224 px; both pictures of a pair have the same size."""
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
                source, target = items[a], items[b]
                pairs.append(LabelledPair(source.image, target.image, source.label, target.label,
                                          {"source_background": source.background, "source_style": source.style,
                                           "source_size": round(source.size, 3)}))
                wanted -= 1
    return pairs


def visitor_effect(encoder, n: int = 24, seed: int = 0, progress=None) -> dict:
    """`n` drawn pairs (`drawn_pairs`) matched with the mini-CLIP's visitor defaults (fast mode, L-inf 8/255,
    the per-model entry the CLI and the app share), read back from 8-bit PNG: `read_as_target`'s result."""
    settings = settings_for("fast", defaults_for("mini-clip", "fast"))
    return read_as_target(encoder, drawn_pairs(n, seed=seed), label_sets(), settings, progress=progress)


def photo_drawing_pairs(per_photo: int = 3, side: int = 224, seed: int = 0) -> list[LabelledPair]:
    """Every bundled photo, centre-cropped and resized to `side` (Pillow bicubic), x `per_photo` seeded target
    classes drawn plainly at `side`; the photo's label is its file name."""
    names = class_names()
    if not 1 <= per_photo <= len(names):
        raise ProbeError(f"per_photo must be in [1, {len(names)}], got {per_photo}")
    rng = np.random.default_rng(seed)
    pairs = []
    for path in bundled_photos():
        photo = ImageOps.fit(open_pil(path).convert("RGB"), (side, side), Image.Resampling.BICUBIC)
        for target in rng.choice(len(names), per_photo, replace=False).tolist():
            colour, shape = names[target].split()
            pairs.append(LabelledPair(photo, draw_plain_shape(colour, shape, image_size=side), path.name,
                                      names[target]))
    return pairs


def label_sets() -> dict[str, list[str]]:
    """What a drawn pair is read over: the 16 drawn labels, and all the mini-CLIP's classes."""
    return {"16_labels": list(DRAWN_LABELS), "all_classes": class_names()}
