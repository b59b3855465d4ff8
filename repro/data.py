"""What the profiles' image sources are (`probe.data.load_source` reads them), and fingerprints of what was
loaded: every source a profile names is read through the library, so `repro` names no plug-in itself."""
from __future__ import annotations

import hashlib
from importlib.metadata import version

import torch

from probe.data import IMAGE_SOURCES, NAMED_SETS, ImageSet, load_source


def load(source: str, per_class: int = 1, seed: int = 0) -> ImageSet:
    """The image set a source string names (`probe.data.load_source`)."""
    return load_source(source, per_class=per_class, seed=seed)


def count(source: str) -> int:
    """How many images a source gives, without loading it where that is known (`repro plan`)."""
    kind, _, rest = source.partition(":")
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
        record |= {"packages": {"scikit-image": version("scikit-image"), "matplotlib": version("matplotlib")}}
    if kind in IMAGE_SOURCES:
        record |= {"about": IMAGE_SOURCES[kind][1]}
    return record
