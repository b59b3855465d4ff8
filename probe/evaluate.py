"""Systematic evaluation: match every image to every image of another class, then classify.

The sister paper (arXiv:2402.08473) reports zero-shot accuracy above 99% on clean Imagenette images and
0% after this procedure: every matched image still looks like its source but is classified as its target.
Here, for an image set and a zero-shot head:

* clean accuracy: share of images classified as their own class;
* success matrix S (N x N): S[i, j] = 1 when image i matched to image j is classified as j's class,
  0 when not, NaN for pairs not run (i == j, or same class by default);
* success rate: mean of S over the pairs run;
* matched accuracy: share of matched images still classified as their source's class (the 0%).

Matched images are read back from 8-bit PNGs (`probe.readback`) before classification, as the paper re-reads
saved PNGs.
`match_pairs` does the work for any list of pairs, so a sweep can be cut into shards (`repro`) and merged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch

from probe import metrics
from probe.data import ImageSet, Pairs, all_pairs
from probe.errors import ProbeError
from probe.images import to_pil
from probe.readback import pixels, read_as
from probe.matching import FastSettings, Settings, match
from probe.progress import Progress, report, within
from probe.zeroshot import ZeroShotHead, vision_text_matrix

MatchFn = Callable[[Any, Any, Any], Any]
"""(encoder, sources, targets) -> result with `.images` (B,3,h,w) and `.converged` (B,): a stand-in for
`probe.matching.match` (tests, other attacks)."""


def sweep_inputs(encoder, image_set: ImageSet, settings: Settings) -> tuple[Any, Settings]:
    """The images a sweep matches, and its settings: model resolution for fast mode (pairs of different
    sizes cannot share a batch), the original images (any size) for paper mode, whose start is the model's
    own preprocessing."""
    if settings.mode == "paper":
        return list(image_set.images), settings
    return image_set.at_model_input(encoder), replace(settings, resolution="model")


@dataclass
class PairOutcomes:
    """What matching a list of pairs gave, one row per pair (8-bit matched images)."""

    pairs: Pairs
    probabilities: torch.Tensor      # (P, C) zero-shot probabilities of the 8-bit matched images
    converged: torch.Tensor          # (P,) bool
    psnr_db: torch.Tensor            # (P,) 8-bit matched image vs its source at the same resolution
    linf_pixel: torch.Tensor         # (P,)
    rms_pixel: torch.Tensor          # (P,)
    cos_to_target: torch.Tensor      # (P,) of the 8-bit matched image's embedding to the target embedding
    matched: torch.Tensor | None     # (P,3,h,w) 8-bit matched images, when kept
    sources: torch.Tensor | None     # (P,3,h,w) the sources at that resolution, when kept
    cancelled: bool = False

    def __len__(self) -> int:
        return len(self.probabilities)


def match_pairs(encoder, head: ZeroShotHead, images, pairs: Pairs, settings: Settings | None = None,
                match_fn: MatchFn | None = None, batch_size: int = 8, seed: int = 0, keep_images: bool = False,
                progress: Progress | None = None) -> PairOutcomes:
    """Match the pairs `batch_size` at a time (images: a batch, or a list for paper mode), round the results
    to 8 bits and classify them. Cancelling keeps the batches finished so far."""
    settings = settings or FastSettings(resolution="model")
    match_fn = match_fn or (lambda enc, s, t: match(enc, s, t, settings, seed=seed, progress=inner))
    rows: dict[str, list] = {k: [] for k in ("probabilities", "converged", "psnr_db", "linf_pixel", "rms_pixel",
                                              "cos_to_target", "matched", "sources")}
    total, cancelled, done = len(pairs), False, 0
    inner = within(progress, "pairs")
    for sources, targets in pairs.batches(batch_size):
        if not report(progress, "pairs", done, total):
            cancelled = True
            break
        src = [images[i] for i in sources] if isinstance(images, list) else images[sources]
        tgt = [images[j] for j in targets] if isinstance(images, list) else images[targets]
        result = match_fn(encoder, src, tgt)
        if getattr(result, "cancelled", False):
            cancelled = True
            break
        if result.images.shape[0] != len(sources):
            raise ProbeError(f"the matcher returned {result.images.shape[0]} images for {len(sources)} pairs")
        target_emb = getattr(result, "target_embedding", None)
        read = read_as(encoder, head, result.images, target_emb)["png"]
        matched = pixels(read["pictures"])
        source_pixels = getattr(result, "sources", None)
        source_pixels = (src if torch.is_tensor(src) else torch.stack(src)) if source_pixels is None else source_pixels
        source_pixels = source_pixels.detach().cpu()
        rows["probabilities"].append(read["probabilities"])
        rows["converged"].append(torch.as_tensor(result.converged).bool().reshape(-1).cpu())
        rows["psnr_db"].append(metrics.psnr(matched, source_pixels))
        rows["linf_pixel"].append(metrics.linf(matched, source_pixels))
        rows["rms_pixel"].append(metrics.l2(matched, source_pixels) / math.sqrt(matched[0].numel()))
        rows["cos_to_target"].append(read["cos_to_target"] if target_emb is not None
                                     else torch.full((len(sources),), math.nan))
        if keep_images:
            rows["matched"].append(matched.cpu())
            rows["sources"].append(source_pixels.cpu())
        done += len(sources)
    report(progress, "pairs", done, total)
    kept = Pairs(pairs.sources[:done], pairs.targets[:done], pairs.rule)
    cat = {k: (torch.cat(v) if v else None) for k, v in rows.items()}
    if not done:
        cat.update({k: torch.empty(0) for k in ("converged", "psnr_db", "linf_pixel", "rms_pixel", "cos_to_target")})
        cat["probabilities"] = torch.empty(0, len(head.classes))
        cat["converged"] = torch.empty(0, dtype=torch.bool)
    return PairOutcomes(kept, cat["probabilities"], cat["converged"], cat["psnr_db"], cat["linf_pixel"],
                        cat["rms_pixel"], cat["cos_to_target"], cat["matched"], cat["sources"], cancelled)


@dataclass
class SystematicOutcome:
    """Per-image clean probabilities and per-pair matched outcomes; the summary numbers derive from them."""

    class_names: list[str]
    labels: list[int]                     # class of each image
    image_names: list[str]
    clean_probabilities: torch.Tensor     # (N, C)
    outcomes: PairOutcomes

    @property
    def pairs(self) -> Pairs:
        return self.outcomes.pairs

    @property
    def matched_probabilities(self) -> torch.Tensor:
        return self.outcomes.probabilities

    @property
    def converged(self) -> torch.Tensor:
        return self.outcomes.converged

    @property
    def cancelled(self) -> bool:
        return self.outcomes.cancelled

    @property
    def clean_accuracy(self) -> float:
        return (self.clean_probabilities.argmax(1) == torch.tensor(self.labels)).float().mean().item()

    def _matched_against(self, side: tuple[int, ...]) -> torch.Tensor:
        """(P,) bool: each matched image classified as the class of its pair's source or target (`side`)."""
        labels = torch.tensor(self.labels, dtype=torch.long)[list(side)]
        return self.matched_probabilities.argmax(1) == labels

    @property
    def success_matrix(self) -> torch.Tensor:
        """(N, N): 1 where source i matched to j is classified as j's class, 0 where not, NaN where not run."""
        n = len(self.labels)
        out = torch.full((n, n), float("nan"))
        if len(self.pairs):
            out[list(self.pairs.sources), list(self.pairs.targets)] = self._matched_against(self.pairs.targets).float()
        return out

    @property
    def success_rate(self) -> float:
        return self._matched_against(self.pairs.targets).float().mean().item() if len(self.pairs) else math.nan

    @property
    def matched_accuracy(self) -> float:
        return self._matched_against(self.pairs.sources).float().mean().item() if len(self.pairs) else math.nan

    def summary(self) -> dict:
        """The JSON-able record: accuracies, the matrix, per-pair predictions and pixel changes."""
        predictions = self.matched_probabilities.argmax(1)
        o = self.outcomes
        return {
            "classes": self.class_names, "labels": self.labels, "images": self.image_names,
            "clean_accuracy": self.clean_accuracy, "matched_accuracy": self.matched_accuracy,
            "success_rate": self.success_rate, "pairs_run": len(self.pairs), "pair_rule": self.pairs.rule,
            "converged": int(self.converged.sum()), "cancelled": self.cancelled,
            "success_matrix": [[None if math.isnan(v) else v for v in row] for row in self.success_matrix.tolist()],
            "clean_predictions": [self.class_names[i] for i in self.clean_probabilities.argmax(1)],
            "pairs": [{"source": s, "target": t, "predicted": self.class_names[p],
                       "target_probability": self.matched_probabilities[k, self.labels[t]].item(),
                       "converged": bool(o.converged[k]), "psnr_db": float(o.psnr_db[k]),
                       "linf_pixel": float(o.linf_pixel[k]), "rms_pixel": float(o.rms_pixel[k]),
                       "cos_to_target": float(o.cos_to_target[k])}
                      for k, ((s, t), p) in enumerate(zip(self.pairs, predictions.tolist()))],
        }


