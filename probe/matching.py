"""Embedding matching: change source images until their embeddings equal the targets'.

The loop is built from small parts that compose (like lucent's render loop):

- a **loss** between current and target embeddings, per sample (`mse` as the paper, `cosine`, `l2`);
- a **constraint** that projects the iterate back to the allowed set (the paper's global clamp, or an
  L-inf / L2 budget intersected with the [0,1] box);
- an **optimiser** with per-sample state (plain gradient descent as the paper, Adam, sign steps);
- a **stopping rule** evaluated per sample (the paper's two thresholds, or a relative L2 cut).

The two modes are settings values (frozen dataclasses with `to_dict()`). `PaperSettings` reproduces the
authors' procedure exactly: starting from the model's own (PIL) preprocessing of the image, plain gradient
descent in the model's normalised input space on the MSE of raw embeddings, clamped to the original's global
min/max, stopping when both the squared L2 distance and the cosine pass their thresholds. `FastSettings`
works in [0,1] pixel space (at the source's resolution by default) with Adam, a cosine-decayed step, an
L-inf (or L2) budget and the best iterate kept.

Every step is recorded (closeness to the target, drift from the source's own embedding, pixel change), the
graph is rebuilt each step (nothing kept across steps), and NaN/inf stops the run with a clear error.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Protocol

import torch
from PIL import Image

from probe import metrics
from probe.errors import DivergenceError, ProbeError
from probe.images import fit_pixel_count, from_pil
from probe.params import Param, check_fields, check_options, params_of, setting
from probe.progress import Progress, report, within
from probe.transforms import SURVIVE, RandomTransforms

Tensor = torch.Tensor

# --- losses: (embedding, target) -> per-sample loss (N,) ------------------------------------------


def mse_loss(emb: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over embedding dimensions (the paper's nn.MSELoss for one image)."""
    return (emb - target).pow(2).mean(dim=1)


def cosine_loss(emb: Tensor, target: Tensor) -> Tensor:
    return 1.0 - torch.nn.functional.cosine_similarity(emb, target, dim=1)


def l2_loss(emb: Tensor, target: Tensor) -> Tensor:
    return (emb - target).norm(dim=1)


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"mse": mse_loss, "cosine": cosine_loss, "l2": l2_loss}

# --- constraints: (x, x0) -> projected x ---------------------------------------------------------


@dataclass
class ClampToRange:
    """The paper's constraint: every element within the original's global [min, max] (per sample)."""

    low: Tensor   # (N,1,1,1)
    high: Tensor

    @classmethod
    def of(cls, x0: Tensor) -> "ClampToRange":
        flat = x0.reshape(x0.shape[0], -1)
        shape = (-1,) + (1,) * (x0.dim() - 1)
        return cls(flat.amin(1).view(shape), flat.amax(1).view(shape))

    def __call__(self, x: Tensor, x0: Tensor) -> Tensor:
        return torch.maximum(torch.minimum(x, self.high), self.low)


@dataclass
class LinfBall:
    """|x - x0| <= eps elementwise, and x in the [0,1] box."""

    eps: float

    def __call__(self, x: Tensor, x0: Tensor) -> Tensor:
        return (x0 + (x - x0).clamp(-self.eps, self.eps)).clamp(0.0, 1.0)


@dataclass
class L2Ball:
    """Root-mean-square change <= eps per sample (||x - x0||_2 <= eps * sqrt(n), so one budget means the
    same at any resolution), then the [0,1] box (the standard PGD projection)."""

    eps: float

    def __call__(self, x: Tensor, x0: Tensor) -> Tensor:
        delta = x - x0
        flat = delta.reshape(delta.shape[0], -1)
        norms = flat.norm(dim=1).clamp_min(1e-12)
        factor = (self.eps * flat.shape[1] ** 0.5 / norms).clamp(max=1.0).view(-1, *([1] * (x.dim() - 1)))
        return (x0 + delta * factor).clamp(0.0, 1.0)


@dataclass
class AllOf:
    """Apply constraints in order."""

    constraints: list

    def __call__(self, x: Tensor, x0: Tensor) -> Tensor:
        for constraint in self.constraints:
            x = constraint(x, x0)
        return x


