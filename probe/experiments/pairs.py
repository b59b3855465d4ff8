"""Matching experiments: one pair (`match`, which owns its views: the zero-shot reading before and after and the
PCA view), many sources to one target and one source to many (`equivalence`), images to text embeddings
(`match_text`), and the same pairs under several procedures or models (`compare`).

Every "after" number is read back from the saved picture (`probe.readback`): match, then read back, then
classify, written once (`read_matched`)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from probe import matching, metrics, plots, readback
from probe.errors import ProbeError
from probe.experiments.base import Result, as_encoder, cosine_matrix, name_of, start_of, tolist
from probe.experiments.classification import ProjectionResult, projection
from probe.images import as_pixels, decode_image, encode_png
from probe.matching import FastSettings, Settings
from probe.progress import Progress, within
from probe.readback import READ_BACK, SURVIVAL, check_codecs, pixels, read_as, survival_lines
from probe.zeroshot import embed_images, resolve_templates, text_head

Tensor = torch.Tensor


# --- match ---------------------------------------------------------------------------------------


@dataclass
class MatchResult(Result):
    """One source matched to one target, with the saved-PNG round trip."""
    source: str = ""
    target: str = ""
    matched: Tensor | None = None          # (3,h,w) [0,1], float
    source_pixels: Tensor | None = None    # (3,h,w) the source at the same resolution
    trace: dict = field(default_factory=dict)   # name -> one value per step
    values: dict = field(default_factory=dict)  # the summary numbers
    zero_shot: dict | None = None               # classes, the source's probabilities, the matched picture's per codec
    target_embedding: Tensor | None = None      # (m,) what it was matched to
    view: ProjectionResult | None = None        # the PCA view of source, target and matched (read back)

    def numbers(self) -> dict:
        out = {"source": self.source, "target": self.target, "mode": self.settings["mode"], **self.values}
        if self.zero_shot is not None:
            out["zero_shot"] = self.zero_shot
        if self.view is not None:
            out["pca"] = self.view.coefficients.tolist()
            out["pca_view"] = {"names": self.view.names, "explained_variance_ratio": self.view.explained.tolist(),
                               "reference": self.view.reference}
        return out

    def top(self, which: str = "matched", k: int = 5, codec: str = "png") -> dict[str, float]:
        """The `k` likeliest classes of the source (`which="source"`) or of the matched picture read back."""
        if self.zero_shot is None:
            return {}
        row = self.zero_shot["source"] if which == "source" else self.zero_shot["read_back"][codec]
        best = sorted(range(len(row)), key=row.__getitem__, reverse=True)[:k]
        return {self.zero_shot["classes"][i]: float(row[i]) for i in best}

    def images(self) -> dict[str, Tensor]:
        diff = (0.5 + 50 * (self.matched - self.source_pixels)).clamp(0, 1)
        return {"source": self.source_pixels, "diff_x50": diff, "matched": self.matched}

    def tables(self) -> dict[str, list[dict]]:
        names = list(self.trace)
        return {"trace": [{"step": s, **{k: self.trace[k][s] for k in names}} for s in range(len(self.trace["loss"]))]}

    def figures(self) -> list[tuple[str, Any, dict]]:
        fig, data = plots.match_curves_figure(self.trace, title=f"{self.source} -> {self.target} "
                                              f"({self.settings['mode']} mode, {self.model['model']})")
        return [("curves", fig, data)] + (self.view.figures() if self.view is not None else [])

    def headline(self) -> str:
        v = self.values
        return (f"{v['status']}: cos to target {v['cos_to_target_initial']:.4f} -> {v['cos_to_target_final']:.4f} "
                f"(saved PNG {v['cos_to_target_png']:.4f}), PSNR {v['psnr_db_png']:.1f} dB, "
                f"L-inf {255 * v['linf_pixel']:.1f}/255, {v['resolution'][1]}x{v['resolution'][0]} px, "
                f"{self.seconds:.1f} s" + "".join(f"; {line}" for line in survival_lines(v, ("jpeg75",))))


def _status(settings: dict, converged: bool, cancelled: bool, steps: int) -> str:
    if cancelled:
        return f"cancelled after {steps} steps"
    if converged:
        return f"met the stopping rule ({settings['stop']}) after {steps} steps"
    keeps = "last" if settings.get("keeps", "").startswith("last") else "best"
    return (f"ran {steps} steps, the cap, without meeting the stopping rule ({settings['stop']}); "
            f"kept the {keeps} iterate")


def png_round_trip(encoder, image: Tensor, target_embedding: Tensor, source: Tensor) -> dict:
    """What a reader of the saved 8-bit PNG sees: its embedding through probe's preprocessing (what the
    optimisation saw) and through the model's own (PIL) preprocessing, each against the target, and its change
    from the source (PSNR, peak, mean)."""
    decoded = decode_image(encode_png(image), "matched.png")
    read = read_as(encoder, None, image[None], target_embedding[None])["png"]
    with torch.no_grad():
        emb = encoder(decoded[None].to(encoder.device))
    target = target_embedding.reshape(1, -1).to(emb.device)
    source = source.reshape(1, *source.shape).cpu()
    return {"cos_to_target_png": float(metrics.cosine(emb, target)[0]),
            "l2_to_target_png": float(metrics.l2(emb, target)[0]),
            "cos_to_target_png_reference": float(read["cos_to_target"][0]),
            "psnr_db_png": float(metrics.psnr(decoded[None], source)[0]),
            "linf_pixel_png": float(metrics.linf(decoded[None], source)[0]),
            "mean_abs_pixel_png": float((decoded[None] - source).abs().mean())}


def read_matched(encoder, head, matched, sources, codecs: Sequence[str] = READ_BACK,
                 targets: Tensor | None = None) -> dict:
    """Match, then read back, then classify, in one place: the sources (as 8-bit pictures) and the matched
    images read back per codec, embedded through the model's own preprocessing, classified by `head` (None:
    embeddings only) and compared with the target embeddings (N,m) where given. `matched`, `sources`: (N,3,h,w)
    batches, or lists of (3,h,w) of any sizes."""
    return {"source": read_as(encoder, head, sources, codecs=("png",))["png"],
            "read_back": read_as(encoder, head, matched, targets, codecs=codecs)}


def survival(read_back: dict, classes: Sequence[str] | None, index: int = 0) -> dict:
    """Per codec other than the PNG (what the web does to a picture): the cosine to the target and, with
    classes, what the picture is read as and with what probability. `read_back`: `read_matched`'s; `index`: which
    of its images."""
    out = {}
    for codec, read in read_back.items():
        if codec == "png":
            continue
        out[codec] = {"cos_to_target": float(read["cos_to_target"][index])}
        if classes and "probabilities" in read:
            best = int(read["probabilities"][index].argmax())
            out[codec] |= {"read_as": classes[best], "probability": float(read["probabilities"][index][best])}
    return out


def _match_pair(encoder, source, target, settings: Settings, seed: int, progress: Progress | None) -> MatchResult:
    """One pair matched, with its PNG round trip (no views)."""
    src = start_of(source, settings, "source")
    is_embedding = torch.is_tensor(target) and target.dim() == 1
    tgt = target[None] if is_embedding else [start_of(target, settings, "target")]
    if settings.mode == "paper":
        sources = [src]
    else:
        sources = src[None]
        tgt = tgt if is_embedding else tgt[0][None]
    batch = matching.match(encoder, sources, tgt, settings, seed=seed, progress=progress)
    matched, source_pixels = batch.images[0].detach().cpu(), batch.sources[0].detach().cpu()
    init, final = batch.initial, batch.final
    steps = int(batch.steps_run[0])
    values = {
        "status": _status(batch.settings, bool(batch.converged[0]), batch.cancelled, steps),
        "steps_run": steps, "converged": bool(batch.converged[0]), "start": batch.start, "notes": batch.notes,
        "cos_to_target_initial": float(init["cos_to_target"][0]), "cos_to_target_final": float(final["cos_to_target"][0]),
        "l2_to_target_initial": float(init["l2_to_target"][0]), "l2_to_target_final": float(final["l2_to_target"][0]),
        "cos_to_source_final": float(final["cos_to_source"][0]),
        "linf_pixel": float(final["linf_pixel"][0]), "l2_pixel": float(final["l2_pixel"][0]),
        "mean_abs_pixel": float(final["mean_abs_pixel"][0]), "psnr_db": float(final["psnr_db"][0]),
        **png_round_trip(encoder, matched, batch.target_embedding[0], source_pixels),
        "resolution": list(matched.shape[-2:]),
    }
    return MatchResult(kind="match", model=encoder.describe(), settings=batch.settings, seed=seed,
                       seconds=batch.seconds, cancelled=batch.cancelled, source=name_of(source, "source image"),
                       target=name_of(target, "target embedding" if is_embedding else "target image"),
                       matched=matched, source_pixels=source_pixels, target_embedding=batch.target_embedding[0].cpu(),
                       trace={k: v[:, 0].tolist() for k, v in batch.trace.items()}, values=values)


def match(encoder, source, target, settings: Settings | None = None, *, classes: Sequence[str] | None = None,
          templates="none", reference=None, pca_k: int = 4, read_back: Sequence[str] = READ_BACK + SURVIVAL,
          seed: int = 0, progress: Progress | None = None) -> MatchResult:
    """Change `source` until its embedding equals `target`'s (an image, or an embedding (m,)), and read the
    result as a visitor would: saved, read back (`read_back`: "png" always, by default also what the web does to
    a picture, `probe.readback.SURVIVAL`, reported in the summary's `survival` block), classified zero-shot over
    `classes` before and after (models with a text tower), and shown on the first `pca_k` principal components
    of a `reference` set's embeddings (source, target, matched: the paper's Fig 1 view) when one is given.

    Images are file paths, PIL images or [0,1] tensors (3,H,W). Fast mode (default) returns the picture at
    the source's resolution (up to about 1 megapixel); paper mode starts from the model's own preprocessing of
    the image, exactly as the authors' code, and returns it at the model's resolution."""
    encoder = as_encoder(encoder)
    settings = settings or FastSettings()
    codecs = check_codecs(["png"] + [c for c in read_back if c != "png"])
    head = text_head(encoder, classes, templates=resolve_templates(templates)) if classes else None
    result = _match_pair(encoder, source, target, settings, seed, progress)
    if result.cancelled:
        return result
    read = read_matched(encoder, head, result.matched[None], result.source_pixels[None], codecs,
                        result.target_embedding[None])
    if len(codecs) > 1:
        result.values["survival"] = survival(read["read_back"], head.classes if head is not None else None)
    if head is not None:
        result.zero_shot = {"classes": list(head.classes), "templates": list(head.templates),
                            "source": read["source"]["probabilities"][0].tolist(),
                            "read_back": {c: r["probabilities"][0].tolist() for c, r in read["read_back"].items()}}
    if reference is not None:
        shown = [("source", result.source_pixels), ("matched (PNG)", result.matched)]
        if not (torch.is_tensor(target) and target.dim() == 1):
            shown.insert(1, ("target", as_pixels(target, "target")))
        result.view = projection(encoder, [pixels(readback.read_back(p[None]))[0] for _, p in shown], reference,
                                 names=[n for n, _ in shown], k=pca_k, seed=seed)
    result.settings = {**result.settings, "read_back": list(codecs)}
    return result



# --- equivalence sets: many -> one, one -> many --------------------------------------------------


@dataclass
class EquivalenceResult(Result):
    """Several pairs matched: look-alikes of the sources that carry the targets' embeddings."""
    layout: str = "pairs"      # "many sources -> one target", "one source -> many targets" or "pairs"
    sources: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    pairs: list[MatchResult] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    probabilities_before: Tensor | None = None   # (P, C) sources, when classified
    probabilities_after: Tensor | None = None    # (P, C) 8-bit matched images
    cosine_matched: Tensor | None = None         # (P, P) between the matched images' embeddings
    cosine_sources: Tensor | None = None         # (P, P) between the sources' embeddings

    def numbers(self) -> dict:
        out = {"layout": self.layout, "sources": self.sources, "targets": self.targets,
               "pairs": [dict(p.numbers(), seconds=p.seconds) for p in self.pairs],
               "cosine_between_matched": tolist(self.cosine_matched),
               "cosine_between_sources": tolist(self.cosine_sources)}
        if self.probabilities_after is not None:
            after = self.probabilities_after.argmax(1).tolist()
            out |= {"classes": self.classes, "probabilities_before": self.probabilities_before.tolist(),
                    "probabilities_after": self.probabilities_after.tolist(),
                    "predicted_after": [self.classes[i] for i in after]}
        return out

    def images(self) -> dict[str, Tensor]:
        return {f"{name}_{i + 1}": image for i, pair in enumerate(self.pairs) for name, image in pair.images().items()}

    def figures(self) -> list[tuple[str, Any, dict]]:
        if not self.pairs:
            return []
        figures = []
        captions = [(p.source, f"-> {p.target}: cos {p.values['cos_to_target_png']:.3f}, "
                     f"{p.values['psnr_db_png']:.1f} dB") for p in self.pairs]
        same_size = len({tuple(p.matched.shape) for p in self.pairs}) == 1
        if same_size:
            fig, data = plots.matched_examples_figure(torch.stack([p.source_pixels for p in self.pairs]).numpy(),
                                                      torch.stack([p.matched for p in self.pairs]).numpy(), captions,
                                                      title=f"{self.layout}: source, matched, difference x 50")
            figures.append(("gallery", fig, data))
        labels = [f"{i + 1}: {Path(p.source).name} -> {Path(p.target).name}" for i, p in enumerate(self.pairs)]
        if self.probabilities_after is not None:
            fig, data = plots.vision_text_figure(self.probabilities_after, labels, self.classes,
                                                 title="vision x text probabilities of the matched images")
            figures.append(("vision_text_after", fig, data))
            fig, data = plots.vision_text_figure(self.probabilities_before, labels, self.classes,
                                                 title="vision x text probabilities of the sources")
            figures.append(("vision_text_before", fig, data))
        fig, data = plots.cosine_matrix_figure(self.cosine_matched, labels,
                                               title="cosine between the matched images' embeddings")
        figures.append(("cosine_matched", fig, data))
        return figures

    def headline(self) -> str:
        if not self.pairs:
            return "equivalence cancelled before the first pair"
        cos = [p.values["cos_to_target_png"] for p in self.pairs]
        psnr = [p.values["psnr_db_png"] for p in self.pairs]
        line = (f"{len(self.pairs)} pairs ({self.layout}): cos to target after the PNG "
                f"round trip {min(cos):.3f}-{max(cos):.3f}, PSNR {min(psnr):.1f}-{max(psnr):.1f} dB")
        return line + (" (cancelled)" if self.cancelled else "")