def systematic_evaluation(encoder, head: ZeroShotHead, image_set: ImageSet, settings: Settings | None = None,
                          match_fn: MatchFn | None = None, exclude: str = "same_class", batch_size: int = 8,
                          seed: int = 0, keep_images: bool = False,
                          progress: Progress | None = None) -> SystematicOutcome:
    """Classify the clean images, match every ordered pair of the set (see `probe.data.all_pairs`), round
    the matched images to 8 bits, classify them. `head.classes` must be the image set's class names, in order."""
    if tuple(head.classes) != tuple(image_set.class_names):
        raise ProbeError(f"the head's classes {list(head.classes)} differ from the image set's "
                         f"{image_set.class_names}; build the head from image_set.class_names")
    images, settings = sweep_inputs(encoder, image_set, settings or FastSettings())
    clean = vision_text_matrix(encoder, head, clean_view(images))
    outcomes = match_pairs(encoder, head, images, all_pairs(image_set.labels, exclude), settings, match_fn,
                           batch_size, seed, keep_images, progress)
    return SystematicOutcome(list(image_set.class_names), list(image_set.labels), list(image_set.names), clean,
                            outcomes)


def clean_view(images):
    """Clean images as the matcher starts from them: the batch, or (paper mode) 8-bit PIL images read through
    the model's own preprocessing."""
    if torch.is_tensor(images):
        return images
    return [to_pil(image) for image in images]
