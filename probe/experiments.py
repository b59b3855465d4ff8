"""One call per experiment: settings in, a result with `to_dict()`, figures and images out.

The CLI, `repro` and the app are thin shells over these calls, so the same call gives the same numbers
everywhere. Each call takes an Encoder (or a model spec, loaded on the CPU), its inputs (image files, PIL
images or [0,1] tensors), its settings, a seed, and a progress callback (`probe.progress`): returning False
from it stops the call, which returns what it finished, marked `cancelled`.

Every result has `to_dict()` (JSON-ready: settings, numbers, model and weights, provenance), `figures()`
(`(name, figure, data)` triples), `images()` (name -> [0,1] image) and `tables()` (name -> CSV rows);
`probe.results.save(result, folder)` writes them all, `summary.json` last. `headline()` is one line saying
what happened.

| call | what it runs |
|---|---|
| `match` | one source matched to one target (image or embedding), with the 8-bit PNG round trip |
| `equivalence` | many sources -> one target, or one source -> many targets: look-alikes and their embeddings |
| `spectrum` | singular values of the Jacobian at an image (exact or matrix-free top-k), top directions as images |
| `lipschitz` | directional Lipschitz estimates along singular, Gaussian, null-space, optimised directions |
| `inspect` | spectrum + estimates along the top singular directions + those directions as images |
| `classify` | zero-shot (or prototype) probabilities of images over class names |
| `systematic` | every image matched to every image of another class, then classified |
| `effect` | the mini-CLIP's matching effect against a PSNR floor on its fixed pair sets |
| `projection` | embeddings as coefficients on a reference set's first principal components (Fig 1 bars) |
| `match_text` | images matched to text embeddings (arXiv:2407.01157), then classified |
| `noise_sensitivity` | Gaussian-noise sensitivity of clean vs matched images as a detector: ROC, AUC |
| `spectra` | Jacobian spectra at several images or of several models, side by side |
| `transfer` | images matched on one model, read by another |
| `compare` | the same pairs under several settings or models: closeness per step and per second |
| `plan_systematic`, `merge_outcomes`, `systematic_from` | `systematic` cut into shards and merged in order |
"""
from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from probe import geometry, metrics, plots
from probe.errors import ProbeError
from probe.images import decode_image, encode_png, from_pil, load_image, open_pil
from probe.matching import FastSettings, PaperSettings, Settings
from probe.progress import Cancelled, Progress, within
from probe.results import provenance

Tensor = torch.Tensor


def as_encoder(encoder):
    """An Encoder as given, or a model spec / preset name loaded on the CPU."""
    if isinstance(encoder, str):
        from probe.models import load_encoder

        return load_encoder(encoder)
    if not hasattr(encoder, "embed_normalized"):
        raise ProbeError(f"expected an Encoder or a model spec, got {type(encoder).__name__}")
    return encoder


def _name(item: Any, default: str) -> str:
    return str(item) if isinstance(item, (str, Path)) else default


def as_pixels(item: Any, what: str = "image") -> Tensor:
    """A file path, PIL image or [0,1] tensor (3,H,W) -> [0,1] float tensor (3,H,W)."""
    from PIL import Image

    if isinstance(item, (str, Path)):
        return load_image(item)
    if isinstance(item, Image.Image):
        return from_pil(item)
    if torch.is_tensor(item):
        image = item[0] if item.dim() == 4 and item.shape[0] == 1 else item
        if image.dim() != 3 or image.shape[0] != 3 or not image.is_floating_point():
            raise ProbeError(f"{what}: expected a [0,1] float image (3,H,W), got {tuple(item.shape)}")
        if float(image.min()) < -1e-3 or float(image.max()) > 1 + 1e-3:
            raise ProbeError(f"{what}: pixels must be in [0,1] (normalised or 0-255 input?)")
        return image.detach().float().cpu()
    raise ProbeError(f"{what}: expected a file path, PIL image or [0,1] tensor, got {type(item).__name__}")


def _as_start(item: Any, settings: Settings, what: str):
    """What matching starts from: for the paper's procedure the image exactly as the authors' code opened it
    (a file through PIL, unconverted), else [0,1] pixels."""
    if settings.mode == "paper" and isinstance(item, (str, Path)):
        return open_pil(item)
    from PIL import Image

    if settings.mode == "paper" and isinstance(item, Image.Image):
        return item
    return as_pixels(item, what)


# --- the common shape of a result ----------------------------------------------------------------


@dataclass
class Run:
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
                          seed=self.seed, settings=self.settings, cancelled=self.cancelled,
                          seconds=self.seconds, encoder=self.model, **self.numbers())

    def figures(self) -> list[tuple[str, Any, dict]]:
        return []

    def images(self) -> dict[str, Tensor]:
        return {}

    def tables(self) -> dict[str, list[dict]]:
        return {}

    def headline(self) -> str:
        return f"{self.kind} {'cancelled' if self.cancelled else 'done'} in {self.seconds:.1f} s"


# --- match ---------------------------------------------------------------------------------------


