"""The systematic evaluation (the sister paper's N x N: every image matched to every image of another class, then
classified), whole (`systematic`) or planned and cut into shards that run anywhere and merge in order
(`plan_systematic`, `merge_outcomes`, `systematic_from`: what `repro`'s engines run)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from probe import plots
from probe.data import ImageSet, Pairs, all_pairs, load_image_set
from probe.errors import ProbeError
from probe.evaluate import PairOutcomes, SystematicOutcome, clean_view, sweep_inputs, systematic_evaluation
from probe.experiments.base import Result, as_encoder
from probe.matching import FastSettings, Settings
from probe.params import Param, declare
from probe.progress import Progress
from probe.zeroshot import text_head, vision_text_matrix

Tensor = torch.Tensor


# --- systematic evaluation -----------------------------------------------------------------------


@dataclass
class SystematicResult(Result):
    """Every image matched to every image of another class, then classified (the sister paper's 10 x 10)."""
    outcome: Any = None   # probe.evaluate.SystematicOutcome
    source: str = ""

    def numbers(self) -> dict:
        return {"image_set": self.source, **{k: v for k, v in self.outcome.summary().items() if k != "cancelled"}}

    def figures(self) -> list[tuple[str, Any, dict]]:
        r = self.outcome
        names = [f"{i}: {r.class_names[c]}" for i, c in enumerate(r.labels)]
        fig, data = plots.success_matrix_figure(r.success_matrix, names, names)
        figures = [("success_matrix", fig, data)]
        if len(r.pairs):
            o = r.outcomes
            fig, data = plots.pixel_change_figure({"L-inf (1/255)": (255 * o.linf_pixel).tolist(),
                                                   "RMS (1/255)": (255 * o.rms_pixel).tolist(),
                                                   "PSNR (dB)": o.psnr_db.tolist()},
                                                  title=f"pixel change of the {len(o)} 8-bit matched images")
            figures.append(("pixel_change", fig, data))
        return figures

    def headline(self) -> str:
        r = self.outcome
        return (f"clean accuracy {r.clean_accuracy:.1%}, matched accuracy {r.matched_accuracy:.1%}, success rate "
                f"{r.success_rate:.1%} over {len(r.pairs)} pairs" + (" (cancelled)" if r.cancelled else ""))


def systematic(encoder, image_set, settings: Settings | None = None, *, templates="none", head=None,
               exclude: str = "same_class", batch_size: int = 8, seed: int = 0, keep_images: bool = False,
               progress: Progress | None = None) -> SystematicResult:
    """Classify the clean images of `image_set` (an ImageSet or anything `probe.data.load_image_set` reads),
    match every image to every image of another class (fast mode at model resolution, or the paper's
    procedure), round to 8 bits, classify again. The head is the model's text tower over the set's class names
    unless `head` is given."""
    encoder = as_encoder(encoder)
    images = image_set if isinstance(image_set, ImageSet) else load_image_set(image_set)
    head = head or text_head(encoder, images.class_names, templates=templates)
    settings = settings or FastSettings(resolution="model")
    start = time.perf_counter()
    outcome = systematic_evaluation(encoder, head, images, settings, exclude=exclude, batch_size=batch_size,
                                    seed=seed, keep_images=keep_images, progress=progress)
    record = {**settings.to_dict(), "resolution": "model" if settings.mode == "fast" else None,
              "exclude": exclude, "batch_size": batch_size, "head": head.describe()}
    return SystematicResult(kind="systematic", model=encoder.describe(), settings=record, seed=seed,
                            seconds=time.perf_counter() - start, cancelled=outcome.cancelled, outcome=outcome,
                            source=images.source)


SYSTEMATIC = declare(
    systematic,
    templates=Param("zero-shot prompts: none (plain class names, as the paper), ensemble (the 80 CLIP ImageNet "
                    "prompts) or a file with one template per line", kind=str),
    exclude=Param("pairs left out: self (an image with itself) or same_class", kind=str,
                  choices=("self", "same_class")),
    batch_size=Param("pairs matched at once", kind=int, low=1),
)


# --- a systematic evaluation cut into shards -----------------------------------------------------


@dataclass
class SweepPlan:
    """Everything a sharded systematic evaluation needs: the images as the matcher takes them, the pairs, the
    zero-shot head, and the clean images' probabilities. Any slice of `pairs` can be matched on its own
    (`probe.evaluate.match_pairs`, same `batch_size` and `seed`), and the slices merged in order
    (`merge_outcomes`) give the numbers of one uncut run when the slices start at multiples of `batch_size`."""
    image_set: Any                 # probe.data.ImageSet
    images: Any                    # (N,3,h,w) batch at model resolution, or the originals (paper mode)
    settings: Settings
    pairs: Any                     # probe.data.Pairs
    head: Any                      # probe.zeroshot.ZeroShotHead
    clean_probabilities: Tensor
    batch_size: int
    seed: int
    exclude: str


def plan_systematic(encoder, image_set, settings: Settings | None = None, *, templates="none", head=None,
                    exclude: str = "same_class", batch_size: int = 8, seed: int = 0) -> SweepPlan:
    """The plan of `systematic` (same head, inputs, pairs and clean probabilities), to run in shards."""
    encoder = as_encoder(encoder)
    image_set = image_set if isinstance(image_set, ImageSet) else load_image_set(image_set)
    head = head or text_head(encoder, image_set.class_names, templates=templates)
    if tuple(head.classes) != tuple(image_set.class_names):
        raise ProbeError(f"the head's classes {list(head.classes)} differ from the image set's "
                         f"{image_set.class_names}")
    images, settings = sweep_inputs(encoder, image_set, settings or FastSettings(resolution="model"))
    clean = vision_text_matrix(encoder, head, clean_view(images))
    return SweepPlan(image_set, images, settings, all_pairs(image_set.labels, exclude), head, clean, batch_size, seed,
                     exclude)


def merge_outcomes(parts: Sequence) -> Any:
    """Per-shard `PairOutcomes` joined in the given order into one (the pairs too); cancelled if any was."""
    if not parts:
        raise ProbeError("no shard outcomes to merge")

    def cat(name):
        values = [getattr(p, name) for p in parts]
        return None if any(v is None for v in values) else torch.cat(values)

    pairs = Pairs(sum((p.pairs.sources for p in parts), ()), sum((p.pairs.targets for p in parts), ()),
                  parts[0].pairs.rule)
    return PairOutcomes(pairs, cat("probabilities"), cat("converged"), cat("psnr_db"), cat("linf_pixel"),
                        cat("rms_pixel"), cat("cos_to_target"), cat("matched"), cat("sources"),
                        any(p.cancelled for p in parts))


def systematic_from(encoder, plan: SweepPlan, outcomes, seconds: float) -> SystematicResult:
    """The `SystematicResult` of a plan whose pairs were matched elsewhere (in shards, merged in order)."""
    s = plan.image_set
    outcome = SystematicOutcome(list(s.class_names), list(s.labels), list(s.names), plan.clean_probabilities, outcomes)
    record = {**plan.settings.to_dict(), "resolution": "model" if plan.settings.mode == "fast" else None,
              "exclude": plan.exclude, "batch_size": plan.batch_size, "head": plan.head.describe()}
    return SystematicResult(kind="systematic", model=as_encoder(encoder).describe(), settings=record, seed=plan.seed,
                            seconds=seconds, cancelled=outcomes.cancelled, outcome=outcome, source=s.source)
