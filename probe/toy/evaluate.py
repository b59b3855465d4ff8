"""Quality checks for a mini-CLIP folder: zero-shot accuracy and centroid spread.

* held-out accuracy: zero-shot top-1 on generated images from seeds training never uses;
* plain accuracy: zero-shot top-1 on ``draw_plain_shape`` images (a different renderer);
* centroid cosine: mean pairwise cosine between the class centroids of the image
  embeddings. A random-init ViT maps all images to nearly one direction (cosine
  near 1); a useful model spreads the classes apart.
"""

from __future__ import annotations

import logging
from pathlib import Path

import open_clip
import torch
from PIL import Image

from probe.toy.data import COLOURS, EVAL_SEED, SHAPES, SIZES, class_names, draw_plain_shape, generate_samples
from probe.toy.model import CONFIG_FILE


def load_model(model_dir: str | Path, *, random_init: bool = False, seed: int = 0):
    """Load ``(model, preprocess, tokenizer)`` from an OpenCLIP Hub-layout folder, offline.

    With ``random_init`` the same architecture is built from the folder's config
    but with freshly initialised weights (seeded), as a baseline.
    """
    model_dir = Path(model_dir)
    if not (model_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{model_dir} has no {CONFIG_FILE}; is it a mini-CLIP folder?")
    name = f"local-dir:{model_dir}"
    torch.manual_seed(seed)
    logging.disable(logging.WARNING if random_init else logging.NOTSET)  # hush "initialized randomly"
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, load_weights=not random_init)
    finally:
        logging.disable(logging.NOTSET)
    return model.eval(), preprocess, open_clip.get_tokenizer(name)


def heldout_set(per_class: int = 20, seed: int = EVAL_SEED) -> tuple[list[Image.Image], list[int]]:
    """Generated images from the held-out seed range, ``per_class`` per class."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    if seed < EVAL_SEED:
        raise ValueError(f"held-out seeds start at {EVAL_SEED}, got {seed}")
    samples = generate_samples(per_class * len(class_names()), seed, balanced=True)
    return [s.image for s in samples], [s.class_index for s in samples]


def plain_set() -> tuple[list[Image.Image], list[int]]:
    """One ``draw_plain_shape`` image per class and size word."""
    images, labels = [], []
    for index, (colour, shape) in enumerate((c, s) for c in COLOURS for s in SHAPES):
        for size in SIZES:
            images.append(draw_plain_shape(colour, shape, size=size))
            labels.append(index)
    return images, labels


@torch.no_grad()
def embed_images(model, preprocess, images: list[Image.Image], batch: int = 256) -> torch.Tensor:
    """L2-normalised image embeddings, one row per image."""
    chunks = []
    for i in range(0, len(images), batch):
        pixels = torch.stack([preprocess(im) for im in images[i:i + batch]])
        chunks.append(model.encode_image(pixels, normalize=True))
    return torch.cat(chunks)


@torch.no_grad()
def embed_texts(model, tokenizer, texts: list[str]) -> torch.Tensor:
    """L2-normalised text embeddings, one row per text."""
    return model.encode_text(tokenizer(texts), normalize=True)


def zero_shot_accuracy(image_features: torch.Tensor, labels: list[int], class_features: torch.Tensor) -> float:
    """Top-1 accuracy of the argmax over image x class-text cosine (= softmax of scaled logits)."""
    predictions = (image_features @ class_features.T).argmax(dim=1)
    return (predictions == torch.tensor(labels)).float().mean().item()


def centroid_mean_cosine(image_features: torch.Tensor, labels: list[int]) -> float:
    """Mean pairwise cosine similarity between per-class centroids of ``image_features``."""
    labels_t = torch.tensor(labels)
    centroids = torch.stack([image_features[labels_t == c].mean(0) for c in labels_t.unique()])
    centroids = torch.nn.functional.normalize(centroids, dim=1)
    cosine = centroids @ centroids.T
    off_diagonal = ~torch.eye(len(centroids), dtype=torch.bool)
    return cosine[off_diagonal].mean().item()


def evaluate(model_dir: str | Path, per_class: int = 20) -> dict[str, float]:
    """All quality numbers for the model in ``model_dir`` and for a random-init twin."""
    heldout_images, heldout_labels = heldout_set(per_class)
    plain_images, plain_labels = plain_set()
    model, preprocess, tokenizer = load_model(model_dir)
    class_features = embed_texts(model, tokenizer, class_names())
    heldout = embed_images(model, preprocess, heldout_images)
    plain = embed_images(model, preprocess, plain_images)
    random_model, random_preprocess, _ = load_model(model_dir, random_init=True)
    random_heldout = embed_images(random_model, random_preprocess, heldout_images)
    return {
        "heldout_accuracy": zero_shot_accuracy(heldout, heldout_labels, class_features),
        "plain_accuracy": zero_shot_accuracy(plain, plain_labels, class_features),
        "centroid_cosine": centroid_mean_cosine(heldout, heldout_labels),
        "random_init_centroid_cosine": centroid_mean_cosine(random_heldout, heldout_labels),
    }