@dataclass
class MatchRun(Run):
    """One source matched to one target, with the saved-PNG round trip."""

    source: str = ""
    target: str = ""
    matched: Tensor | None = None          # (3,h,w) [0,1], float
    source_pixels: Tensor | None = None    # (3,h,w) the source at the same resolution
    trace: dict = field(default_factory=dict)   # name -> one value per step
    values: dict = field(default_factory=dict)  # the summary numbers

    def numbers(self) -> dict:
        return {"source": self.source, "target": self.target, "mode": self.settings["mode"], **self.values}

    def images(self) -> dict[str, Tensor]:
        diff = (0.5 + 50 * (self.matched - self.source_pixels)).clamp(0, 1)
        return {"source": self.source_pixels, "diff_x50": diff, "matched": self.matched}

    def tables(self) -> dict[str, list[dict]]:
        names = list(self.trace)
        return {"trace": [{"step": s, **{k: self.trace[k][s] for k in names}} for s in range(len(self.trace["loss"]))]}

    def figures(self) -> list[tuple[str, Any, dict]]:
        fig, data = plots.match_curves_figure(self.trace, title=f"{self.source} -> {self.target} "
                                              f"({self.settings['mode']} mode, {self.model['model']})")
        return [("curves", fig, data)]

    def headline(self) -> str:
        v = self.values
        return (f"{v['status']}: cos to target {v['cos_to_target_initial']:.4f} -> {v['cos_to_target_final']:.4f} "
                f"(saved PNG {v['cos_to_target_png']:.4f}), PSNR {v['psnr_db_png']:.1f} dB, "
                f"L-inf {255 * v['linf_pixel']:.1f}/255, {v['resolution'][1]}x{v['resolution'][0]} px, "
                f"{self.seconds:.1f} s")


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
    optimisation saw) and through the model's own (PIL) preprocessing, each against the target, and its PSNR."""
    from PIL import Image

    data = encode_png(image)
    pixels = decode_image(data, "matched.png")
    with torch.no_grad():
        emb = encoder(pixels[None].to(encoder.device))
        ref = encoder.embed_normalized(encoder.reference_input([Image.open(io.BytesIO(data))]))
    target = target_embedding.reshape(1, -1).to(emb.device)
    return {"cos_to_target_png": float(metrics.cosine(emb, target)[0]),
            "l2_to_target_png": float(metrics.l2(emb, target)[0]),
            "cos_to_target_png_reference": float(metrics.cosine(ref, target)[0]),
            "psnr_db_png": float(metrics.psnr(pixels[None], source.reshape(1, *source.shape).cpu())[0]),
            "linf_pixel_png": float(metrics.linf(pixels[None], source.reshape(1, *source.shape).cpu())[0]),
            "mean_abs_pixel_png": float((pixels - source.cpu()).abs().mean())}


def match(encoder, source, target, settings: Settings | None = None, *, seed: int = 0,
          progress: Progress | None = None) -> MatchRun:
    """Change `source` until its embedding equals `target`'s (an image, or an embedding (m,)).

    Images are file paths, PIL images or [0,1] tensors (3,H,W). Fast mode (default) returns the picture at
    the source's resolution (up to about 1 megapixel); paper mode starts from the model's own preprocessing of
    the image, exactly as the authors' code, and returns it at the model's resolution."""
    from probe import matching

    encoder = as_encoder(encoder)
    settings = settings or FastSettings()
    src = _as_start(source, settings, "source")
    is_embedding = torch.is_tensor(target) and target.dim() == 1
    tgt = target[None] if is_embedding else [_as_start(target, settings, "target")]
    if settings.mode == "paper":
        sources = [src]
    else:
        sources = src[None]
        tgt = tgt if is_embedding else tgt[0][None]
    result = matching.match(encoder, sources, tgt, settings, seed=seed, progress=progress)
    matched, source_pixels = result.images[0].detach().cpu(), result.sources[0].detach().cpu()
    init, final = result.initial, result.final
    steps = int(result.steps_run[0])
    values = {
        "status": _status(result.settings, bool(result.converged[0]), result.cancelled, steps),
        "steps_run": steps, "converged": bool(result.converged[0]), "start": result.start, "notes": result.notes,
        "cos_to_target_initial": float(init["cos_to_target"][0]), "cos_to_target_final": float(final["cos_to_target"][0]),
        "l2_to_target_initial": float(init["l2_to_target"][0]), "l2_to_target_final": float(final["l2_to_target"][0]),
        "cos_to_source_final": float(final["cos_to_source"][0]),
        "linf_pixel": float(final["linf_pixel"][0]), "l2_pixel": float(final["l2_pixel"][0]),
        "mean_abs_pixel": float(final["mean_abs_pixel"][0]), "psnr_db": float(final["psnr_db"][0]),
        **png_round_trip(encoder, matched, result.target_embedding[0], source_pixels),
        "resolution": list(matched.shape[-2:]),
    }
    return MatchRun(kind="match", model=encoder.describe(), settings=result.settings, seed=seed,
                    seconds=result.seconds, cancelled=result.cancelled, source=_name(source, "source image"),
                    target=_name(target, "target embedding" if is_embedding else "target image"),
                    matched=matched, source_pixels=source_pixels,
                    trace={k: v[:, 0].tolist() for k, v in result.trace.items()}, values=values)


# --- equivalence sets: many -> one, one -> many --------------------------------------------------


@dataclass
class EquivalenceRun(Run):
    """Several pairs matched: look-alikes of the sources that carry the targets' embeddings."""

    layout: str = "pairs"      # "many sources -> one target", "one source -> many targets" or "pairs"
    sources: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    pairs: list[MatchRun] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    probabilities_before: Tensor | None = None   # (P, C) sources, when classified
    probabilities_after: Tensor | None = None    # (P, C) 8-bit matched images
    cosine_matched: Tensor | None = None         # (P, P) between the matched images' embeddings
    cosine_sources: Tensor | None = None         # (P, P) between the sources' embeddings

    def numbers(self) -> dict:
        out = {"layout": self.layout, "sources": self.sources, "targets": self.targets,
               "pairs": [dict(p.numbers(), seconds=p.seconds) for p in self.pairs],
               "cosine_between_matched": _tolist(self.cosine_matched),
               "cosine_between_sources": _tolist(self.cosine_sources)}
        if self.probabilities_after is not None:
            after = self.probabilities_after.argmax(1).tolist()
            out |= {"classes": self.classes, "probabilities_before": self.probabilities_before.tolist(),
                    "probabilities_after": self.probabilities_after.tolist(),
                    "predicted_after": [self.classes[i] for i in after]}
        return out

    def images(self) -> dict[str, Tensor]:
        return {f"{name}_{i + 1}": image for i, run in enumerate(self.pairs) for name, image in run.images().items()}

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


