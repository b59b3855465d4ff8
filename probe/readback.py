"""What a reader of a saved picture gets back. A matched image is a float tensor, but what a visitor downloads,
the authors' pipeline re-reads and a downstream model sees is a file: every "after" number (the class read, the
cosine to the target) is measured on the picture read back from it, through the model's own preprocessing.

`CODECS` names the ways a picture comes back; "png" (8-bit, lossless: the rounding to 8 bits) is the one every
result reports. A codec turns a [0,1] image (3,H,W) into the decoded picture (a PIL image, as a file opens).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from PIL import Image

from probe.errors import ProbeError
from probe.images import from_pil, to_pil
from probe.zeroshot import ZeroShotHead, embed_images

Tensor = torch.Tensor


def _png(image: Tensor) -> Image.Image:
    return to_pil(image)   # exactly the pixels an 8-bit PNG holds


CODECS: dict[str, Callable[[Tensor], Image.Image]] = {"png": _png}
READ_BACK = ("png",)


def check_codecs(codecs: Sequence[str]) -> tuple[str, ...]:
    unknown = [c for c in codecs if c not in CODECS]
    if unknown or not codecs:
        raise ProbeError(f"read_back must name some of {', '.join(CODECS)}, got {list(codecs)}")
    return tuple(codecs)


def read_back(images, codec: str = "png") -> list[Image.Image]:
    """[0,1] images, a batch (N,3,H,W) or a list of (3,H,W) of any sizes, as they open from files saved with
    `codec`."""
    encode = CODECS[check_codecs([codec])[0]]
    return [encode(image.detach().float().cpu()) for image in images]


def pixels(pictures: list[Image.Image]) -> Tensor:
    """Pictures read back as one [0,1] batch (N,3,H,W)."""
    return torch.stack([from_pil(p) for p in pictures])


@torch.no_grad()
def read_as(encoder, head: ZeroShotHead | None, images, target_embeddings: Tensor | None = None,
            codecs: Sequence[str] = READ_BACK) -> dict[str, dict]:
    """Per codec: the pictures read back (`pictures`) from [0,1] images (a batch, or a list of any sizes), their
    embeddings through the model's own preprocessing, and where given the zero-shot probabilities over `head`'s
    classes (`probabilities`) and the cosine to the targets (`cos_to_target`)."""
    out = {}
    for codec in check_codecs(codecs):
        pictures = read_back(images, codec)
        embeddings = embed_images(encoder, pictures)
        entry = {"pictures": pictures, "embeddings": embeddings}
        if head is not None:
            entry["probabilities"] = head.probabilities(embeddings).cpu()
        if target_embeddings is not None:
            targets = target_embeddings.to(embeddings.device).reshape(len(embeddings), -1).float()
            entry["cos_to_target"] = torch.nn.functional.cosine_similarity(embeddings, targets, dim=1).cpu()
        out[codec] = entry
    return out
