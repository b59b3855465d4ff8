"""What a reader of a saved picture gets back. A matched image is a float tensor, but what a visitor downloads,
the authors' pipeline re-reads and a downstream model sees is a file: every "after" number (the class read, the
cosine to the target) is measured on the picture read back from it, through the model's own preprocessing.

`CODECS` names the ways a picture comes back, each a function from a [0,1] image (3,H,W) to the decoded picture (a
PIL image, as a file opens): "png" (8-bit, lossless: the rounding to 8 bits) is the one every result reports; the
others are what the web does to a picture (`SURVIVAL`), all through Pillow as the web's own software: JPEG at
quality 95, 90, 75 and 50, a 0.5x downscale and back up (bicubic), and a screenshot posted online (PNG -> JPEG 85
-> 0.75x). Add an entry to measure another.
"""
from __future__ import annotations

import io
from typing import Callable, Sequence

import torch
from PIL import Image

from probe.errors import ProbeError
from probe.images import from_pil, to_pil
from probe.zeroshot import ZeroShotHead, embed_images

Tensor = torch.Tensor
BICUBIC = Image.Resampling.BICUBIC


def png(image: Tensor) -> Image.Image:
    """Exactly the pixels an 8-bit PNG holds."""
    return to_pil(image)


def jpeg(quality: int) -> Callable[[Tensor], Image.Image]:
    """Saved as a JPEG at `quality` by Pillow (its defaults: 4:2:0 chroma subsampling, as most of the web)."""
    def encode(image: Tensor) -> Image.Image:
        return jpeg_file(to_pil(image), quality)
    return encode


def jpeg_file(picture: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def scaled(picture: Image.Image, factor: float) -> Image.Image:
    width, height = picture.size
    return picture.resize((max(1, round(width * factor)), max(1, round(height * factor))), BICUBIC)


def down_and_up(image: Tensor) -> Image.Image:
    """Scaled to half its size and back up (Pillow bicubic), as a thumbnail that is enlarged again."""
    picture = to_pil(image)
    return scaled(picture, 0.5).resize(picture.size, BICUBIC)


def screenshot(image: Tensor) -> Image.Image:
    """A screenshot posted online: the PNG re-encoded as JPEG at quality 85, then shown at 0.75x (bicubic)."""
    return scaled(jpeg_file(to_pil(image), 85), 0.75)


CODECS: dict[str, Callable[[Tensor], Image.Image]] = {
    "png": png, "jpeg95": jpeg(95), "jpeg90": jpeg(90), "jpeg75": jpeg(75), "jpeg50": jpeg(50),
    "resize0.5": down_and_up, "screenshot": screenshot}
READ_BACK = ("png",)
SURVIVAL = ("jpeg95", "jpeg90", "jpeg75", "jpeg50", "resize0.5", "screenshot")
SHOWN = {"png": "PNG", "jpeg95": "JPEG 95", "jpeg90": "JPEG 90", "jpeg75": "JPEG 75", "jpeg50": "JPEG 50",
         "resize0.5": "0.5x and back", "screenshot": "PNG -> JPEG 85 -> 0.75x"}


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


def survival_lines(values: dict, codecs: Sequence[str] = ("jpeg75", "screenshot")) -> list[str]:
    """"after JPEG 75: read as X, cosine c", one per codec in `codecs` that a result's `survival` block holds."""
    out = []
    for codec in codecs:
        seen = values.get("survival", {}).get(codec)
        if seen:
            read = f"read as {seen['read_as']}, " if "read_as" in seen else ""
            out.append(f"after {SHOWN[codec]}: {read}cosine {seen['cos_to_target']:.3f}")
    return out