def _tolist(value):
    return None if value is None else value.tolist()


def equivalence(encoder, sources: Sequence, targets: Sequence, settings: Settings | None = None, *,
                classes: Sequence[str] | None = None, seed: int = 0,
                progress: Progress | None = None) -> EquivalenceRun:
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
    head = None
    if classes:
        from probe.zeroshot import text_head

        head = text_head(encoder, classes)
    start = time.perf_counter()
    runs: list[MatchRun] = []
    cancelled = False
    for index, (source, target) in enumerate(zip(sources, targets)):
        run = match(encoder, source, target, settings, seed=seed, progress=within(progress, f"pair {index + 1}/"
                                                                                             f"{len(sources)}"))
        if run.cancelled:
            cancelled = True
            break
        runs.append(run)
    before = after = cos_matched = cos_sources = None
    if runs:
        from probe.images import quantize
        from probe.zeroshot import embed_images

        matched = [quantize(r.matched) for r in runs]
        emb_matched = embed_images(encoder, matched)
        emb_sources = embed_images(encoder, [r.source_pixels for r in runs])
        cos_matched = _cosine_matrix(emb_matched)
        cos_sources = _cosine_matrix(emb_sources)
        if head is not None:
            before = head.probabilities(emb_sources).cpu()
            after = head.probabilities(emb_matched).cpu()
    return EquivalenceRun(kind="equivalence", model=encoder.describe(), settings=settings.to_dict(), seed=seed,
                          seconds=time.perf_counter() - start, cancelled=cancelled, layout=layout,
                          sources=[_name(s, f"source {i + 1}") for i, s in enumerate(sources)],
                          targets=[_name(t, f"target {i + 1}") for i, t in enumerate(targets)], pairs=runs,
                          classes=list(classes or []), probabilities_before=before, probabilities_after=after,
                          cosine_matched=cos_matched, cosine_sources=cos_sources)


def _cosine_matrix(embeddings: Tensor) -> Tensor:
    unit = torch.nn.functional.normalize(embeddings.double(), dim=1)
    return (unit @ unit.T).cpu()


# --- Jacobian spectrum ---------------------------------------------------------------------------


def direction_images(directions: Tensor, space: str, encoder) -> Tensor:
    """Singular directions (k,3,h,w) in `space`, shown as [0,1] images: grey is 0, each scaled to its own
    largest pixel change (pixel space: the normalised-space direction divided back by std)."""
    pixels = directions * encoder.std.to(directions) if space == "normalized" else directions
    peak = pixels.flatten(1).abs().amax(1).clamp_min(1e-30).view(-1, 1, 1, 1)
    return (0.5 + 0.5 * pixels / peak).clamp(0, 1).float().cpu()


@dataclass
class SpectrumRun(Run):
    """Singular values of the Jacobian of the embedding at one image."""

    image: str = ""
    space: str = "normalized"
    method: str = "exact"
    singular_values: Tensor | None = None
    numerical_rank: int | None = None
    rtol: float | None = None
    tol: float | None = None
    m: int = 0
    n: int = 0
    info: dict = field(default_factory=dict)
    right: Tensor | None = None                # (k, *input shape) top right singular vectors, probed space
    directions: Tensor | None = None           # the same as [0,1] images

    def numbers(self) -> dict:
        sigma = self.singular_values
        return {"image": self.image, "space": self.space, "method": self.method, "m": self.m, "n": self.n,
                "singular_values": _tolist(sigma), "sigma_1": None if sigma is None or not len(sigma) else float(sigma[0]),
                "numerical_rank": self.numerical_rank, "rtol": self.rtol, "tol": self.tol,
                "topk": self.info or None}

    def figures(self) -> list[tuple[str, Any, dict]]:
        if self.singular_values is None:
            return []
        title = f"singular values of the Jacobian ({self.model['model']})"
        if self.method == "exact":
            fig, data = plots.singular_values_figure(self.singular_values, tol=self.tol, space=self.space, title=title)
        else:
            fig, data = plots.topk_singular_values_figure(self.singular_values, self.m, space=self.space, title=title)
        return [("spectrum", fig, data)]

    def images(self) -> dict[str, Tensor]:
        if self.directions is None:
            return {}
        return {f"direction_{i + 1}": d for i, d in enumerate(self.directions)}

    def headline(self) -> str:
        if self.singular_values is None:
            return "spectrum cancelled"
        rank = ("rank not known (top-k only)" if self.numerical_rank is None
                else f"numerical rank {self.numerical_rank} of {self.m} (tol {self.tol:.2g})")
        return f"sigma_1 = {float(self.singular_values[0]):.4g}, {rank}, {self.seconds:.1f} s"