def _in_pixel_space(constraint, encoder, x0: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """A pixel-space constraint applied to an iterate in the model's normalised space."""
    pixels0 = encoder.denormalize(x0)
    return lambda x, _: encoder.normalize(constraint(encoder.denormalize(x), pixels0))


def budget_constraint(norm: str, eps: float) -> Callable[[Tensor, Tensor], Tensor]:
    _check_budget(eps)
    _check_norm(norm)
    return LinfBall(eps) if norm == "linf" else L2Ball(eps)

# --- optimisers: per-sample state, frozen samples stay put ---------------------------------------


class Optimizer(Protocol):
    def init(self, x: Tensor) -> dict: ...
    def step(self, x: Tensor, grad: Tensor, state: dict, step: int, active: Tensor) -> Tensor: ...


def _where_active(active: Tensor, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(active.view(-1, *([1] * (new.dim() - 1))), new, old)


@dataclass
class GradientDescent:
    """x <- x - lr * grad: the paper's update (no momentum)."""

    lr: float

    def init(self, x: Tensor) -> dict:
        return {}

    def step(self, x: Tensor, grad: Tensor, state: dict, step: int, active: Tensor) -> Tensor:
        return _where_active(active, x - self.lr * grad, x)


def cosine_decay(lr: float, step: int, total: int, floor: float = 0.05) -> float:
    """lr decayed along half a cosine from lr to floor*lr over `total` steps."""
    progress = min(step / max(total, 1), 1.0)
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class Adam:
    """Adam with per-sample moments and a cosine-decayed step size."""

    lr: float
    total_steps: int
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def init(self, x: Tensor) -> dict:
        return {"m": torch.zeros_like(x), "v": torch.zeros_like(x), "t": torch.zeros(x.shape[0], device=x.device)}

    def step(self, x: Tensor, grad: Tensor, state: dict, step: int, active: Tensor) -> Tensor:
        b1, b2 = self.betas
        shape = (-1,) + (1,) * (x.dim() - 1)
        keep = active.view(shape)
        state["m"] = torch.where(keep, torch.lerp(state["m"], grad, 1 - b1), state["m"])
        state["v"] = torch.where(keep, torch.addcmul(state["v"] * b2, grad, grad, value=1 - b2), state["v"])
        state["t"] = state["t"] + active.float()
        t = state["t"].clamp_min(1).view(shape)
        lr = cosine_decay(self.lr, step, self.total_steps)
        # the bias corrections are per-sample scalars: fold them into the denominator and the step size
        denom = (state["v"] / (1 - b2**t)).sqrt_().add_(self.eps)
        return _where_active(active, torch.addcmul(x, state["m"] / denom, lr / (1 - b1**t), value=-1), x)


@dataclass
class SteepestDescent:
    """x <- x - lr * d, d the steepest-descent direction of a pixel norm (PGD's step), cosine-decayed lr.

    linf: d = sign(grad), every pixel moves by lr. l2: d = grad / rms(grad) per sample, the image moves
    by lr in root-mean-square, concentrated where the gradient is large; under an L2 budget this beats
    Adam, whose per-pixel scaling spreads the change evenly like an L-inf step.
    """

    lr: float
    total_steps: int
    norm: str = "linf"

    def init(self, x: Tensor) -> dict:
        return {}

    def step(self, x: Tensor, grad: Tensor, state: dict, step: int, active: Tensor) -> Tensor:
        lr = cosine_decay(self.lr, step, self.total_steps)
        if self.norm == "linf":
            direction = grad.sign()
        else:
            rms = grad.flatten(1).square().mean(dim=1).sqrt().clamp_min(1e-20)
            direction = grad / rms.view(-1, *([1] * (grad.dim() - 1)))
        return _where_active(active, x - lr * direction, x)


# --- stopping rules: (this step's metrics, step 0's metrics) -> per-sample done (N,) bool --------------------------------


@dataclass
class PaperStop:
    """Done when squared L2 < l2sq_below AND cosine > cos_above (the authors' rule)."""

    l2sq_below: float = 16.0
    cos_above: float = 0.96

    def __call__(self, m: dict[str, Tensor], initial: dict[str, Tensor]) -> Tensor:
        return (m["l2_to_target"].pow(2) < self.l2sq_below) & (m["cos_to_target"] > self.cos_above)


@dataclass
class RelativeStop:
    """Done when the L2 distance to the target is at most `fraction` of where it started."""

    fraction: float = 0.01

    def __call__(self, m: dict[str, Tensor], initial: dict[str, Tensor]) -> Tensor:
        return m["l2_to_target"] <= self.fraction * initial["l2_to_target"]

# --- the parts of a run ---------------------------------------------------------------------------


@dataclass
class MatchParts:
    """Everything that defines a matching run besides the model and the images (build your own to try a new
    loss, constraint, optimiser or stopping rule; the settings below build the two modes)."""

    space: str                     # "normalized": optimise the model input (paper); "pixel": [0,1] pixels
    loss: Callable[[Tensor, Tensor], Tensor]
    optimizer: Optimizer
    constraint: Callable[[Tensor, Tensor], Tensor] | None
    stop: Callable[[dict[str, Tensor], dict[str, Tensor]], Tensor]
    steps: int
    keep_best: bool = False
    resolution: str = "model"      # pixel space only: "model" input size, or "source" size
    max_pixels: int | None = None  # pixel space at source size: larger sources are scaled down to this
    transform: Callable[[Tensor], Tensor] | None = None   # pixel space: on a random half of the steps the loss is
    #   taken on a fresh random transform(x) instead of x (expectation over transformations, half of it the
    #   picture itself); metrics and the stopping rule always read x itself


# --- settings: the two modes as values ----------------------------------------------------------------

MAX_MATCH_PIXELS = 1024 * 1024  # source-resolution matching scales larger images down to about 1 megapixel
MAX_STEPS = 1_000_000
NORMS = ("linf", "l2")
OPTIMIZERS = ("adam", "sign", "normalized")
RESOLUTIONS = ("source", "model")
MODE = Param("fast: ours, [0,1] pixels under a budget; paper: the authors' exact procedure", kind=str,
             choices=("fast", "paper")).named("mode", "fast")


@dataclass(frozen=True)
class PaperSettings:
    """The authors' procedure, exactly: plain gradient descent (lr) on the MSE of raw embeddings in the model's
    normalised input space, every element clamped to the original's global [min, max], stopping when the
    squared L2 distance < l2sq_below AND cosine > cos_above, at most `steps`; the last iterate is the result.
    The start is the model's own (PIL) preprocessing of the 8-bit image, as the authors' code fed the model.
    `budget` (not in the paper) adds a [0,1]-pixel budget in `norm` on top."""

    lr: float = setting(0.09, "step size of the plain gradient descent", low=0, open_low=True,
                        unit="normalised input units")
    l2sq_below: float = setting(16.0, "stop: squared L2 distance to the target below this (and the cosine test)",
                                low=0, unit="embedding units squared")
    cos_above: float = setting(0.96, "stop: cosine to the target above this (and the L2 test); > 1 never stops",
                               low=-1, high=2)
    steps: int = setting(15000, "iteration cap", kind=int, low=1, high=MAX_STEPS)
    loss: str = setting("mse", "loss between the embeddings", kind=str, choices=tuple(LOSSES))
    budget: float | None = setting(None, "extra pixel budget on top of the paper's clamp (not in the paper); "
                                         "none by default", low=0, high=1, open_low=True, optional=True,
                                   unit="[0,1] pixels")
    norm: str = setting("linf", "the budget's norm (l2: root-mean-square)", kind=str, choices=NORMS)

    mode = "paper"

    def __post_init__(self):
        check_fields(self)

    def parts(self) -> MatchParts:
        constraint = budget_constraint(self.norm, self.budget) if self.budget is not None else None
        return MatchParts(space="normalized", loss=LOSSES[self.loss], optimizer=GradientDescent(self.lr),
                          constraint=constraint, stop=PaperStop(self.l2sq_below, self.cos_above), steps=self.steps)

    def to_dict(self) -> dict:
        return {"mode": self.mode, **asdict(self), "optimizer": "gradient descent",
                "constraint": "clamp to the original's global [min, max] (normalised space)"
                + (f" + {self.norm} <= {self.budget:.6g} in [0,1] pixels" if self.budget is not None else ""),
                "stop": f"l2^2 < {self.l2sq_below:g} and cos > {self.cos_above:g}", "keeps": "last iterate"}


@dataclass(frozen=True)
class FastSettings:
    """Our fast mode: [0,1] pixels under an L-inf (or root-mean-square L2) budget and the [0,1] box, Adam
    (L-inf) or normalised-gradient steps (L2) with a cosine-decayed step size, stopping when the L2 distance
    to the target is at most `rel_l2_below` of its start; the best iterate is the result.

    `resolution`: "source" optimises the source's own pixels (scaled down to `max_pixels` when larger),
    "model" the model's input size. `optimizer`: "adam", "sign" or "normalized" (default: adam for linf,
    normalized for l2). `lr`: default budget/8 (adam, sign) or budget/4 (normalized, RMS per step)."""

    budget: float = setting(8 / 255, "largest change allowed: per pixel (linf) or root-mean-square (l2)", low=0,
                            high=1, open_low=True, unit="[0,1] pixels")
    norm: str = setting("linf", "the budget's norm (l2: root-mean-square)", kind=str, choices=NORMS)
    lr: float | None = setting(None, "step size; default budget/8 (adam, sign) or budget/4 (normalized)", low=0,
                               open_low=True, optional=True, unit="[0,1] pixels")
    steps: int = setting(300, "iteration cap", kind=int, low=1, high=MAX_STEPS)
    rel_l2_below: float = setting(0.01, "stop: L2 distance to the target at most this share of its start", low=0,
                                  high=1)
    loss: str = setting("mse", "loss between the embeddings", kind=str, choices=tuple(LOSSES))
    optimizer: str | None = setting(None, "update rule; default adam for linf, normalized for l2", kind=str,
                                    choices=OPTIMIZERS, optional=True)
    resolution: str = setting("source", "optimise the source's own pixels (scaled down above max_pixels) or the "
                                        "model's input size", kind=str, choices=RESOLUTIONS)
    max_pixels: int = setting(MAX_MATCH_PIXELS, "source resolution: larger sources are scaled down to this many "
                                                "pixels", kind=int, low=1)
    survive: tuple[str, ...] = setting((), "optimise the match to survive these (random differentiable JPEG at "
                                           "quality 50-95, rescaling to 0.5-1x, shifts up to 3%): expectation over "
                                           "transformations; none by default", kind=str, choices=SURVIVE, many=True,
                                       optional=True)

    mode = "fast"

    def __post_init__(self):
        check_fields(self)

    @property
    def update_rule(self) -> str:
        return self.optimizer or ("normalized" if self.norm == "l2" else "adam")

    @property
    def step_size(self) -> float:
        if self.lr is not None:
            return self.lr
        return self.budget / (4 if self.update_rule == "normalized" else 8)

    def parts(self) -> MatchParts:
        lr, steps = self.step_size, self.steps
        optimizer = {"adam": lambda: Adam(lr, steps), "sign": lambda: SteepestDescent(lr, steps, "linf"),
                     "normalized": lambda: SteepestDescent(lr, steps, "l2")}[self.update_rule]()
        transform = RandomTransforms(self.survive) if self.survive else None
        return MatchParts(space="pixel", loss=LOSSES[self.loss], optimizer=optimizer,
                          constraint=budget_constraint(self.norm, self.budget), stop=RelativeStop(self.rel_l2_below),
                          steps=steps, keep_best=transform is None, resolution=self.resolution,
                          max_pixels=self.max_pixels, transform=transform)

    def to_dict(self) -> dict:
        return {"mode": self.mode, **asdict(self), "optimizer": self.update_rule, "lr": self.step_size,
                "lr_schedule": "cosine decay to 5%",
                "constraint": f"{self.norm} <= {self.budget:.6g} in [0,1] pixels"
                              + (" (root-mean-square)" if self.norm == "l2" else "") + " and the [0,1] box",
                "stop": f"l2 <= {self.rel_l2_below:g} x initial l2",
                "keeps": "last iterate" if self.survive else "best iterate (lowest loss)",
                "survive": list(self.survive),
                **({"objective": "each step, with probability 1/2, the loss of a "
                    f"random differentiable {'+'.join(self.survive)} of the picture instead of the picture's "
                    "(expectation over transformations)"} if self.survive else {})}


Settings = PaperSettings | FastSettings
MODES = {"paper": PaperSettings, "fast": FastSettings}


def settings_for(mode: str = "fast", model_defaults: dict | None = None, **options) -> Settings:
    """The settings of a mode by name: its declared defaults, then `model_defaults` (a model's own defaults for
    this mode, `probe.models.defaults_for`), then `options`; every value checked against its declaration, with a
    clear error for unknown modes and settings. The one way front ends build settings."""
    mode = MODE.check(mode)
    params = params_of(MODES[mode])
    if mode == "paper" and "survive" in options:
        if options.pop("survive"):
            raise ProbeError("survive is an option of the fast mode: the paper mode runs the authors' procedure "
                             "unchanged (use mode fast to make a match survive JPEG and resizing)")
    merged = {**check_options(params, model_defaults or {}, f"{mode} mode"),
              **check_options(params, {k: v for k, v in options.items() if v is not None}, f"{mode} mode")}
    return MODES[mode](**merged)


def settings_from_dict(record: dict) -> Settings:
    """Settings from their `to_dict()` (repro configs, resume checks); derived keys are ignored."""
    mode = MODE.check(record.get("mode"))
    known = params_of(MODES[mode])
    return MODES[mode](**{k: v for k, v in record.items() if k in known})


def _check_budget(budget: float) -> None:
    if not (isinstance(budget, (int, float)) and 0 < budget <= 1):
        raise ProbeError(f"budget must be in (0, 1] (a [0,1]-pixel distance), got {budget}")


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ProbeError(f"norm must be 'linf' or 'l2', got {norm!r}")

# --- the loop -------------------------------------------------------------------------------------


@dataclass
class MatchedBatch:
    """A batch of matched images and everything recorded on the way (tensors; `probe.experiments` turns one
    pair into a JSON-ready record)."""

    images: Tensor                  # (N,3,h,w) matched images in [0,1] (float, not yet quantised)
    sources: Tensor                 # (N,3,h,w) the sources at the same resolution, for comparison
    converged: Tensor               # (N,) bool: the stopping rule held
    steps_run: Tensor               # (N,) updates applied to each sample
    trace: dict[str, Tensor]        # name -> (steps+1, N): every recorded quantity at every step
    initial: dict[str, Tensor]      # name -> (N,) at step 0
    final: dict[str, Tensor]        # name -> (N,) for the returned images
    target_embedding: Tensor        # (N,m)
    seconds: float
    cancelled: bool
    settings: dict                  # the settings' to_dict() (or a note for hand-built parts)
    start: str                      # which preprocessing made the starting point
    notes: list[str] = field(default_factory=list)


def _as_batch(images, name: str) -> Tensor:
    """[0,1] images as (N,3,H,W) float: a tensor (3,H,W)/(N,3,H,W), or a list of same-size PIL images/tensors."""
    if not torch.is_tensor(images):
        items = [from_pil(x) if isinstance(x, Image.Image) else x for x in images]
        if not items or not all(torch.is_tensor(x) for x in items):
            raise ProbeError(f"{name} must be [0,1] image tensors or PIL images")
        if len({tuple(x.shape) for x in items}) > 1:
            raise ProbeError(f"{name} have different sizes; match them one at a time or at resolution 'model'")
        images = torch.stack(items)
    if not images.is_floating_point():
        raise ProbeError(f"{name} must be a float tensor of [0,1] RGB images")
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4 or images.shape[1] != 3:
        raise ProbeError(f"{name} must have shape (N,3,H,W), got {tuple(images.shape)}")
    low, high = float(images.min()), float(images.max())
    if low < -1e-3 or high > 1 + 1e-3:
        raise ProbeError(f"{name} must be [0,1] pixels, got values in [{low:.3g}, {high:.3g}] "
                         "(normalised or 0-255 input?)")
    return images


def _count(images) -> int:
    return images.shape[0] if torch.is_tensor(images) and images.dim() == 4 else (
        1 if torch.is_tensor(images) else len(images))


def _is_embedding(targets) -> bool:
    return torch.is_tensor(targets) and targets.dim() == 2


def target_embeddings(encoder, targets, n: int, space: str = "pixel") -> Tensor:
    """Targets as embeddings (N,m): embeddings pass through; images are embedded once, without gradients,
    the way the sources are prepared (`space` "normalized": the model's own preprocessing, as the paper)."""
    if _is_embedding(targets):
        emb = targets.to(encoder.device, torch.float32)
    else:
        with torch.no_grad():
            if space == "normalized":
                emb = encoder.embed_normalized(encoder.reference_input(_reference_items(targets, "targets")))
            else:
                emb = encoder(_as_batch(targets, "targets").to(encoder.device))
    if emb.shape[0] != n:
        raise ProbeError(f"got {n} sources but {emb.shape[0]} targets; pass one target per source")
    return emb


def _reference_items(images, name: str) -> list:
    """PIL images pass as they are; tensors are checked as [0,1] images (any sizes, as a list)."""
    if torch.is_tensor(images):
        return list(_as_batch(images, name))
    items = list(images)
    for item in items:
        if not isinstance(item, Image.Image):
            _as_batch(item, name)
    return items


def match(encoder, sources, targets, settings: Settings | None = None, *, parts: MatchParts | None = None,
          seed: int = 0, progress: Progress | None = None) -> MatchedBatch:
    """Match each source image's embedding to its target (an image or an embedding), N pairs at once.

    sources: [0,1] images (N,3,H,W) or PIL images (as opened; the paper's start is built from them exactly).
    targets: images the same way, or embeddings (N,m). `settings`: PaperSettings or FastSettings (default
    FastSettings()); `parts` overrides them with a hand-built combination. `progress(stage, step, steps,
    metrics)` is called every step; returning False cancels (the result so far comes back with
    `cancelled=True`). The caller's tensors are never modified. Results are on the sources' device.
    """
    if parts is None:
        settings = settings or FastSettings()
        if not isinstance(settings, (PaperSettings, FastSettings)):
            raise ProbeError(f"settings must be PaperSettings or FastSettings, got {type(settings).__name__}")
        parts, record = settings.parts(), settings.to_dict()
    else:
        record = {"mode": "custom parts", "steps": parts.steps, "space": parts.space}
    n = _count(sources)
    out_device = sources.device if torch.is_tensor(sources) else torch.device("cpu")
    notes = []
    if parts.space == "normalized":
        x0 = encoder.reference_input(_reference_items(sources, "sources"))
        start = encoder.reference_name
        embed, to_pixels = encoder.embed_normalized, lambda x: encoder.denormalize(x).clamp(0, 1)
        source_pixels = to_pixels(x0)
        clamp = ClampToRange.of(x0)
        constraint = clamp if parts.constraint is None else AllOf(
            [clamp, _in_pixel_space(parts.constraint, encoder, x0)])
    else:
        src = _as_batch(sources, "sources").to(encoder.device, torch.float32)
        if parts.resolution == "source":
            x0 = fit_pixel_count(src, parts.max_pixels) if parts.max_pixels else src
            if x0.shape != src.shape:
                notes.append(f"source scaled down from {src.shape[-2]}x{src.shape[-1]} to "
                             f"{x0.shape[-2]}x{x0.shape[-1]} (the {parts.max_pixels:,}-pixel cap)")
            start = f"the source's [0,1] pixels at {x0.shape[-2]}x{x0.shape[-1]}, preprocessed differentiably"
        else:
            x0 = encoder.to_model_input(src).clamp(0, 1)
            start = f"the source resized to the model input {tuple(x0.shape[-2:])} by probe's differentiable preprocessing"
        embed, to_pixels = encoder, lambda x: x
        source_pixels = x0
        constraint = parts.constraint or (lambda x, _: x.clamp(0, 1))
    target = target_embeddings(encoder, targets, n, parts.space)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        result = _run(parts, embed, to_pixels, constraint, x0, source_pixels, target, progress)
    return MatchedBatch(**{k: (v.to(out_device) if k in ("images", "sources", "target_embedding") else v)
                          for k, v in result.items()}, settings=record, start=start, notes=notes)


def sweep(encoder, sources, targets, settings: Settings, budgets: list[float], *, seed: int = 0,
          progress: Progress | None = None) -> list[MatchedBatch]:
    """One run per budget (as Foolbox's `epsilons`): the same settings with each budget in turn, same seed."""
    if not budgets:
        raise ProbeError("give at least one budget")
    results = []
    for index, budget in enumerate(budgets):
        results.append(match(encoder, sources, targets, replace(settings, budget=budget), seed=seed,
                             progress=within(progress, f"budget {index + 1}/{len(budgets)}")))
        if results[-1].cancelled:
            break
    return results


def _run(parts: MatchParts, embed, to_pixels, constraint, x0: Tensor, source_pixels: Tensor, target: Tensor,
         progress: Progress | None) -> dict:
    start = time.perf_counter()
    with torch.no_grad():
        source_emb = embed(x0)
    n = x0.shape[0]
    x = x0.clone()
    state = parts.optimizer.init(x)
    converged = torch.zeros(n, dtype=torch.bool, device=x.device)
    steps_run = torch.zeros(n, dtype=torch.long, device=x.device)
    best_x, best_loss = x, torch.full((n,), math.inf, device=x.device)
    history: list[dict[str, Tensor]] = []
    cancelled = False
    for step in range(parts.steps + 1):
        x_var = x.detach().requires_grad_(True)
        if parts.transform is not None and bool(torch.rand(()) < 0.5):   # half the steps: a transformed version
            with torch.no_grad():
                emb = embed(x)
                loss = parts.loss(emb, target)
            optimised = parts.loss(embed(parts.transform(x_var)), target)
        else:
            emb = embed(x_var)
            loss = optimised = parts.loss(emb, target)
        (grad,) = torch.autograd.grad(optimised.sum(), x_var)
        with torch.no_grad():
            record = _step_metrics(loss, emb, target, source_emb, to_pixels(x), source_pixels)
            history.append(record)
            converged |= parts.stop(record, history[0])
            # NaN/inf anywhere in grad makes its sum non-finite; read it with the stopping rule: one sync
            finite = torch.isfinite(loss).all() & torch.isfinite(grad.sum())
            finite, done, mean_loss, mean_cos = torch.stack(
                [finite.float(), converged.all().float(), loss.mean(), record["cos_to_target"].mean()]).tolist()
            if not finite:
                bad = (~torch.isfinite(loss)).nonzero().flatten().tolist() or "some"
                raise DivergenceError(f"step {step}: loss or gradient became NaN/inf for sample(s) {bad}; "
                                      f"lower the learning rate")
            if parts.keep_best:
                improved = loss < best_loss
                best_loss = torch.where(improved, loss, best_loss)
                best_x = _where_active(improved, x, best_x)
            if not report(progress, "match", step, parts.steps, {"loss": mean_loss, "cos_to_target": mean_cos}):
                cancelled = True
                break
            if done or step == parts.steps:
                break
            active = ~converged
            x = parts.optimizer.step(x, grad, state, step, active)
            x = constraint(x, x0)
            steps_run += active.long()
    with torch.no_grad():
        final_x = best_x if parts.keep_best else x
        images = to_pixels(final_x)
        final_emb = embed(final_x)
        final = _step_metrics(parts.loss(final_emb, target), final_emb, target, source_emb, images,
                              source_pixels)
        converged = parts.stop(final, history[0])
    trace = {k: torch.stack([h[k] for h in history]).cpu() for k in history[0]}
    already = (converged & (steps_run == 0)).nonzero().flatten().tolist()
    if already and not cancelled:
        warnings.warn(f"sample(s) {already} met the stopping rule before any step: the thresholds are in this "
                      "model's embedding units and may be too loose for it", stacklevel=3)
    return {"images": images, "sources": source_pixels, "converged": converged.cpu(), "steps_run": steps_run.cpu(),
            "trace": trace, "initial": {k: v[0] for k, v in trace.items()},
            "final": {k: v.cpu() for k, v in final.items()}, "target_embedding": target,
            "seconds": time.perf_counter() - start, "cancelled": cancelled}


def _step_metrics(loss: Tensor, emb: Tensor, target: Tensor, source_emb: Tensor, pixels: Tensor,
                  source_pixels: Tensor) -> dict[str, Tensor]:
    """Everything recorded about one iterate, per sample."""
    return {
        "loss": loss.detach(),
        "cos_to_target": metrics.cosine(emb, target),
        "l2_to_target": metrics.l2(emb, target),
        "cos_to_source": metrics.cosine(emb, source_emb),
        **metrics.pixel_change(pixels, source_pixels),
    }
