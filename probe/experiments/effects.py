"""Effect studies: how often the paper's effect shows, on fixed sets of pairs.

* `effect`: pair sets (`PairSet`: sources and targets at the model's input, each target's class) matched under
  the root-mean-square budget of each PSNR floor (fast mode, cosine loss, normalised-gradient steps), read back
  as 8-bit PNGs and classified zero-shot over the model's classes: the share read as the target, per floor.
* `read_as_target`: what a visitor gets: labelled pairs of pictures (`LabelledPair`) matched with given settings
  at their own resolution, read back and classified over one or more label sets.

Both read their results back through `probe.readback` (match, then read back, then classify, written once). The
pairs come from the caller: the mini-CLIP's (`probe.toy.effect`) are one such set.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from PIL import Image

from probe import plots
from probe.errors import ProbeError
from probe.experiments.base import Result, as_encoder
from probe.experiments.pairs import read_matched
from probe.images import from_pil
from probe.matching import FastSettings, match, sweep
from probe.metrics import psnr, psnr_to_rms
from probe.params import Param, declare
from probe.progress import Progress, within
from probe.readback import READ_BACK, check_codecs, pixels, read_as, read_back
from probe.zeroshot import text_head

Tensor = torch.Tensor


@dataclass
class PairSet:
    """Sources and targets at the model's input size, each target's class, and what each row is."""

    name: str
    sources: Tensor              # (N,3,h,w) [0,1]
    targets: Tensor              # (N,3,h,w) [0,1]
    target_classes: list[int]    # indices into the classes the pairs are read over
    source_names: list[str]      # file name, or the source's class for generated images


def measure(encoder, pair_set: PairSet, classes: Sequence[str], budgets_rms: Sequence[float], steps: int = 300,
            seed: int = 0, optimizer: str = "normalized", progress: Progress | None = None) -> list[dict]:
    """Match every pair once per budget (RMS, [0,1] pixels). Per budget: the share read as the target, the mean
    target probability, PSNR, one row per pair, and `matched`, the 8-bit matched images (N,3,h,w) as read back.
    A cancelled sweep returns the budgets it finished."""
    head = text_head(encoder, list(classes))
    labels = torch.tensor(pair_set.target_classes)
    settings = FastSettings(norm="l2", budget=budgets_rms[0], loss="cosine", steps=steps, optimizer=optimizer,
                            resolution="model")
    rows = []
    for batch in sweep(encoder, pair_set.sources, pair_set.targets, settings, list(budgets_rms), seed=seed,
                       progress=progress):
        if batch.cancelled:
            break
        read = read_matched(encoder, head, batch.images, batch.sources)["read_back"]["png"]
        matched = pixels_of(batch.images)
        probabilities = read["probabilities"]
        predicted = probabilities.argmax(1)
        target_probability = probabilities[torch.arange(len(labels)), labels]
        db = psnr(matched, batch.sources.cpu())
        budget = batch.settings["budget"]
        rows.append({
            "budget_rms": budget, "budget_rms_255": budget * 255, "steps": steps,
            "target_top1": (predicted == labels).float().mean().item(),
            "target_probability_mean": target_probability.mean().item(),
            "psnr_db_mean": db.mean().item(), "psnr_db_min": db.min().item(),
            "cos_to_target_mean": batch.final["cos_to_target"].mean().item(),
            "settings": batch.settings,
            "pairs": [{"source": s, "target": classes[t], "predicted": classes[p],
                       "target_probability": float(q), "psnr_db": float(d)}
                      for s, t, p, q, d in zip(pair_set.source_names, labels.tolist(), predicted.tolist(),
                                               target_probability, db)],
            "matched": matched,
        })
    return rows


def pixels_of(images: Tensor) -> Tensor:
    """Matched images as their 8-bit PNGs hold them, (N,3,h,w) on the CPU."""
    return pixels(read_back(images))


@dataclass
class EffectResult(Result):
    """Share of 8-bit matched images read as their target's class, per pair set and PSNR floor."""

    classes: list[str] = field(default_factory=list)
    floors: list[float] = field(default_factory=list)
    results: dict = field(default_factory=dict)    # set name -> list of measure() dicts, one per floor
    pair_sets: dict = field(default_factory=dict)  # set name -> PairSet

    def numbers(self) -> dict:
        summary = {name: [{k: v for k, v in r.items() if k not in ("pairs", "matched")} | {"psnr_floor_db": f}
                          for f, r in zip(self.floors, runs)] for name, runs in self.results.items()}
        return {"psnr_floors_db": self.floors, "classes": self.classes, "results": summary}

    def tables(self) -> dict[str, list[dict]]:
        return {"pairs": [{"set": name, "psnr_floor_db": floor, **pair} for name, runs in self.results.items()
                          for floor, rows in zip(self.floors, runs) for pair in rows["pairs"]]}

    def figures(self) -> list[tuple[str, Any, dict]]:
        figures = []
        for name, runs in self.results.items():
            if not runs:
                continue
            first, pair_set = runs[0], self.pair_sets[name]
            n = len(pair_set.target_classes)
            show = list(range(0, n, max(1, n // 4)))[:4]  # spread over the set: different sources
            captions = [(pair_set.source_names[i], f"-> {first['pairs'][i]['target']}: predicted "
                         f"{first['pairs'][i]['predicted']} ({first['pairs'][i]['target_probability']:.2f}), "
                         f"{first['pairs'][i]['psnr_db']:.1f} dB") for i in show]
            fig, data = plots.matched_examples_figure(pair_set.sources[show].numpy(), first["matched"][show].numpy(),
                                                      captions, title=f"{name}: source, matched ({self.floors[0]} dB "
                                                                      "floor), difference x 50")
            figures.append((f"examples_{name}", fig, data))
        curves = {name: [(r["psnr_db_mean"], r["target_top1"]) for r in runs] for name, runs in self.results.items()
                  if runs}
        if curves:
            fig, data = plots.budget_sweep_figure(curves, title=f"{self.model['model']}: matched image classified "
                                                                "as its target")
            figures.append(("effect_vs_psnr", fig, data))
        return figures

    def lines(self) -> list[str]:
        """One line per set and floor."""
        return [f"{name:7s} PSNR floor {floor:5.1f} dB (RMS {r['budget_rms_255']:.2f}/255): target top-1 "
                f"{r['target_top1']:.1%} of {len(r['pairs'])} pairs, mean target probability "
                f"{r['target_probability_mean']:.3f}, PSNR mean {r['psnr_db_mean']:.2f} min {r['psnr_db_min']:.2f} dB"
                for name, runs in self.results.items() for floor, r in zip(self.floors, runs)]

    def headline(self) -> str:
        return "\n".join(self.lines()) + (" (cancelled)" if self.cancelled else "")


def effect(encoder, pair_sets: Sequence[PairSet], classes: Sequence[str], psnr_floors: Sequence[float] = (35.0,), *,
           steps: int = 300, seed: int = 0, progress: Progress | None = None) -> EffectResult:
    """The paper's effect on fixed pair sets: each matched under the RMS budget of each PSNR floor, rounded to 8
    bits, read back and classified over `classes` (which the sets' `target_classes` index)."""
    encoder = as_encoder(encoder)
    pair_sets = list(pair_sets)
    if not pair_sets:
        raise ProbeError("give at least one pair set")
    if not psnr_floors:
        raise ProbeError("give at least one PSNR floor")
    floors = [float(f) for f in psnr_floors]
    budgets = [psnr_to_rms(db) for db in floors]
    settings = {"sets": [s.name for s in pair_sets], "pairs": {s.name: len(s.target_classes) for s in pair_sets},
                "psnr_floors_db": floors, "steps": steps, "budgets_rms": budgets}
    start = time.perf_counter()
    results, cancelled = {}, False
    for pair_set in pair_sets:
        results[pair_set.name] = measure(encoder, pair_set, classes, budgets, steps=steps, seed=seed,
                                         progress=within(progress, pair_set.name))
        if len(results[pair_set.name]) < len(budgets):
            cancelled = True
            break
    return EffectResult(kind="effect", model=encoder.describe(), settings=settings, seed=seed,
                        seconds=time.perf_counter() - start, cancelled=cancelled, classes=list(classes),
                        floors=floors, results=results, pair_sets={s.name: s for s in pair_sets})


EFFECT = declare(
    effect,
    psnr_floors=Param("PSNR floors, one matching run per floor (example figures at the first)", many=True, low=0,
                      open_low=True, unit="dB", cli="--psnr"),
    steps=Param("matching steps", kind=int, low=1),
)


# --- what a visitor gets -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledPair:
    """A source picture and a target picture (same size), their labels, and anything worth reporting per row."""

    source: Image.Image
    target: Image.Image
    source_label: str
    target_label: str
    details: dict = field(default_factory=dict)


def read_as_target(encoder, pairs: Sequence[LabelledPair], label_sets: dict[str, Sequence[str]],
                   settings: FastSettings | None = None, seed: int = 0, codecs: Sequence[str] = READ_BACK,
                   progress: Progress | None = None) -> dict:
    """Each source matched to its target's embedding with `settings` (default: the fast defaults, at the
    source's own resolution), saved, read back through the model's own preprocessing per codec (`codecs`: "png"
    first, then any of `probe.readback.SURVIVAL`) and classified over each label set. Rows also say how the clean
    source and target were read (a misread target is matched faithfully and misread again). Pairs of one size
    are matched as one batch. Returns, per label set, the share of PNGs read as the target (`target_top1_<set>`),
    per codec the shares and the mean cosine to the target (`survival`), the mean PSNR of the PNGs, and the rows."""
    settings = settings or FastSettings()
    codecs = check_codecs(codecs)
    heads = {name: text_head(encoder, list(labels)) for name, labels in label_sets.items()}
    rows, steps, seconds = [], 0, 0.0
    for size in sorted({p.source.size for p in pairs}):
        group = [p for p in pairs if p.source.size == size]
        sources = torch.stack([from_pil(p.source) for p in group]).to(encoder.device)
        targets = torch.stack([from_pil(p.target) for p in group]).to(encoder.device)
        batch = match(encoder, sources, targets, settings, seed=seed,
                      progress=within(progress, f"{size[0]}x{size[1]} px"))
        if batch.cancelled:
            break
        steps, seconds = steps + settings.steps, seconds + batch.seconds
        read = {codec: read_as(encoder, None, batch.images, batch.target_embedding, codecs=(codec,))[codec]
                for codec in codecs}
        matched = pixels(read["png"]["pictures"])
        db = psnr(matched, sources.cpu())
        labels = {(name, what, codec): head.probabilities(embeddings).argmax(1).tolist()
                  for name, head in heads.items()
                  for what, codec, embeddings in [("matched", c, read[c]["embeddings"]) for c in codecs]
                  + [(what, "png", read_as(encoder, None, images)["png"]["embeddings"])
                     for what, images in (("source", sources), ("target", targets))]}
        for k, pair in enumerate(group):
            row = {"resolution": size[0], "source": pair.source_label, "target": pair.target_label, **pair.details,
                   "linf_255": float((matched[k] - sources[k].cpu()).abs().max() * 255), "psnr_db": float(db[k])}
            for name, names in label_sets.items():
                row[f"read_as_{name}"] = names[labels[name, "matched", "png"][k]]
                row[f"source_read_as_{name}"] = names[labels[name, "source", "png"][k]]
                row[f"target_read_as_{name}"] = names[labels[name, "target", "png"][k]]
                for codec in codecs[1:]:
                    row[f"read_as_{name}_{codec}"] = names[labels[name, "matched", codec][k]]
            for codec in codecs:
                row[f"cos_to_target_{codec}"] = float(read[codec]["cos_to_target"][k])
            rows.append(row)

    def share(key: str) -> float:
        return sum(r[key] == r["target"] for r in rows) / len(rows) if rows else 0.0

    survival = {codec: {"cos_to_target_mean": sum(r[f"cos_to_target_{codec}"] for r in rows) / max(1, len(rows)),
                        **{f"target_top1_{name}": share(f"read_as_{name}" + ("" if codec == "png" else f"_{codec}"))
                           for name in label_sets}} for codec in codecs}
    return {"settings": settings.to_dict(), "pairs": len(rows),
            **{f"target_top1_{name}": share(f"read_as_{name}") for name in label_sets},
            "psnr_db_mean": sum(r["psnr_db"] for r in rows) / max(1, len(rows)),
            "seconds_per_step": seconds / max(1, steps), "survival": survival, "rows": rows}