def spectrum(encoder, image, *, space: str = "normalized", method: str = "exact", k: int | None = None,
             tol: float = 1e-3, rtol: float | None = None, chunk_size: int | None = None, directions: int = 0,
             seed: int = 0, progress: Progress | None = None) -> SpectrumRun:
    """Singular values of J = d embedding / d input at `image` (the paper's Fig 3 top): `exact` (all m, from
    the full Jacobian) or `topk` (the top k, matrix-free). `directions` > 0 also returns that many top right
    singular vectors as images."""
    encoder = as_encoder(encoder)
    if method not in ("exact", "topk"):
        raise ProbeError(f"method must be 'exact' or 'topk', got {method!r}")
    if k is not None and method != "topk":
        raise ProbeError("k applies to method 'topk' only (exact computes all m singular values)")
    pixels = as_pixels(image)
    emap = geometry.embedding_map(encoder, pixels, space)
    settings = {"space": space, "method": method, "k": k, "tol": tol, "rtol": rtol, "chunk_size": chunk_size,
                "directions": directions}
    start = time.perf_counter()
    common = dict(kind="spectrum", model=encoder.describe(), settings=settings, seed=seed, image=_name(image, "image"),
                  space=space, method=method)
    try:
        if method == "exact":
            J = geometry.jacobian(emap.f, emap.x0, chunk_size=chunk_size, progress=progress)
            result = geometry.exact_spectrum(J, tuple(emap.x0.shape), vectors=directions, rtol=rtol)
        else:
            with torch.no_grad():
                m = emap.f(emap.x0[None]).shape[1]
            result = geometry.topk_spectrum(emap.f, emap.x0, k=min(k or max(16, directions), m), tol=tol, seed=seed,
                                            rtol=rtol, progress=progress)
    except Cancelled:
        return SpectrumRun(**common, seconds=time.perf_counter() - start, cancelled=True)
    right = result.right[:directions] if directions and result.right is not None else None
    return SpectrumRun(**common, seconds=time.perf_counter() - start, cancelled=False,
                       singular_values=result.singular_values, numerical_rank=result.numerical_rank,
                       rtol=result.rtol, tol=result.tol, m=result.m, n=result.n, info=result.info, right=right,
                       directions=None if right is None else direction_images(right, space, encoder))


# --- directional Lipschitz estimates -------------------------------------------------------------

DEFAULT_EPS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@dataclass
class LipschitzRun(Run):
    """Lipschitz estimates per direction family (the paper's Figs 3 and 4)."""

    image: str = ""
    space: str = "normalized"
    eps: list[float] = field(default_factory=list)
    study: Any = None   # geometry.LipschitzStudy

    @property
    def reference_eps(self) -> float:
        return min(self.eps)

    def _ref(self) -> int:
        return self.eps.index(self.reference_eps)

    def numbers(self) -> dict:
        if self.study is None:
            return {"image": self.image, "space": self.space, "eps": self.eps}
        spectrum, ref = self.study.spectrum, self._ref()
        return {"image": self.image, "space": self.space, "eps": self.eps, "reference_eps": self.reference_eps,
                "families": {name: est.to_dict() for name, est in self.study.families.items()},
                "medians_at_reference_eps": {name: float(est.estimates[:, ref].median())
                                             for name, est in self.study.families.items()},
                "singular_values": spectrum.singular_values.tolist(), "sigma_1": float(spectrum.singular_values[0]),
                "numerical_rank": spectrum.numerical_rank, "rtol": spectrum.rtol, "tol": spectrum.tol,
                "frobenius_over_sqrt_n": self.study.frobenius_over_sqrt_n, "m": spectrum.m, "n": spectrum.n,
                "optimized_values": _tolist(self.study.optimized_values)}

    def figures(self) -> list[tuple[str, Any, dict]]:
        if self.study is None:
            return []
        study, ref = self.study, self._ref()
        sigma = study.spectrum.singular_values
        sigma_1 = float(sigma[0])
        families = study.families
        out = []
        fig, data = plots.lipschitz_distributions_figure({n: e.estimates[:, ref] for n, e in families.items()},
                                                         self.eps[ref], sigma_1, study.frobenius_over_sqrt_n,
                                                         space=self.space)
        out.append(("lipschitz", fig, data))
        fig, data = plots.lipschitz_vs_eps_figure(self.eps, {n: e.estimates for n, e in families.items()},
                                                  {n: e.first_order_error for n, e in families.items()}, sigma_1,
                                                  space=self.space)
        out.append(("lipschitz_eps", fig, data))
        if "singular" in families:
            fig, data = plots.singular_lipschitz_figure(sigma, families["singular"].estimates[:, ref], self.eps[ref],
                                                        study.spectrum.tol, space=self.space)
            out.append(("lipschitz_singular", fig, data))
        return out

    def headline(self) -> str:
        if self.study is None:
            return "lipschitz cancelled"
        medians = ", ".join(f"{name} {value:.3g}" for name, value in self.numbers()["medians_at_reference_eps"].items())
        return (f"median estimates at eps={self.reference_eps:g}: {medians} "
                f"(sigma_1 {float(self.study.spectrum.singular_values[0]):.3g}), {self.seconds:.1f} s")


def lipschitz(encoder, image, *, families: Sequence[str] = geometry.FAMILIES, samples: int = 8,
              eps: Sequence[float] = DEFAULT_EPS, space: str = "normalized", optimize_eps: float = 0.1,
              optimize_steps: int = 20, estimate_dtype: str = "float64", matched=None, chunk_size: int | None = None,
              seed: int = 0, progress: Progress | None = None) -> LipschitzRun:
    """Directional Lipschitz estimates ||f(x + eps v) - f(x)|| / eps at `image` along `samples` directions of
    each family, over the eps grid; `matched` (an image matched from `image`) adds the direction of the actual
    displacement. Estimates use a float64 copy of the model unless `estimate_dtype` is float32."""
    encoder = as_encoder(encoder)
    eps = geometry.check_eps(list(eps))
    if estimate_dtype not in ("float64", "float32"):
        raise ProbeError(f"estimate_dtype must be float64 or float32, got {estimate_dtype!r}")
    pixels = as_pixels(image)
    emap = geometry.embedding_map(encoder, pixels, space)
    estimate_map = (geometry.embedding_map(encoder, pixels, space, dtype=torch.float64)
                    if estimate_dtype == "float64" else None)
    displacement = None
    if matched is not None:
        displacement = geometry.embedding_map(encoder, as_pixels(matched, "matched"), space).x0 - emap.x0
    settings = {"families": list(families), "samples": samples, "eps": eps, "space": space,
                "optimize_eps": optimize_eps, "optimize_steps": optimize_steps, "estimate_dtype": estimate_dtype,
                "matched": None if matched is None else _name(matched, "matched image"), "chunk_size": chunk_size}
    common = dict(kind="lipschitz", model=encoder.describe(), settings=settings, seed=seed,
                  image=_name(image, "image"), space=space, eps=eps)
    start = time.perf_counter()
    try:
        study = geometry.lipschitz_study(emap, tuple(families), samples, eps, seed=seed, estimate_map=estimate_map,
                                         optimize_eps=optimize_eps, optimize_steps=optimize_steps,
                                         chunk_size=chunk_size, displacement=displacement, progress=progress)
    except Cancelled:
        return LipschitzRun(**common, seconds=time.perf_counter() - start, cancelled=True)
    return LipschitzRun(**common, seconds=time.perf_counter() - start, cancelled=False, study=study)


