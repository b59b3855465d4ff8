"""Reading embeddings: zero-shot (or nearest-prototype) classification (`classify`, the paper's vision x text
matrix), the PCA view of Fig 1 (`projection`), Gaussian-noise sensitivity as a detector of matched images
(`noise_sensitivity`, after arXiv:2402.08473), and images matched on one model read by another (`transfer`)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from probe import metrics, plots
from probe.data import ImageSet, load_image_set
from probe.errors import ProbeError
from probe.experiments.base import Result, as_encoder, name_of
from probe.images import as_pixels, open_pil
from probe.params import Param, declare
from probe.progress import Cancelled, Progress, check
from probe.projection import fit_pca
from probe.zeroshot import embed_images, prototype_head, resolve_templates, text_head, vision_text_matrix

Tensor = torch.Tensor


# --- zero-shot classification --------------------------------------------------------------------


@dataclass
class ClassifyResult(Result):
    """Probabilities of images over classes (the paper's vision x text matrix)."""
    names: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    probabilities: Tensor | None = None
    head: dict = field(default_factory=dict)

    def numbers(self) -> dict:
        return {"images": self.names, "labels": self.classes, "probabilities": self.probabilities.tolist(),
                "predictions": [self.classes[i] for i in self.probabilities.argmax(1)], "head": self.head}

    def figures(self) -> list[tuple[str, Any, dict]]:
        fig, data = plots.vision_text_figure(self.probabilities, [Path(n).name for n in self.names], self.classes,
                                             title=f"vision x text probabilities ({self.model['model']})")
        return [("classify", fig, data)]

    def headline(self) -> str:
        best = self.probabilities.argmax(1).tolist()
        return "; ".join(f"{Path(n).name}: {self.classes[j]} ({float(self.probabilities[i, j]):.3f})"
                         for i, (n, j) in enumerate(zip(self.names, best)))


def classify(encoder, images: Sequence, labels: Sequence[str] | None = None, *, templates="none",
             reference=None, seed: int = 0) -> ClassifyResult:
    """Zero-shot probabilities of `images` (files and PIL images are read through the model's own
    preprocessing, as a user of the model reads them; tensors through probe's) over `labels` with the model's
    text tower, or over the classes of a `reference` image set (a nearest-prototype head)."""
    encoder = as_encoder(encoder)
    if (labels is None) == (reference is None):
        raise ProbeError("pass either labels (the model's text tower) or reference (a nearest-prototype head "
                         "from labelled images)")
    items = [open_pil(item) if isinstance(item, (str, Path)) else item for item in images]
    for item in items:
        if not isinstance(item, Image.Image):
            as_pixels(item)
    if not items:
        raise ProbeError("no images to classify")
    start = time.perf_counter()
    if reference is not None:
        ref = reference if isinstance(reference, ImageSet) else load_image_set(reference, layout="folder")
        head = prototype_head(encoder, ref.images, ref.labels, ref.class_names)
    else:
        head = text_head(encoder, labels, templates=resolve_templates(templates))
    probabilities = vision_text_matrix(encoder, head, items)
    settings = {"labels": list(head.classes), "templates": list(head.templates),
                "reference": None if reference is None else str(getattr(reference, "source", reference))}
    return ClassifyResult(kind="classify", model=encoder.describe(), settings=settings, seed=seed,
                       seconds=time.perf_counter() - start, cancelled=False,
                       names=[name_of(item, f"image {i + 1}") for i, item in enumerate(images)],
                       classes=list(head.classes), probabilities=probabilities, head=head.describe())


CLASSIFY = declare(
    classify,
    templates=Param("zero-shot prompts: none (plain class names, as the paper), ensemble (the 80 CLIP ImageNet "
                    "prompts) or a file with one template per line, {} where the class name goes", kind=str),
)


# --- PCA view (Fig 1's projections) --------------------------------------------------------------


@dataclass
class ProjectionResult(Result):
    """Embeddings of some images as coefficients on the first principal components of a reference set."""
    names: list[str] = field(default_factory=list)
    coefficients: Tensor | None = None     # (N, k)
    explained: Tensor | None = None        # (k,) share of the reference set's variance
    pictures: list[Tensor] = field(default_factory=list)
    reference: str = ""

    def numbers(self) -> dict:
        return {"names": self.names, "reference": self.reference, "coefficients": self.coefficients.tolist(),
                "explained_variance_ratio": self.explained.tolist()}

    def figures(self) -> list[tuple[str, Any, dict]]:
        same_size = len({tuple(p.shape) for p in self.pictures}) == 1
        fig, data = plots.pca_bars_figure(self.coefficients, self.names,
                                          torch.stack(self.pictures).numpy() if same_size else None, self.explained,
                                          title=f"first {self.coefficients.shape[1]} principal-component coefficients "
                                                f"(PCA on {self.reference})")
        return [("pca_bars", fig, data)]

    def headline(self) -> str:
        return (f"{len(self.names)} images on {self.coefficients.shape[1]} components explaining "
                f"{float(self.explained.sum()):.0%} of the reference variance")


def projection(encoder, images: Sequence, reference, *, names: Sequence[str] | None = None, k: int = 6,
               seed: int = 0) -> ProjectionResult:
    """Coefficients of `images`' embeddings on the first `k` principal components of the embeddings of a
    `reference` set (an ImageSet or a list of images): the authors' Fig 1 view, where look-alike pictures
    with different embeddings get different bars."""
    encoder = as_encoder(encoder)
    pictures = [as_pixels(item, f"image {i + 1}") for i, item in enumerate(images)]
    if not pictures:
        raise ProbeError("no images to project")
    ref_images = reference.images if isinstance(reference, ImageSet) else [as_pixels(r, "reference") for r in reference]
    start = time.perf_counter()
    pca = fit_pca(embed_images(encoder, ref_images), k=k)
    coefficients = pca.transform(embed_images(encoder, pictures))
    label = (f"{len(ref_images)} reference images"
             + (f" ({reference.source})" if isinstance(reference, ImageSet) else ""))
    names = list(names) if names else [name_of(item, f"image {i + 1}") for i, item in enumerate(images)]
    return ProjectionResult(kind="projection", model=encoder.describe(), settings={"k": k, "reference": label}, seed=seed,
                         seconds=time.perf_counter() - start, cancelled=False, names=names,
                         coefficients=coefficients, explained=pca.explained_variance_ratio, pictures=pictures,
                         reference=label)


# --- Gaussian-noise sensitivity as a detector (arXiv:2402.08473) ---------------------------------


def roc_curve(negatives: Tensor, positives: Tensor) -> tuple[list[float], list[float], float]:
    """False- and true-positive rates of the rule `score >= threshold` over every threshold, and the AUC
    (the probability that a positive scores above a negative, ties counting half)."""
    neg, pos = negatives.double().flatten(), positives.double().flatten()
    thresholds = torch.cat([torch.tensor([math.inf], dtype=torch.float64),
                            torch.cat([neg, pos]).unique().flip(0)])
    fpr = [(neg >= t).double().mean().item() for t in thresholds]
    tpr = [(pos >= t).double().mean().item() for t in thresholds]
    greater = (pos[:, None] > neg[None, :]).double().mean().item()
    ties = (pos[:, None] == neg[None, :]).double().mean().item()
    return fpr, tpr, greater + 0.5 * ties


@dataclass
class NoiseResult(Result):
    """How far Gaussian pixel noise moves the embeddings of clean and of modified (matched) images."""
    sigmas: list[float] = field(default_factory=list)
    clean: dict = field(default_factory=dict)      # sigma -> (N,) score per clean image
    modified: dict = field(default_factory=dict)   # sigma -> (M,) score per modified image
    roc: dict = field(default_factory=dict)        # sigma -> (fpr, tpr, auc)

    def numbers(self) -> dict:
        return {"sigmas": self.sigmas, "score": "mean cosine distance between the embeddings of an image and of "
                                                "its noisy copies",
                "auc": [self.roc[s][2] for s in self.sigmas],
                "clean_scores": [self.clean[s].tolist() for s in self.sigmas],
                "modified_scores": [self.modified[s].tolist() for s in self.sigmas],
                "roc": [{"fpr": self.roc[s][0], "tpr": self.roc[s][1]} for s in self.sigmas]}

    def figures(self) -> list[tuple[str, Any, dict]]:
        best = max(self.sigmas, key=lambda s: self.roc[s][2])
        fig, data = plots.noise_detector_figure({f"sigma {255 * s:g}/255": self.roc[s] for s in self.sigmas},
                                                self.clean[best].tolist(), self.modified[best].tolist(),
                                                f"sigma {255 * best:g}/255")
        return [("noise_roc", fig, data)]

    def headline(self) -> str:
        return ", ".join(f"AUC {self.roc[s][2]:.3f} at sigma {255 * s:g}/255" for s in self.sigmas)


def noise_sensitivity(encoder, clean: Tensor, modified: Tensor, *, sigmas: Sequence[float] = (4 / 255, 8 / 255),
                      samples: int = 8, batch_size: int = 64, seed: int = 0,
                      progress: Progress | None = None) -> NoiseResult:
    """Gaussian-noise sensitivity as a detector of matched images (after arXiv:2402.08473): each image's score
    is the mean cosine distance between its embedding and those of `samples` copies with N(0, sigma^2) pixel
    noise (clipped to [0,1]); the ROC and AUC of that score separate `modified` (positives) from `clean`
    (negatives) images, both [0,1] batches (N,3,H,W)."""
    encoder = as_encoder(encoder)
    if samples < 1 or not sigmas or not all(0 < s <= 1 for s in sigmas):
        raise ProbeError(f"need samples >= 1 and noise levels in (0, 1], got {samples} and {list(sigmas)}")
    images = torch.cat([clean, modified]).float()
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    base = torch.nn.functional.normalize(embed_images(encoder, images), dim=1)
    scores = {}
    try:
        for index, sigma in enumerate(sigmas):
            check(progress, "noise", index, len(sigmas))
            total = torch.zeros(len(images), dtype=torch.float64)
            for _ in range(samples):
                noisy = (images + sigma * torch.randn(images.shape, generator=gen)).clamp(0, 1)
                emb = torch.nn.functional.normalize(embed_images(encoder, noisy, batch_size), dim=1)
                total += (1 - (emb * base).sum(1)).double().cpu()
            scores[sigma] = total / samples
        check(progress, "noise", len(sigmas), len(sigmas))
    except Cancelled:
        pass
    n = len(clean)
    done = list(scores)
    return NoiseResult(kind="noise_sensitivity", model=encoder.describe(),
                    settings={"sigmas": list(sigmas), "samples": samples, "clean": n, "modified": len(modified)},
                    seed=seed, seconds=time.perf_counter() - start, cancelled=len(done) < len(sigmas), sigmas=done,
                    clean={s: v[:n] for s, v in scores.items()}, modified={s: v[n:] for s, v in scores.items()},
                    roc={s: roc_curve(v[:n], v[n:]) for s, v in scores.items()})


# --- transfer: matched on one model, read by another ---------------------------------------------


def distance_ratio(encoder, matched: Tensor, sources: Tensor, targets: Tensor) -> Tensor:
    """||f(matched) - f(target)|| / ||f(source) - f(target)|| per pair: 0 when the embedding reached the
    target, ~1 when it did not move towards it."""
    fm, fs, ft = (embed_images(encoder, x.float()) for x in (matched, sources, targets))
    return (metrics.l2(fm, ft) / metrics.l2(fs, ft).clamp_min(1e-12)).cpu()


@dataclass
class TransferResult(Result):
    """Matched images read by a second model: do they carry their target there too (transfer) or not?"""
    classes: list[str] = field(default_factory=list)
    source_labels: list[int] = field(default_factory=list)
    target_labels: list[int] = field(default_factory=list)
    probabilities: Tensor | None = None           # (P, C) the reader on the matched images
    ratio_reader: Tensor | None = None            # (P,) distance ratio on the reader
    ratio_matcher: Tensor | None = None           # (P,) on the model that matched them, when given
    matcher: dict = field(default_factory=dict)

    def rates(self) -> dict:
        predicted = self.probabilities.argmax(1)
        return {"reader_target_rate": (predicted == torch.tensor(self.target_labels)).float().mean().item(),
                "reader_source_rate": (predicted == torch.tensor(self.source_labels)).float().mean().item()}

    def numbers(self) -> dict:
        out = {"classes": self.classes, "matched_on": self.matcher, **self.rates(),
               "distance_ratio_reader": self.ratio_reader.tolist(),
               "distance_ratio_reader_median": float(self.ratio_reader.median()),
               "predicted": [self.classes[i] for i in self.probabilities.argmax(1)]}
        if self.ratio_matcher is not None:
            out |= {"distance_ratio_matcher": self.ratio_matcher.tolist(),
                    "distance_ratio_matcher_median": float(self.ratio_matcher.median())}
        return out

    def figures(self) -> list[tuple[str, Any, dict]]:
        ratios = {f"read by {self.model['model']}": self.ratio_reader.tolist()}
        if self.ratio_matcher is not None:
            ratios = {f"matched on {self.matcher.get('model', 'the matcher')}": self.ratio_matcher.tolist(), **ratios}
        fig, data = plots.transfer_figure(self.rates(), ratios, reader=self.model["model"])
        return [("transfer", fig, data)]

    def headline(self) -> str:
        r = self.rates()
        return (f"{self.model['model']} reads {r['reader_target_rate']:.0%} of the matched images as their target, "
                f"{r['reader_source_rate']:.0%} as their source; median distance ratio "
                f"{float(self.ratio_reader.median()):.2f}")


def transfer(reader, matched: Tensor, sources: Tensor, targets: Tensor, source_labels: Sequence[int],
             target_labels: Sequence[int], classes: Sequence[str], *, head=None, matcher=None,
             templates="none", seed: int = 0) -> TransferResult:
    """Images matched on one model (`matcher`, optional, for comparison) read by `reader`: its class
    predictions (its text head over `classes`, or `head`) and the distance ratio
    ||f(matched) - f(target)|| / ||f(source) - f(target)|| on each model. Batches (P,3,H,W) in [0,1]."""
    reader = as_encoder(reader)
    if not (len(matched) == len(sources) == len(targets) == len(source_labels) == len(target_labels)):
        raise ProbeError("matched, sources, targets and their labels must have one row per pair")
    start = time.perf_counter()
    head = head or text_head(reader, classes, templates=templates)
    matcher = as_encoder(matcher) if matcher is not None else None
    return TransferResult(kind="transfer", model=reader.describe(),
                       settings={"head": head.describe(), "pairs": len(matched)}, seed=seed,
                       seconds=time.perf_counter() - start, cancelled=False, classes=list(classes),
                       source_labels=list(source_labels), target_labels=list(target_labels),
                       probabilities=vision_text_matrix(reader, head, matched.float()),
                       ratio_reader=distance_ratio(reader, matched, sources, targets),
                       ratio_matcher=None if matcher is None else distance_ratio(matcher, matched, sources, targets),
                       matcher={} if matcher is None else matcher.describe())