def equivalence(encoder, sources: Sequence, targets: Sequence, settings: Settings | None = None, *,
                classes: Sequence[str] | None = None, seed: int = 0,
                progress: Progress | None = None) -> EquivalenceResult:
    """Match several sources to one target, one source to several targets, or pairs (equal lengths).

    Each pair runs as its own `match` (sources keep their resolution). With `classes` and a text tower, the
    sources and the 8-bit matched images are classified over them (the paper's vision x text matrices).
    The pairwise cosine between the matched images' embeddings shows look-alikes with different embeddings
    (one -> many) and different pictures with one embedding (many -> one)."""
    encoder = as_encoder(encoder)
    sources, targets = list(sources), list(targets)
    if not sources or not targets:
        raise ProbeError("give at least one source and one target")
    layout = "pairs"
    if len(sources) == 1 and len(targets) > 1:
        sources, layout = sources * len(targets), "one source -> many targets"
    elif len(targets) == 1 and len(sources) > 1:
        targets, layout = targets * len(sources), "many sources -> one target"
    elif len(sources) != len(targets):
        raise ProbeError(f"{len(sources)} sources and {len(targets)} targets: give one of either, or equal numbers")
    settings = settings or FastSettings()
    head = text_head(encoder, classes) if classes else None
    start = time.perf_counter()
    pairs: list[MatchResult] = []
    cancelled = False
    for index, (source, target) in enumerate(zip(sources, targets)):
        pair = _match_pair(encoder, source, target, settings, seed, within(progress, f"pair {index + 1}/"
                                                                                      f"{len(sources)}"))
        if pair.cancelled:
            cancelled = True
            break
        pairs.append(pair)
    before = after = cos_matched = cos_sources = None
    if pairs:
        read = read_matched(encoder, head, [p.matched for p in pairs], [p.source_pixels for p in pairs],
                            READ_BACK + SURVIVAL, torch.stack([p.target_embedding for p in pairs]))
        for index, pair in enumerate(pairs):
            pair.values["survival"] = survival(read["read_back"], head.classes if head is not None else None, index)
        cos_matched = cosine_matrix(read["read_back"]["png"]["embeddings"])
        cos_sources = cosine_matrix(read["source"]["embeddings"])
        if head is not None:
            before, after = read["source"]["probabilities"], read["read_back"]["png"]["probabilities"]
    return EquivalenceResult(kind="equivalence", model=encoder.describe(), settings=settings.to_dict(), seed=seed,
                             seconds=time.perf_counter() - start, cancelled=cancelled, layout=layout,
                             sources=[name_of(s, f"source {i + 1}") for i, s in enumerate(sources)],
                             targets=[name_of(t, f"target {i + 1}") for i, t in enumerate(targets)], pairs=pairs,
                             classes=list(classes or []), probabilities_before=before, probabilities_after=after,
                             cosine_matched=cos_matched, cosine_sources=cos_sources)


