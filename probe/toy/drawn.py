"""Shapes as anyone might draw them: a test set for the mini-CLIP from a renderer that shares no code with the
training generator (`probe.toy.data`).

Drawn with scikit-image's rasteriser (the generator uses PIL), in plain named colours with a few shades each,
one filled or thick-outlined circle, square, triangle or star whose bounding box spans 15% to 75% of the canvas
side, anywhere on it, on a light, mid-grey, dark, noisy or gradient background, at 64 or 224 pixels. Every image
is a pure function of (seed, index). `evaluate` reads the pictures through the model's own preprocessing, as a
visitor's upload is read, and reports accuracy over the 16 labels and over all the model's classes, per size,
background, style and resolution, and the confusion matrix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from probe.errors import ProbeError
from probe.zeroshot import embed_images, text_head

COLOURS = {  # a few shades a person might pick for each colour name (RGB)
    "red": ((230, 25, 25), (200, 0, 0), (255, 60, 40)),
    "green": ((0, 160, 0), (30, 130, 40), (60, 190, 60)),
    "blue": ((20, 60, 230), (0, 0, 200), (40, 110, 220)),
    "yellow": ((250, 220, 0), (255, 240, 40), (235, 200, 20)),
}
SHAPES = ("circle", "square", "triangle", "star")
LABELS = tuple(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES)
BACKGROUNDS = ("light", "mid-grey", "dark", "noisy", "gradient")
STYLES = ("filled", "outline")
SIZE_RANGE = (0.15, 0.75)   # bounding-box side as a fraction of the canvas side
SIZE_BINS = ((0.15, 0.30), (0.30, 0.45), (0.45, 0.60), (0.60, 0.75))
SUPERSAMPLE = 4


@dataclass(frozen=True)
class Drawing:
    image: Image.Image
    label: str
    size: float          # bounding-box side / canvas side
    background: str
    style: str
    resolution: int


def _outline(points: np.ndarray, centre: np.ndarray, width: float) -> list[np.ndarray]:
    """The polygon and its inward copy (scaled toward the centre so the band is about `width` wide)."""
    inner = centre + (points - centre) * max(0.0, 1 - width / np.linalg.norm(points - centre, axis=1).min())
    return [points, inner]


def _vertices(shape: str, centre: np.ndarray, half: float) -> np.ndarray | None:
    """Polygon vertices (x, y) of a shape whose bounding box is 2 * half wide; None for the circle."""
    if shape == "circle":
        return None
    if shape == "square":
        return centre + half * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float)
    if shape == "triangle":   # upright, base and height both 2 * half
        return centre + half * np.array([[0, -1], [1, 1], [-1, 1]], dtype=float)
    angles = -math.pi / 2 + np.arange(10) * math.pi / 5   # a five-pointed star, inner radius 0.45
    radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
    points = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    points = (points - (points.max(0) + points.min(0)) / 2) / (points.max(0) - points.min(0)).max() * 2
    return centre + half * points


def _mask(shape: str, style: str, centre: np.ndarray, half: float, side: int) -> np.ndarray:
    """Coverage in [0, 1] of the shape on a side x side canvas (supersampled, then averaged)."""
    from skimage.draw import disk, polygon

    big = side * SUPERSAMPLE
    scale = SUPERSAMPLE
    canvas = np.zeros((big, big), dtype=np.float32)
    width = max(2.0, 0.14 * 2 * half) * scale
    c, h = centre * scale, half * scale
    if shape == "circle":
        canvas[disk((c[1], c[0]), h, shape=canvas.shape)] = 1
        if style == "outline":
            canvas[disk((c[1], c[0]), max(h - width, 0), shape=canvas.shape)] = 0
    else:
        points = _vertices(shape, c, h)
        rings = _outline(points, c, width) if style == "outline" else [points]
        canvas[polygon(rings[0][:, 1], rings[0][:, 0], shape=canvas.shape)] = 1
        if len(rings) > 1:
            canvas[polygon(rings[1][:, 1], rings[1][:, 0], shape=canvas.shape)] = 0
    return canvas.reshape(side, scale, side, scale).mean(axis=(1, 3))


def _background(kind: str, side: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "light":
        return np.full((side, side, 3), rng.uniform(225, 255), dtype=np.float32)
    if kind == "mid-grey":
        return np.full((side, side, 3), rng.uniform(105, 150), dtype=np.float32)
    if kind == "dark":
        return np.full((side, side, 3), rng.uniform(5, 50), dtype=np.float32)
    if kind == "noisy":
        base = rng.uniform(60, 200)
        return np.clip(base + rng.normal(0, 25, (side, side, 1)), 0, 255).repeat(3, axis=2).astype(np.float32)
    low, high = sorted(rng.uniform(20, 235, 2))
    ramp = np.linspace(0, 1, side, dtype=np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    x, y = np.meshgrid(ramp, ramp)
    t = (x * math.cos(angle) + y * math.sin(angle))
    t = (t - t.min()) / (t.max() - t.min())
    return (low + (high - low) * t)[..., None].repeat(3, axis=2)


def draw(label: str, size: float, background: str, style: str, resolution: int,
         rng: np.random.Generator) -> Image.Image:
    """One drawing: `label` ("red star"), bounding box `size` x the canvas side, anywhere on the canvas."""
    colour, shape = label.split()
    if colour not in COLOURS or shape not in SHAPES:
        raise ProbeError(f"unknown label {label!r}; labels are {', '.join(LABELS)}")
    if not SIZE_RANGE[0] <= size <= SIZE_RANGE[1]:
        raise ProbeError(f"size must be in {SIZE_RANGE}, got {size}")
    half = size * resolution / 2
    centre = rng.uniform(half, resolution - half, 2)
    canvas = _background(background, resolution, rng)
    fill = np.array(COLOURS[colour][rng.integers(len(COLOURS[colour]))], dtype=np.float32)
    coverage = _mask(shape, style, centre, half, resolution)[..., None]
    pixels = canvas * (1 - coverage) + fill * coverage
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def drawn_set(per_label: int = 10, seed: int = 0, resolutions: tuple[int, ...] = (64, 224)) -> list[Drawing]:
    """`per_label` drawings of each of the 16 labels at each resolution, sizes spread evenly over the range,
    backgrounds and styles cycled, positions and shades drawn from `seed`."""
    if per_label < 1:
        raise ProbeError(f"per_label must be >= 1, got {per_label}")
    out = []
    for resolution in resolutions:
        rng = np.random.default_rng([seed, resolution])
        for index, label in enumerate(LABELS):
            for k in range(per_label):
                size = SIZE_RANGE[0] + (SIZE_RANGE[1] - SIZE_RANGE[0]) * (k + rng.uniform()) / per_label
                background = BACKGROUNDS[(k + index) % len(BACKGROUNDS)]
                style = STYLES[(k // len(BACKGROUNDS) + index) % len(STYLES)]
                out.append(Drawing(draw(label, size, background, style, resolution, rng), label, size, background,
                                   style, resolution))
    return out


def evaluate(encoder, drawings: list[Drawing], classes: list[str]) -> dict:
    """Zero-shot accuracy of `encoder` on the drawings (read through the model's own preprocessing): over the
    16 labels, over all `classes`, per size bin, background, style and resolution; the 16 x 16 confusion matrix."""
    missing = [label for label in LABELS if label not in classes]
    if missing:
        raise ProbeError(f"the model's classes lack {missing}")
    embeddings = embed_images(encoder, [d.image for d in drawings])
    sixteen = text_head(encoder, list(LABELS)).probabilities(embeddings).argmax(1).cpu()
    every = text_head(encoder, list(classes)).probabilities(embeddings).argmax(1).cpu()
    truth = torch.tensor([LABELS.index(d.label) for d in drawings])
    right16 = sixteen == truth
    right_all = torch.tensor([classes[i] == d.label for i, d in zip(every.tolist(), drawings)])

    def share(mask):
        return {"labels_16": right16[mask].float().mean().item(), "all_classes": right_all[mask].float().mean().item(),
                "n": int(mask.sum())}

    def groups(key, values):
        return {str(v): share(torch.tensor([key(d) == v for d in drawings])) for v in values}

    confusion = torch.zeros(len(LABELS), len(LABELS), dtype=torch.long)
    for t, p in zip(truth.tolist(), sixteen.tolist()):
        confusion[t, p] += 1
    bins = [f"{low:.2f}-{high:.2f}" for low, high in SIZE_BINS]
    return {"overall": share(torch.ones(len(drawings), dtype=torch.bool)),
            "by_size": {name: share(torch.tensor([low <= d.size <= high for d in drawings]))
                        for name, (low, high) in zip(bins, SIZE_BINS)},
            "by_background": groups(lambda d: d.background, BACKGROUNDS),
            "by_style": groups(lambda d: d.style, STYLES),
            "by_resolution": groups(lambda d: d.resolution, sorted({d.resolution for d in drawings})),
            "labels": list(LABELS), "confusion": confusion.tolist()}
