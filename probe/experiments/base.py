"""What every experiment shares: the shape of a result, and turning what a caller passes (a model spec, image
files, PIL images, tensors) into what the experiments compute on."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from probe.errors import ProbeError
from probe.images import as_pixels, open_pil
from probe.matching import Settings
from probe.models import ENCODERS
from probe.results import provenance

Tensor = torch.Tensor


def as_encoder(encoder):
    """An Encoder as given, or a model spec / preset name loaded on the CPU (through the shared cache)."""
    if isinstance(encoder, str):
        return ENCODERS.get(encoder)
    if not hasattr(encoder, "embed_normalized"):
        raise ProbeError(f"expected an Encoder or a model spec, got {type(encoder).__name__}")
    return encoder


def name_of(item: Any, default: str) -> str:
    """A file's path as given, or `default` for images passed as pixels."""
    return str(item) if isinstance(item, (str, Path)) else default


def start_of(item: Any, settings: Settings, what: str):
    """What matching starts from: for the paper's procedure the image exactly as the authors' code opened it
    (a file through PIL, unconverted), else [0,1] pixels."""
    if settings.mode == "paper" and isinstance(item, (str, Path)):
        return open_pil(item)
    if settings.mode == "paper" and isinstance(item, Image.Image):
        return item
    return as_pixels(item, what)


# --- the common shape of a result ----------------------------------------------------------------


@dataclass
class Result:
    """What every experiment returns: which model and settings made which numbers, and whether it finished."""

    kind: str
    model: dict                 # encoder.describe(): spec, weights, preprocessing, device
    settings: dict
    seed: int
    seconds: float
    cancelled: bool

    def numbers(self) -> dict:
        return {}

    def to_dict(self) -> dict:
        return provenance(experiment=self.kind, model=self.model["model"], weights=self.model["weights"],
                          weights_sha256=self.model.get("weights_sha256"), seed=self.seed, settings=self.settings,
                          cancelled=self.cancelled, seconds=self.seconds, encoder=self.model, **self.numbers())

    def figures(self) -> list[tuple[str, Any, dict]]:
        return []

    def images(self) -> dict[str, Tensor]:
        return {}

    def tables(self) -> dict[str, list[dict]]:
        return {}

    def headline(self) -> str:
        return f"{self.kind} {'cancelled' if self.cancelled else 'done'} in {self.seconds:.1f} s"


def tolist(value):
    return None if value is None else value.tolist()


def cosine_matrix(embeddings: Tensor) -> Tensor:
    """Pairwise cosine (N, N) between embeddings, in float64 on the CPU."""
    unit = torch.nn.functional.normalize(embeddings.double(), dim=1)
    return (unit @ unit.T).cpu()