# --- image -> text-embedding matching (arXiv:2407.01157) -----------------------------------------


def match_text(encoder, sources: Sequence, texts: Sequence[str], settings: Settings | None = None, *,
               classes: Sequence[str] | None = None, templates="none", seed: int = 0,
               progress: Progress | None = None) -> EquivalenceResult:
    """Match images to text embeddings (the sister paper "Unaligning Everything", arXiv:2407.01157, whose code
    is not public): source i -> text i, or one source -> every text. The target is the text's class vector
    (the model's text tower, `templates` as `classify`) scaled to the source image's own embedding norm:
    image and text embeddings differ in norm and the zero-shot head reads directions only. The 8-bit matched
    images are classified over `classes` (default: the texts)."""
    encoder = as_encoder(encoder)
    sources, texts = list(sources), list(texts)
    if len(sources) == 1 and len(texts) > 1:
        sources = sources * len(texts)
    if len(sources) != len(texts) or not texts:
        raise ProbeError(f"{len(sources)} sources and {len(texts)} texts: give one source, or one per text")
    vectors = text_head(encoder, texts, templates=templates).weights
    norms = embed_images(encoder, [as_pixels(s, "source") for s in sources]).norm(dim=1)
    targets = [(vectors[i] * norms[i]).cpu() for i in range(len(texts))]
    result = equivalence(encoder, sources, targets, settings, classes=list(classes or texts), seed=seed,
                         progress=progress)
    result.kind, result.layout = "match_text", "images -> text embeddings"
    result.settings = {**result.settings, "texts": texts, "templates": templates,
                       "target": "text class vector x the source's embedding norm"}
    result.targets = [f'text "{t}"' for t in texts]
    for pair, text in zip(result.pairs, texts):
        pair.target = f'text "{text}"'
    return result