# --- inspect: why matching works at this image ----------------------------------------------------


@dataclass
class InspectRun(Run):
    """Spectrum, estimates along the top singular directions (and a matching displacement), directions as images."""

    image: str = ""
    spectrum: SpectrumRun | None = None
    eps: list[float] = field(default_factory=list)
    estimates: dict = field(default_factory=dict)   # family -> geometry.LipschitzEstimates

    def numbers(self) -> dict:
        out = {"image": self.image, **(self.spectrum.numbers() if self.spectrum else {}), "eps": self.eps}
        out["families"] = {name: est.to_dict() for name, est in self.estimates.items()}
        return out

    def figures(self) -> list[tuple[str, Any, dict]]:
        figures = self.spectrum.figures() if self.spectrum else []
        if self.estimates:
            sigma_1 = float(self.spectrum.singular_values[0])
            fig, data = plots.lipschitz_vs_eps_figure(self.eps, {n: e.estimates for n, e in self.estimates.items()},
                                                      {n: e.first_order_error for n, e in self.estimates.items()},
                                                      sigma_1, space=self.spectrum.space)
            figures.append(("lipschitz_eps", fig, data))
        return figures

    def images(self) -> dict[str, Tensor]:
        return self.spectrum.images() if self.spectrum else {}

    def headline(self) -> str:
        return self.spectrum.headline() if self.spectrum else "inspect cancelled"


def inspect(encoder, image, *, method: str = "exact", k: int = 4, space: str = "normalized",
            eps: Sequence[float] = (1e-2, 1e-1, 1.0, 10.0), matched=None, samples: int = 4,
            chunk_size: int | None = None, seed: int = 0, progress: Progress | None = None) -> InspectRun:
    """The geometry behind matching at one image: the Jacobian spectrum (`exact`, or matrix-free `topk` when
    the full Jacobian is too slow), Lipschitz estimates along the top `k` right singular vectors and `samples`
    random Gaussian directions (plus the displacement to `matched`), and the top directions as images."""
    encoder = as_encoder(encoder)
    eps = geometry.check_eps(list(eps))
    start = time.perf_counter()
    spec = spectrum(encoder, image, space=space, method=method, k=k if method == "topk" else None,
                    chunk_size=chunk_size, directions=k, seed=seed, progress=within(progress, "spectrum"))
    settings = {"method": method, "k": k, "space": space, "eps": eps, "samples": samples,
                "matched": None if matched is None else _name(matched, "matched image")}
    run = InspectRun(kind="inspect", model=encoder.describe(), settings=settings, seed=seed, seconds=0.0,
                     cancelled=spec.cancelled, image=_name(image, "image"), spectrum=spec, eps=eps)
    if spec.cancelled:
        run.seconds = time.perf_counter() - start
        return run
    pixels = as_pixels(image)
    emap = geometry.embedding_map(encoder, pixels, space)
    shape = tuple(emap.x0.shape)
    families = {"singular": spec.right.to(emap.x0),
                "gaussian": geometry.gaussian_directions(shape, samples, seed, emap.x0.dtype, emap.x0.device)}
    if matched is not None:
        delta = geometry.embedding_map(encoder, as_pixels(matched, "matched"), space).x0 - emap.x0
        families["displacement"] = geometry.displacement_direction(delta, shape)
    try:
        for name, directions in families.items():
            run.estimates[name] = geometry.lipschitz_estimates(emap.f, emap.x0, directions, eps,
                                                               progress=within(progress, name))
    except Cancelled:
        run.cancelled = True
    run.seconds = time.perf_counter() - start
    return run


# --- zero-shot classification --------------------------------------------------------------------


@dataclass
class ClassifyRun(Run):
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
             reference=None, seed: int = 0) -> ClassifyRun:
    """Zero-shot probabilities of `images` (files and PIL images are read through the model's own
    preprocessing, as a user of the model reads them; tensors through probe's) over `labels` with the model's
    text tower, or over the classes of a `reference` image set (a nearest-prototype head)."""
    from PIL import Image

    from probe.zeroshot import prototype_head, resolve_templates, text_head, vision_text_matrix

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
        from probe.data import ImageSet, load_image_set

        ref = reference if isinstance(reference, ImageSet) else load_image_set(reference, layout="folder")
        head = prototype_head(encoder, ref.images, ref.labels, ref.class_names)
    else:
        head = text_head(encoder, labels, templates=resolve_templates(templates))
    probabilities = vision_text_matrix(encoder, head, items)
    settings = {"labels": list(head.classes), "templates": list(head.templates),
                "reference": None if reference is None else str(getattr(reference, "source", reference))}
    return ClassifyRun(kind="classify", model=encoder.describe(), settings=settings, seed=seed,
                       seconds=time.perf_counter() - start, cancelled=False,
                       names=[_name(item, f"image {i + 1}") for i, item in enumerate(images)],
                       classes=list(head.classes), probabilities=probabilities, head=head.describe())


