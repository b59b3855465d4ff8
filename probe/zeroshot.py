"""Zero-shot heads: class probabilities from embeddings, as the paper's "vision x text" matrices.

A head is a matrix of unit class vectors W (C, m) and a logit scale s. For an image embedding e,
probabilities = softmax(s * normalize(e) . W^T), CLIP's zero-shot rule (the paper's downstream classifier).

* `text_head`: W from the model's own text tower, one text per class, or a prompt-template ensemble:
  for each class, the mean of the normalised embeddings of its prompts, renormalised (CLIP's recipe).
* `prototype_head`: for models without a text tower, W = the renormalised mean of the normalised
  embeddings of labelled reference images per class (nearest prototype by cosine).

The paper's classifier is ImageBind-huge, whose vision and text towers are OpenCLIP ViT-H-14 (frozen);
OpenCLIP ViT-H-14's own zero-shot head stands in for it here, a substitution, not a copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from probe.errors import ProbeError

FALLBACK_LOGIT_SCALE = 100.0  # CLIP's trained value (exp of the clamped log-scale 4.6052)



def ensemble_templates() -> tuple[str, ...]:
    """The 80 prompt templates of OpenAI's CLIP ImageNet evaluation, as format strings with "{}" (open_clip
    ships them as lambdas; calling each on "{}" gives the text; open_clip is imported here, when asked)."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES)


@dataclass(frozen=True)
class ZeroShotHead:
    """Unit class vectors and a logit scale: probabilities = softmax(scale * cos(embedding, class))."""

    classes: tuple[str, ...]
    weights: torch.Tensor          # (C, m), unit rows
    scale: float
    kind: str                      # "text" or "prototype"
    scale_source: str              # where the scale came from, for the record
    templates: tuple[str, ...] = ()

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        emb = F.normalize(embeddings.float(), dim=-1).to(self.weights.device)
        return self.scale * emb @ self.weights.T

    def probabilities(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, C) rows summing to 1, for raw or normalised embeddings (N, m)."""
        return self.logits(embeddings).softmax(dim=-1)

    def describe(self) -> dict:
        return {"head": self.kind, "classes": list(self.classes), "logit_scale": self.scale,
                "logit_scale_source": self.scale_source, "templates": list(self.templates)}


def resolve_templates(templates: str | Sequence[str] | None = "none") -> tuple[str, ...]:
    """`none` (plain class names, as the paper), `ensemble` (the 80 CLIP ImageNet templates),
    a path to a file with one template per line (blank lines and `#` comments skipped),
    or a list of templates. Every template holds `{}` exactly once, where the class name goes."""
    if templates is None or templates == "none":
        return ("{}",)
    if templates == "ensemble":
        return ensemble_templates()
    if isinstance(templates, (str, Path)):
        path = Path(templates)
        if not path.is_file():
            raise ProbeError(f"templates {str(templates)!r}: expected none, ensemble or a file with one "
                             "template per line, and no such file exists")
        lines = [line.strip() for line in path.read_text().splitlines()]
        found = tuple(line for line in lines if line and not line.startswith("#"))
        where = str(path)
    else:
        found, where = tuple(templates), "templates"
    if not found:
        raise ProbeError(f"{where}: no templates found")
    for template in found:
        if template.count("{}") != 1 or template.count("{") != 1 or template.count("}") != 1:
            raise ProbeError(f"{where}: template {template!r} must contain '{{}}' exactly once "
                             "(and no other braces)")
    return found


def parse_labels(text: str | None, default: Sequence[str] = ()) -> list[str]:
    """Comma-separated class names (the CLI's --labels, the app's text box); empty gives `default`."""
    labels = [part.strip() for part in (text or "").split(",") if part.strip()] or list(default)
    if len(labels) < 2:
        raise ProbeError(f"give at least 2 comma-separated class names, got {text!r}")
    if len(labels) > 100:
        raise ProbeError(f"at most 100 class names, got {len(labels)}")
    return labels


def logit_scale_of(encoder, scale: float | None = None) -> tuple[float, str]:
    """The scale to use and where it came from: given, the model's own, or the fallback 100."""
    if scale is not None:
        return float(scale), "given"
    if getattr(encoder, "logit_scale", None) is not None:
        return float(encoder.logit_scale), "model"
    return FALLBACK_LOGIT_SCALE, f"fallback {FALLBACK_LOGIT_SCALE:g} (the model has no logit scale)"