# --- closeness against steps and seconds: the authors' procedure vs the fast mode ----------------


@dataclass
class CompareResult(Result):
    """The same pairs matched under several settings (or models): how fast each gets close to the target."""
    runs: dict = field(default_factory=dict)     # label -> [MatchResult, one per pair] (runs of one variant)
    goal: float = 0.05                           # relative cosine distance counted as "there"

    def _series(self, label: str) -> list[list[float]]:
        """Per pair and step: (1 - cos to target) / (1 - cos at the start), 1 at the start, 0 at the target.
        Cosine, not L2, so that losses that ignore the norm and models of any scale compare."""
        return [[(1 - c) / max(1 - run.trace["cos_to_target"][0], 1e-12) for c in run.trace["cos_to_target"]]
                for run in self.runs[label]]

    def _seconds_per_step(self, label: str) -> float:
        runs = self.runs[label]
        return sum(r.seconds for r in runs) / max(1, sum(len(r.trace["loss"]) for r in runs))

    def reached(self, label: str) -> list[int | None]:
        """Per pair: the first step whose relative cosine distance is at most `goal` (None: never)."""
        return [next((s for s, v in enumerate(series) if v <= self.goal), None) for series in self._series(label)]

    def numbers(self) -> dict:
        out = {"goal_relative_cosine_distance": self.goal, "labels": list(self.runs)}
        for label, runs in self.runs.items():
            steps = self.reached(label)
            per_step = self._seconds_per_step(label)
            out[label] = {"settings": runs[0].settings if runs else {}, "model": runs[0].model["model"] if runs else "",
                          "steps_to_goal": steps, "seconds_per_step": per_step,
                          "seconds_to_goal": [None if s is None else s * per_step for s in steps],
                          "relative_cosine_distance": self._series(label),
                          "final_relative_cosine_distance": [s[-1] for s in self._series(label)],
                          "pairs": [dict(r.numbers(), seconds=r.seconds) for r in runs]}
        return out

    def figures(self) -> list[tuple[str, Any, dict]]:
        fig, data = plots.closeness_figure({label: self._series(label) for label in self.runs},
                                           {label: self._seconds_per_step(label) for label in self.runs}, self.goal)
        return [("closeness", fig, data)]

    def headline(self) -> str:
        parts = []
        for label in self.runs:
            steps = [s for s in self.reached(label) if s is not None]
            parts.append(f"{label}: {len(steps)}/{len(self.runs[label])} pairs within {self.goal:g} x the initial "
                         f"cosine distance" + (f" (median step {sorted(steps)[len(steps) // 2]})" if steps else ""))
        return "; ".join(parts)