# --- systematic evaluation -----------------------------------------------------------------------


@dataclass
class SystematicRun(Run):
    """Every image matched to every image of another class, then classified (the sister paper's 10 x 10)."""

    result: Any = None   # probe.evaluate.SystematicResult
    source: str = ""

    def numbers(self) -> dict:
        return {"image_set": self.source, **{k: v for k, v in self.result.summary().items() if k != "cancelled"}}

    def figures(self) -> list[tuple[str, Any, dict]]:
        r = self.result
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
        r = self.result
        return (f"clean accuracy {r.clean_accuracy:.1%}, matched accuracy {r.matched_accuracy:.1%}, success rate "
                f"{r.success_rate:.1%} over {len(r.pairs)} pairs" + (" (cancelled)" if r.cancelled else ""))


def systematic(encoder, image_set, settings: Settings | None = None, *, templates="none", head=None,
               exclude: str = "same_class", batch_size: int = 8, seed: int = 0, keep_images: bool = False,
               progress: Progress | None = None) -> SystematicRun:
    """Classify the clean images of `image_set` (an ImageSet or anything `probe.data.load_image_set` reads),
    match every image to every image of another class (fast mode at model resolution, or the paper's
    procedure), round to 8 bits, classify again. The head is the model's text tower over the set's class names
    unless `head` is given."""
    from probe.data import ImageSet, load_image_set
    from probe.evaluate import systematic_evaluation
    from probe.zeroshot import text_head

    encoder = as_encoder(encoder)
    images = image_set if isinstance(image_set, ImageSet) else load_image_set(image_set)
    head = head or text_head(encoder, images.class_names, templates=templates)
    settings = settings or FastSettings(resolution="model")
    start = time.perf_counter()
    result = systematic_evaluation(encoder, head, images, settings, exclude=exclude, batch_size=batch_size,
                                   seed=seed, keep_images=keep_images, progress=progress)
    record = {**settings.to_dict(), "resolution": "model" if settings.mode == "fast" else None,
              "exclude": exclude, "batch_size": batch_size, "head": head.describe()}
    return SystematicRun(kind="systematic", model=encoder.describe(), settings=record, seed=seed,
                         seconds=time.perf_counter() - start, cancelled=result.cancelled, result=result,
                         source=images.source)


# --- the mini-CLIP effect study ------------------------------------------------------------------


@dataclass
class EffectRun(Run):
    """Share of 8-bit matched images read as their target's class, per pair set and PSNR floor."""

    floors: list[float] = field(default_factory=list)
    results: dict = field(default_factory=dict)    # set name -> list of measure() dicts, one per floor
    pair_sets: dict = field(default_factory=dict)  # set name -> toy.effect.PairSet

    def numbers(self) -> dict:
        from probe.toy.data import class_names

        summary = {name: [{k: v for k, v in r.items() if k not in ("pairs", "matched")} | {"psnr_floor_db": f}
                          for f, r in zip(self.floors, runs)] for name, runs in self.results.items()}
        return {"psnr_floors_db": self.floors, "classes": class_names(), "results": summary}

    def tables(self) -> dict[str, list[dict]]:
        return {"pairs": [{"set": name, "psnr_floor_db": floor, **pair} for name, runs in self.results.items()
                          for floor, run in zip(self.floors, runs) for pair in run["pairs"]]}

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


def effect(encoder="mini-clip", sets: Sequence[str] = ("photos", "shapes"), psnr_floors: Sequence[float] = (35.0,),
           *, steps: int = 300, per_photo: int = 5, n_shapes: int = 40, seed: int = 0,
           progress: Progress | None = None) -> EffectRun:
    """The paper's effect on a model with the mini-CLIP's classes (default the shipped mini-CLIP): its fixed
    photo and shape pair sets matched under the RMS budget of each PSNR floor, rounded, classified."""
    from probe.toy.effect import PAIR_SETS, measure, photo_pairs, psnr_to_rms, shape_pairs

    encoder = as_encoder(encoder)
    sets = list(sets)
    unknown = sorted(set(sets) - set(PAIR_SETS))
    if unknown or not sets:
        raise ProbeError(f"sets must be some of {list(PAIR_SETS)}, got {sets}")
    if not psnr_floors:
        raise ProbeError("give at least one PSNR floor")
    floors = [float(f) for f in psnr_floors]
    budgets = [psnr_to_rms(db) for db in floors]
    builders = {"photos": lambda: photo_pairs(encoder, per_photo, seed),
                "shapes": lambda: shape_pairs(encoder, n_shapes, seed)}
    settings = {"sets": sets, "psnr_floors_db": floors, "steps": steps, "per_photo": per_photo,
                "shape_pairs": n_shapes, "budgets_rms": budgets}
    start = time.perf_counter()
    results, pair_sets, cancelled = {}, {}, False
    for name in sets:
        pair_sets[name] = builders[name]()
        results[name] = measure(encoder, pair_sets[name], budgets, steps=steps, seed=seed,
                                progress=within(progress, name))
        if len(results[name]) < len(budgets):
            cancelled = True
            break
    return EffectRun(kind="effect", model=encoder.describe(), settings=settings, seed=seed,
                     seconds=time.perf_counter() - start, cancelled=cancelled, floors=floors, results=results,
                     pair_sets=pair_sets)


# --- PCA view (Fig 1's projections) --------------------------------------------------------------