def _check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    names = tuple(str(c).strip() for c in classes)
    if len(names) < 2:
        raise ProbeError(f"a zero-shot head needs at least 2 classes, got {list(names)}")
    if any(not n for n in names):
        raise ProbeError(f"empty class name in {list(names)}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ProbeError(f"class names repeat: {duplicates}")
    return names


@torch.no_grad()
def text_head(encoder, classes: Sequence[str], templates: str | Sequence[str] | None = "none",
              scale: float | None = None) -> ZeroShotHead:
    """Zero-shot head from the model's own text tower (class names, optionally a template ensemble)."""
    names = _check_classes(classes)
    if not encoder.has_text:
        raise ProbeError(f"{encoder.spec} has no text tower, so it has no zero-shot text head; build a "
                         "nearest-prototype head from labelled reference images instead "
                         "(probe.zeroshot.prototype_head; CLI: --reference FOLDER)")
    prompts = resolve_templates(templates)
    rows = []
    for name in names:
        emb = encoder.encode_text([t.format(name) for t in prompts], normalize=True)
        rows.append(F.normalize(emb.mean(dim=0), dim=-1))
    value, source = logit_scale_of(encoder, scale)
    return ZeroShotHead(names, torch.stack(rows), value, "text", source, prompts)


@torch.no_grad()
def embed_images(encoder, images, batch_size: int = 32) -> torch.Tensor:
    """Raw embeddings (N, m) of images: a [0,1] batch (N,3,H,W) or a list of (3,H,W) tensors of any sizes go
    through probe's differentiable preprocessing; PIL images through the model's own (as its users read files)."""
    from PIL import Image

    if isinstance(images, torch.Tensor):
        if images.dim() != 4:
            raise ProbeError(f"expected images as (N,3,H,W), got shape {tuple(images.shape)}")
        items = list(images)
    else:
        items = list(images)
    if not items:
        raise ProbeError("no images to embed")
    chunks = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        if all(isinstance(item, Image.Image) for item in chunk):
            chunks.append(encoder.embed_normalized(encoder.reference_input(chunk)))
        elif len({tuple(item.shape) for item in chunk}) == 1:
            chunks.append(encoder(torch.stack(chunk).to(encoder.device)))
        else:  # different sizes: the encoder resizes each one
            chunks.extend(encoder(item[None].to(encoder.device)) for item in chunk)
    return torch.cat(chunks).float()


def prototype_head(encoder, images, labels: Sequence[int], classes: Sequence[str],
                   scale: float | None = None, batch_size: int = 32) -> ZeroShotHead:
    """Nearest-prototype head from labelled reference images, for models without a text tower:
    each class vector is the renormalised mean of its images' normalised embeddings."""
    names = _check_classes(classes)
    labels_t = torch.as_tensor(list(labels), dtype=torch.long)
    if len(labels_t) != len(images):
        raise ProbeError(f"{len(images)} reference images but {len(labels_t)} labels")
    emb = F.normalize(embed_images(encoder, images, batch_size), dim=-1)
    rows = []
    for index, name in enumerate(names):
        members = emb[labels_t.to(emb.device) == index]
        if len(members) == 0:
            raise ProbeError(f"class {name!r} has no reference images")
        rows.append(F.normalize(members.mean(dim=0), dim=-1))
    value, source = logit_scale_of(encoder, scale)
    return ZeroShotHead(names, torch.stack(rows), value, "prototype", source)


def vision_text_matrix(encoder, head: ZeroShotHead, images, batch_size: int = 32) -> torch.Tensor:
    """The paper's "vision x text" matrix: rows images, columns classes, each row a distribution
    (images as `embed_images` takes them)."""
    return head.probabilities(embed_images(encoder, images, batch_size)).cpu()
