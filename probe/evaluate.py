"""Systematic evaluation: match every image to every image of another class, then classify.

The sister paper (arXiv:2402.08473) reports zero-shot accuracy above 99% on clean Imagenette images and
0% after this procedure: every matched image still looks like its source but is classified as its target.
Here, for an image set and a zero-shot head:

* clean accuracy: share of images classified as their own class;
* success matrix S (N x N): S[i, j] = 1 when image i matched to image j is classified as j's class,
  0 when not, NaN for pairs not run (i == j, or same class by default);
* success rate: mean of S over the pairs run;
* matched accuracy: share of matched images still classified as their source's class (the 0%).

Matched images are rounded to 8 bits before classification by default, as the paper re-reads saved PNGs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from probe.data import ImageSet, Pairs, all_pairs
from probe.errors import ProbeError
from probe.images import quantize as quantize_8bit
from probe.zeroshot import ZeroShotHead, vision_text_matrix

MatchFn = Callable[[Any, torch.Tensor, torch.Tensor], Any]
"""(encoder, sources (B,3,H,W), targets (B,3,H,W)) -> result with `.images` (B,3,H,W) and `.converged` (B,)."""


def match_with_probe(encoder, sources: torch.Tensor, targets: torch.Tensor):
    """The default matcher: probe.matching.match with its defaults (wrap it with functools.partial
    in your own MatchFn to change steps, budget or mode)."""
    from probe.matching import match

    return match(encoder, sources, targets)


@dataclass
class SystematicResult:
    """Per-image clean probabilities and per-pair matched probabilities; the summary numbers derive from them."""

    class_names: list[str]
    labels: list[int]                     # class of each image
    image_names: list[str]
    clean_probabilities: torch.Tensor     # (N, C)
    pairs: Pairs
    matched_probabilities: torch.Tensor   # (P, C), row p for pair p
    converged: torch.Tensor               # (P,) bool, as the matcher reported

    @property
    def clean_accuracy(self) -> float:
        return (self.clean_probabilities.argmax(1) == torch.tensor(self.labels)).float().mean().item()

    def _matched_against(self, side: tuple[int, ...]) -> torch.Tensor:
        """(P,) bool: each matched image classified as the class of its pair's source or target (`side`)."""
        labels = torch.tensor(self.labels)[list(side)]
        return self.matched_probabilities.argmax(1) == labels

    @property
    def success_matrix(self) -> torch.Tensor:
        """(N, N): 1 where source i matched to j is classified as j's class, 0 where not, NaN where not run."""
        n = len(self.labels)
        out = torch.full((n, n), float("nan"))
        out[list(self.pairs.sources), list(self.pairs.targets)] = self._matched_against(self.pairs.targets).float()
        return out

    @property
    def success_rate(self) -> float:
        return self._matched_against(self.pairs.targets).float().mean().item()

    @property
    def matched_accuracy(self) -> float:
        return self._matched_against(self.pairs.sources).float().mean().item()

    def summary(self) -> dict:
        """The JSON-able record: accuracies, the matrix, per-pair predictions."""
        predictions = self.matched_probabilities.argmax(1)
        return {
            "classes": self.class_names, "labels": self.labels, "images": self.image_names,
            "clean_accuracy": self.clean_accuracy, "matched_accuracy": self.matched_accuracy,
            "success_rate": self.success_rate, "pairs_run": len(self.pairs), "pair_rule": self.pairs.rule,
            "converged": int(self.converged.sum()),
            "success_matrix": [[None if math.isnan(v) else v for v in row] for row in self.success_matrix.tolist()],
            "clean_predictions": [self.class_names[i] for i in self.clean_probabilities.argmax(1)],
            "pairs": [{"source": s, "target": t, "predicted": self.class_names[p],
                       "target_probability": self.matched_probabilities[k, self.labels[t]].item(),
                       "converged": bool(self.converged[k])}
                      for k, ((s, t), p) in enumerate(zip(self.pairs, predictions.tolist()))],
        }


def systematic_evaluation(encoder, head: ZeroShotHead, image_set: ImageSet, match_fn: MatchFn | None = None,
                          exclude: str = "same_class", batch_size: int = 8, quantize: bool = True,
                          progress: bool = False) -> SystematicResult:
    """Classify the clean images, match every ordered pair of the set (see `probe.data.all_pairs`),
    classify the matched images. `head.classes` must be the image set's class names, in order."""
    if tuple(head.classes) != tuple(image_set.class_names):
        raise ProbeError(f"the head's classes {list(head.classes)} differ from the image set's "
                         f"{image_set.class_names}; build the head from image_set.class_names")
    match_fn = match_fn or match_with_probe
    images = image_set.stack(encoder.input_size).to(encoder.device)
    clean = vision_text_matrix(encoder, head, images)
    pairs = all_pairs(image_set.labels, exclude)
    batches = pairs.batches(batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, total=-(-len(pairs) // batch_size), desc="matching pairs", unit="batch")
    probabilities, converged = [], []
    for sources, targets in batches:
        result = match_fn(encoder, images[sources], images[targets])
        matched = result.images.detach()
        if matched.shape[0] != len(sources):
            raise ProbeError(f"the matcher returned {matched.shape[0]} images for {len(sources)} pairs")
        probabilities.append(vision_text_matrix(encoder, head, quantize_8bit(matched) if quantize else matched))
        converged.append(torch.as_tensor(result.converged).bool().reshape(-1).cpu())
    return SystematicResult(list(image_set.class_names), list(image_set.labels), list(image_set.names),
                            clean, pairs, torch.cat(probabilities), torch.cat(converged))