@dataclass
class ProjectionRun(Run):
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
               seed: int = 0) -> ProjectionRun:
    """Coefficients of `images`' embeddings on the first `k` principal components of the embeddings of a
    `reference` set (an ImageSet or a list of images): the authors' Fig 1 view, where look-alike pictures
    with different embeddings get different bars."""
    from probe.data import ImageSet
    from probe.projection import fit_pca
    from probe.zeroshot import embed_images

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
    names = list(names) if names else [_name(item, f"image {i + 1}") for i, item in enumerate(images)]
    return ProjectionRun(kind="projection", model=encoder.describe(), settings={"k": k, "reference": label}, seed=seed,
                         seconds=time.perf_counter() - start, cancelled=False, names=names,
                         coefficients=coefficients, explained=pca.explained_variance_ratio, pictures=pictures,
                         reference=label)


# --- image -> text-embedding matching (arXiv:2407.01157) -----------------------------------------


def match_text(encoder, sources: Sequence, texts: Sequence[str], settings: Settings | None = None, *,
               classes: Sequence[str] | None = None, templates="none", seed: int = 0,
               progress: Progress | None = None) -> EquivalenceRun:
    """Match images to text embeddings (the sister paper "Unaligning Everything", arXiv:2407.01157, whose code
    is not public): source i -> text i, or one source -> every text. The target is the text's class vector
    (the model's text tower, `templates` as `classify`) scaled to the source image's own embedding norm:
    image and text embeddings differ in norm and the zero-shot head reads directions only. The 8-bit matched
    images are classified over `classes` (default: the texts)."""
    from probe.zeroshot import embed_images, text_head

    encoder = as_encoder(encoder)
    sources, texts = list(sources), list(texts)
    if len(sources) == 1 and len(texts) > 1:
        sources = sources * len(texts)
    if len(sources) != len(texts) or not texts:
        raise ProbeError(f"{len(sources)} sources and {len(texts)} texts: give one source, or one per text")
    vectors = text_head(encoder, texts, templates=templates).weights
    norms = embed_images(encoder, [as_pixels(s, "source") for s in sources]).norm(dim=1)
    targets = [(vectors[i] * norms[i]).cpu() for i in range(len(texts))]
    run = equivalence(encoder, sources, targets, settings, classes=list(classes or texts), seed=seed,
                      progress=progress)
    run.kind, run.layout = "match_text", "images -> text embeddings"
    run.settings = {**run.settings, "texts": texts, "templates": templates,
                    "target": "text class vector x the source's embedding norm"}
    run.targets = [f'text "{t}"' for t in texts]
    for pair, text in zip(run.pairs, texts):
        pair.target = f'text "{text}"'
    return run


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
class NoiseRun(Run):
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
                      progress: Progress | None = None) -> NoiseRun:
    """Gaussian-noise sensitivity as a detector of matched images (after arXiv:2402.08473): each image's score
    is the mean cosine distance between its embedding and those of `samples` copies with N(0, sigma^2) pixel
    noise (clipped to [0,1]); the ROC and AUC of that score separate `modified` (positives) from `clean`
    (negatives) images, both [0,1] batches (N,3,H,W)."""
    from probe.progress import check
    from probe.zeroshot import embed_images

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
    return NoiseRun(kind="noise_sensitivity", model=encoder.describe(),
                    settings={"sigmas": list(sigmas), "samples": samples, "clean": n, "modified": len(modified)},
                    seed=seed, seconds=time.perf_counter() - start, cancelled=len(done) < len(sigmas), sigmas=done,
                    clean={s: v[:n] for s, v in scores.items()}, modified={s: v[n:] for s, v in scores.items()},
                    roc={s: roc_curve(v[:n], v[n:]) for s, v in scores.items()})


# --- spectra at several images or of several models ----------------------------------------------


@dataclass
class SpectraRun(Run):
    """Several Jacobian spectra side by side (images of one model, or one image through several models)."""

    labels: list[str] = field(default_factory=list)
    runs: list[SpectrumRun] = field(default_factory=list)
    normalize: bool = False

    def numbers(self) -> dict:
        return {"labels": self.labels, "normalized_by_sigma_1": self.normalize,
                "spectra": [dict(r.numbers(), model=r.model["model"], weights=r.model["weights"]) for r in self.runs]}

    def figures(self) -> list[tuple[str, Any, dict]]:
        curves = {label: r.singular_values for label, r in zip(self.labels, self.runs)}
        ranks = {label: (r.numerical_rank, r.m) for label, r in zip(self.labels, self.runs)}
        fig, data = plots.spectra_figure(curves, ranks, normalize=self.normalize, space=self.runs[0].space)
        return [("spectra", fig, data)]

    def headline(self) -> str:
        return "; ".join(f"{label}: sigma_1 {float(r.singular_values[0]):.3g}, rank {r.numerical_rank} of {r.m}"
                         for label, r in zip(self.labels, self.runs))


def spectra(items: Sequence[tuple[Any, Any]], *, labels: Sequence[str] | None = None, normalize: bool = False,
            space: str = "normalized", seed: int = 0, progress: Progress | None = None) -> SpectraRun:
    """Exact Jacobian spectra for (encoder or spec, image) items: several images through one model (Fig 12
    style), or one image through several models, normalised by sigma_1 to compare their decay (Fig 13)."""
    items = [(as_encoder(encoder), image) for encoder, image in items]
    if not items:
        raise ProbeError("give at least one (model, image) item")
    labels = list(labels or [f"{e.spec}: {_name(image, f'image {i + 1}')}" for i, (e, image) in enumerate(items)])
    start = time.perf_counter()
    runs = []
    for index, (encoder, image) in enumerate(items):
        run = spectrum(encoder, image, space=space, seed=seed, progress=within(progress, labels[index]))
        if run.cancelled:
            break
        runs.append(run)
    specs = list(dict.fromkeys(e.spec for e, _ in items))
    model = {"model": ", ".join(specs), "weights": ", ".join(dict.fromkeys(e.weights for e, _ in items)),
             "models": [e.describe() for e in dict((e.spec, e) for e, _ in items).values()]}
    return SpectraRun(kind="spectra", model=model, settings={"space": space, "normalize": normalize}, seed=seed,
                      seconds=time.perf_counter() - start, cancelled=len(runs) < len(items),
                      labels=labels[:len(runs)], runs=runs, normalize=normalize)


