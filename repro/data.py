"""Image sources of the profiles, as `probe.data.ImageSet`s, and fingerprints of what was loaded.

    bundled:photos              the 9 colour photos shipped by scikit-image and matplotlib (one class each)
    toy:drawings[:a,b,...]      plain drawings of mini-CLIP classes (default all 30), `draw_plain_shape`
    toy:shapes[:a,b,...]        held-out generated images of mini-CLIP classes, one per class (seeded)
    named:NAME[=PATH]           a named set of probe.data (imagenette, imagenet-paper), from the Hub or PATH
    anything else               a folder, parquet file, save_to_disk folder or Hub id (probe.data.load_image_set)
"""
from __future__ import annotations

import hashlib

import torch
import torchvision.transforms.functional as TF

from probe.data import NAMED_SETS, ImageSet, load_image_set, load_named_set
from probe.errors import ProbeError


def load(source: str, per_class: int = 1, seed: int = 0) -> ImageSet:
    """The image set a source string names (see the module docstring)."""
    kind, _, rest = source.partition(":")
    if kind == "bundled" and rest == "photos":
        from probe.toy.effect import photo_paths

        return _photos(photo_paths())
    if kind == "toy" and rest.split(":")[0] in ("drawings", "shapes"):
        return _toy(rest, seed)
    if kind == "named":
        name, _, path = rest.partition("=")
        if name not in NAMED_SETS:
            raise ProbeError(f"image source {source!r}: unknown named set; named sets: {', '.join(NAMED_SETS)}")
        return load_named_set(name, per_class=per_class, seed=seed, source=path or None)
    return load_image_set(source, per_class=per_class, seed=seed)


def _photos(paths) -> ImageSet:
    from probe.images import load_image

    return ImageSet([load_image(p) for p in paths], list(range(len(paths))), [p.stem for p in paths],
                    [p.name for p in paths], "bundled photos (scikit-image, matplotlib)")


def _toy(rest: str, seed: int) -> ImageSet:
    from probe.toy.data import EVAL_SEED, class_names, draw_plain_shape, generate_samples

    what, _, wanted = rest.partition(":")
    names = class_names()
    chosen = [w.strip() for w in wanted.split(",")] if wanted else names
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise ProbeError(f"toy:{rest}: unknown mini-CLIP classes {unknown} (classes look like 'red circle')")
    if what == "drawings":
        images = [TF.to_tensor(draw_plain_shape(*c.split())) for c in chosen]
        source = "plain drawings (probe.toy.data.draw_plain_shape)"
    else:
        samples = generate_samples(len(names), EVAL_SEED + seed, balanced=True)
        images = [TF.to_tensor(samples[names.index(c)].image) for c in chosen]
        source = f"generated held-out shapes (probe.toy.data.generate_samples, seed EVAL_SEED + {seed})"
    return ImageSet(images, list(range(len(chosen))), chosen, [f"{c} ({what[:-1]})" for c in chosen], source)


def count(source: str) -> int:
    """How many images a source gives, without loading it where that is known (`repro plan`)."""
    kind, _, rest = source.partition(":")
    if kind == "toy":
        _, _, wanted = rest.partition(":")
        return len(wanted.split(",")) if wanted else 30
    if kind == "named":
        name, _, path = rest.partition("=")
        if not path and name in NAMED_SETS:
            return len(NAMED_SETS[name].classes)
    return len(load(source))


def fingerprint(image_set: ImageSet) -> str:
    """sha256 over the images (as 8-bit pixels), their labels, class names and names."""
    digest = hashlib.sha256()
    for image in image_set.images:
        digest.update(str(tuple(image.shape)).encode())
        digest.update(image.clamp(0, 1).mul(255).round().to(torch.uint8).numpy().tobytes())
    digest.update(repr((image_set.labels, image_set.class_names, image_set.names)).encode())
    return digest.hexdigest()


def describe(source: str, image_set: ImageSet) -> dict:
    """What the manifest records about a set: source, Hub id and revision where it came from the Hub."""
    record = {"source": source, "loaded_from": image_set.source, "images": len(image_set),
              "classes": image_set.class_names, "sha256": fingerprint(image_set)}
    kind, _, rest = source.partition(":")
    if kind == "named":
        name, _, path = rest.partition("=")
        named = NAMED_SETS[name]
        record |= {"dataset": path or named.hub_id, "revision": None if path else (named.revision or "main"),
                   "split": named.split}
    if kind == "bundled":
        from importlib.metadata import version

        record |= {"packages": {"scikit-image": version("scikit-image"), "matplotlib": version("matplotlib")}}
    return record