def compare(sources: Sequence, targets: Sequence, variants: dict, *, goal: float = 0.05, seed: int = 0,
            progress: Progress | None = None) -> CompareResult:
    """Match the same (source, target) pairs under each variant, `{label: (encoder or spec, settings)}`, one
    pair at a time, and record the relative cosine distance to the target ((1 - cos) / its start) per step
    and the seconds per step: the authors' procedure against the fast mode (Fig 20), or one procedure on a
    trained and a random-init model (Fig 19)."""
    if len(sources) != len(targets) or not sources or not variants:
        raise ProbeError("give equal numbers of sources and targets and at least one variant")
    start = time.perf_counter()
    runs, cancelled = {}, False
    for label, (encoder, settings) in variants.items():
        encoder = as_encoder(encoder)
        runs[label] = []
        for index, (source, target) in enumerate(zip(sources, targets)):
            pair = _match_pair(encoder, source, target, settings, seed,
                               within(progress, f"{label}, pair {index + 1}/{len(sources)}"))
            if pair.cancelled:
                cancelled = True
                break
            runs[label].append(pair)
        if cancelled:
            break
    first = next(iter(runs.values()))
    model = first[0].model if first else {"model": "", "weights": ""}
    return CompareResult(kind="compare", model=model, settings={"variants": list(variants), "goal": goal}, seed=seed,
                         seconds=time.perf_counter() - start, cancelled=cancelled, runs=runs, goal=goal)


