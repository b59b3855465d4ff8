"""Quality checks for a mini-CLIP folder: zero-shot accuracy and centroid spread.

* held-out accuracy: zero-shot top-1 on generated images from seeds training never uses;
* plain accuracy: zero-shot top-1 on ``draw_plain_shape`` images (a different renderer);
* centroid cosine: mean pairwise cosine between the class centroids of the image
  embeddings. A random-init ViT maps all images to nearly one direction (cosine
  near 1); a useful model spreads the classes apart.

Images are read as PIL images through the model's own preprocessing, and classified with
``probe.zeroshot``'s text head over the class names.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from probe.errors import ProbeError
from probe.models import load_encoder
from probe.toy.data import COLOURS, EVAL_SEED, SHAPES, SIZES, class_names, draw_plain_shape, generate_samples
from probe.zeroshot import embed_images, text_head


def heldout_set(per_class: int = 20, seed: int = EVAL_SEED,
                recipe: str | None = None) -> tuple[list[Image.Image], list[int]]:
    """Generated images from the held-out seed range, ``per_class`` per class (``recipe``: the generator's,
    default ``probe.toy.data.RECIPE``)."""
    if per_class < 1:
        raise ProbeError(f"per_class must be >= 1, got {per_class}")
    if seed < EVAL_SEED:
        raise ProbeError(f"held-out seeds start at {EVAL_SEED}, got {seed}")
    samples = generate_samples(per_class * len(class_names()), seed, balanced=True, recipe=recipe)
    return [s.image for s in samples], [s.class_index for s in samples]


def plain_set() -> tuple[list[Image.Image], list[int]]:
    """One ``draw_plain_shape`` image per class and size word."""
    images, labels = [], []
    for index, (colour, shape) in enumerate((c, s) for c in COLOURS for s in SHAPES):
        for size in SIZES:
            images.append(draw_plain_shape(colour, shape, size=size))
            labels.append(index)
    return images, labels


def accuracy(predictions: torch.Tensor, labels: list[int]) -> float:
    """Share of predictions equal to their labels."""
    return (predictions.cpu() == torch.tensor(labels)).float().mean().item()


def centroid_mean_cosine(embeddings: torch.Tensor, labels: list[int]) -> float:
    """Mean pairwise cosine similarity between per-class centroids of the normalised ``embeddings``."""
    features = torch.nn.functional.normalize(embeddings.float().cpu(), dim=1)
    labels_t = torch.tensor(labels)
    centroids = torch.stack([features[labels_t == c].mean(0) for c in labels_t.unique()])
    centroids = torch.nn.functional.normalize(centroids, dim=1)
    cosine = centroids @ centroids.T
    off_diagonal = ~torch.eye(len(centroids), dtype=torch.bool)
    return cosine[off_diagonal].mean().item()


def model_quality(model_dir: str | Path, per_class: int = 20, random_seed: int = 0) -> dict[str, float]:
    """All quality numbers for the model in ``model_dir`` and the centroid spread of its random-init twin."""
    folder = Path(model_dir)
    if not (folder / "open_clip_config.json").is_file():
        raise ProbeError(f"{folder} has no open_clip_config.json; is it a mini-CLIP folder?")
    encoder = load_encoder(f"openclip:local-dir:{folder}")
    twin = load_encoder(f"openclip:local-dir:{folder}@random:{random_seed}")
    head = text_head(encoder, class_names())
    heldout_images, heldout_labels = heldout_set(per_class)
    plain_images, plain_labels = plain_set()
    heldout = embed_images(encoder, heldout_images)
    plain = embed_images(encoder, plain_images)
    return {
        "heldout_accuracy": accuracy(head.probabilities(heldout).argmax(1), heldout_labels),
        "plain_accuracy": accuracy(head.probabilities(plain).argmax(1), plain_labels),
        "centroid_cosine": centroid_mean_cosine(heldout, heldout_labels),
        "random_init_centroid_cosine": centroid_mean_cosine(embed_images(twin, heldout_images), heldout_labels),
    }