# --- transfer: matched on one model, read by another ---------------------------------------------


def distance_ratio(encoder, matched: Tensor, sources: Tensor, targets: Tensor) -> Tensor:
    """||f(matched) - f(target)|| / ||f(source) - f(target)|| per pair: 0 when the embedding reached the
    target, ~1 when it did not move towards it."""
    from probe.zeroshot import embed_images

    fm, fs, ft = (embed_images(encoder, x.float()) for x in (matched, sources, targets))
    return (metrics.l2(fm, ft) / metrics.l2(fs, ft).clamp_min(1e-12)).cpu()


@dataclass
class TransferRun(Run):
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
             templates="none", seed: int = 0) -> TransferRun:
    """Images matched on one model (`matcher`, optional, for comparison) read by `reader`: its class
    predictions (its text head over `classes`, or `head`) and the distance ratio
    ||f(matched) - f(target)|| / ||f(source) - f(target)|| on each model. Batches (P,3,H,W) in [0,1]."""
    from probe.zeroshot import text_head, vision_text_matrix

    reader = as_encoder(reader)
    if not (len(matched) == len(sources) == len(targets) == len(source_labels) == len(target_labels)):
        raise ProbeError("matched, sources, targets and their labels must have one row per pair")
    start = time.perf_counter()
    head = head or text_head(reader, classes, templates=templates)
    matcher = as_encoder(matcher) if matcher is not None else None
    return TransferRun(kind="transfer", model=reader.describe(),
                       settings={"head": head.describe(), "pairs": len(matched)}, seed=seed,
                       seconds=time.perf_counter() - start, cancelled=False, classes=list(classes),
                       source_labels=list(source_labels), target_labels=list(target_labels),
                       probabilities=vision_text_matrix(reader, head, matched.float()),
                       ratio_reader=distance_ratio(reader, matched, sources, targets),
                       ratio_matcher=None if matcher is None else distance_ratio(matcher, matched, sources, targets),
                       matcher={} if matcher is None else matcher.describe())


# --- closeness against steps and seconds: the authors' procedure vs the fast mode ----------------


@dataclass
class CompareRun(Run):
    """The same pairs matched under several settings (or models): how fast each gets close to the target."""

    runs: dict = field(default_factory=dict)     # label -> [MatchRun, one per pair]
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
            progress: Progress | None = None) -> CompareRun:
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
            run = match(encoder, source, target, settings, seed=seed,
                        progress=within(progress, f"{label}, pair {index + 1}/{len(sources)}"))
            if run.cancelled:
                cancelled = True
                break
            runs[label].append(run)
        if cancelled:
            break
    first = next(iter(runs.values()))
    model = first[0].model if first else {"model": "", "weights": ""}
    return CompareRun(kind="compare", model=model, settings={"variants": list(variants), "goal": goal}, seed=seed,
                      seconds=time.perf_counter() - start, cancelled=cancelled, runs=runs, goal=goal)


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
    from probe.data import ImageSet, all_pairs, load_image_set
    from probe.evaluate import _clean_view, sweep_inputs
    from probe.zeroshot import text_head, vision_text_matrix

    encoder = as_encoder(encoder)
    image_set = image_set if isinstance(image_set, ImageSet) else load_image_set(image_set)
    head = head or text_head(encoder, image_set.class_names, templates=templates)
    if tuple(head.classes) != tuple(image_set.class_names):
        raise ProbeError(f"the head's classes {list(head.classes)} differ from the image set's "
                         f"{image_set.class_names}")
    images, settings = sweep_inputs(encoder, image_set, settings or FastSettings(resolution="model"))
    clean = vision_text_matrix(encoder, head, _clean_view(images))
    return SweepPlan(image_set, images, settings, all_pairs(image_set.labels, exclude), head, clean, batch_size, seed,
                     exclude)


def merge_outcomes(parts: Sequence) -> Any:
    """Per-shard `PairOutcomes` joined in the given order into one (the pairs too); cancelled if any was."""
    from probe.data import Pairs
    from probe.evaluate import PairOutcomes

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


def systematic_from(encoder, plan: SweepPlan, outcomes, seconds: float) -> SystematicRun:
    """The `SystematicRun` of a plan whose pairs were matched elsewhere (in shards, merged in order)."""
    from probe.evaluate import SystematicResult

    s = plan.image_set
    result = SystematicResult(list(s.class_names), list(s.labels), list(s.names), plan.clean_probabilities, outcomes)
    record = {**plan.settings.to_dict(), "resolution": "model" if plan.settings.mode == "fast" else None,
              "exclude": plan.exclude, "batch_size": plan.batch_size, "head": plan.head.describe()}
    return SystematicRun(kind="systematic", model=as_encoder(encoder).describe(), settings=record, seed=plan.seed,
                         seconds=seconds, cancelled=outcomes.cancelled, result=result, source=s.source)


__all__ = ["Run", "MatchRun", "EquivalenceRun", "SpectrumRun", "LipschitzRun", "InspectRun", "ClassifyRun",
           "SystematicRun", "EffectRun", "match", "equivalence", "spectrum", "lipschitz", "inspect", "classify",
           "systematic", "effect", "as_encoder", "as_pixels", "png_round_trip", "PaperSettings", "FastSettings",
           "ProjectionRun", "NoiseRun", "SpectraRun", "TransferRun", "CompareRun", "SweepPlan", "projection",
           "match_text", "noise_sensitivity", "roc_curve", "spectra", "distance_ratio", "transfer", "compare",
           "plan_systematic", "merge_outcomes", "systematic_from"]
