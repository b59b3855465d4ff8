"""Embedding matching: change source images until their embeddings equal the targets'.

The loop is built from small parts that compose (like lucent's render loop):

- a **loss** between current and target embeddings, per sample (`mse` as the paper, `cosine`, `l2`);
- a **constraint** that projects the iterate back to the allowed set (the paper's global clamp, or an
  L-inf / L2 budget intersected with the [0,1] box);
- an **optimiser** with per-sample state (plain gradient descent as the paper, Adam, sign steps);
- a **stopping rule** evaluated per sample (the paper's two thresholds, or a relative L2 cut).

`paper_parts` reproduces the authors' procedure exactly: plain gradient descent in the model's normalised
input space on the MSE of raw embeddings, clamped to the original's global min/max, stopping when both the
squared L2 distance and the cosine pass their thresholds. `fast_parts` works in [0,1] pixel space with Adam,
a cosine-decayed step, an L-inf (or L2) budget and the best iterate kept.

Every step is recorded (closeness to the target, drift from the source's own embedding, pixel change), the
graph is rebuilt each step (nothing kept across steps), and NaN/inf stops the run with a clear error.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch
from tqdm.auto import tqdm

from probe import metrics
from probe.errors import DivergenceError, ProbeError

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
    if not 0 < eps <= 1:
        raise ProbeError(f"budget must be in (0, 1] (a [0,1]-pixel distance), got {eps}")
    if norm == "linf":
        return LinfBall(eps)
    if norm == "l2":
        return L2Ball(eps)
    raise ProbeError(f"norm must be 'linf' or 'l2', got {norm!r}")

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

# --- the parts of a run, and the two modes --------------------------------------------------------


@dataclass
class MatchParts:
    """Everything that defines a matching run besides the model and the images."""

    space: str                     # "normalized": optimise the model input (paper); "pixel": [0,1] pixels
    loss: Callable[[Tensor, Tensor], Tensor]
    optimizer: Optimizer
    constraint: Callable[[Tensor, Tensor], Tensor] | None
    stop: Callable[[dict[str, Tensor], dict[str, Tensor]], Tensor]
    steps: int
    keep_best: bool = False
    resolution: str = "model"      # pixel space only: "model" input size, or "source" size
    description: dict = field(default_factory=dict)


def paper_parts(lr: float = 0.09, l2sq_below: float = 16.0, cos_above: float = 0.96, steps: int = 15000,
                loss: str = "mse", budget: float | None = None, norm: str = "linf") -> MatchParts:
    """The authors' procedure. `budget` (not in the paper) adds a [0,1]-pixel budget on top."""
    _check_common(lr, steps, loss)
    constraint = budget_constraint(norm, budget) if budget is not None else None
    return MatchParts(space="normalized", loss=LOSSES[loss], optimizer=GradientDescent(lr), constraint=constraint,
                      stop=PaperStop(l2sq_below, cos_above), steps=steps,
                      description={"mode": "paper", "loss": loss, "optimizer": "gradient descent", "lr": lr,
                                   "constraint": "clamp to the original's global [min, max] (normalised space)"
                                   + (f" + {norm} budget {budget} in pixels" if budget is not None else ""),
                                   "budget": budget, "norm": norm if budget is not None else None,
                                   "stop": f"l2^2 < {l2sq_below} and cos > {cos_above}", "max_steps": steps})


def fast_parts(budget: float = 8 / 255, norm: str = "linf", lr: float | None = None, steps: int = 300,
               rel_l2_below: float = 0.01, loss: str = "mse", optimizer: str | None = None,
               resolution: str = "model") -> MatchParts:
    """Adam (L-inf) or normalised-gradient steps (L2) in [0,1] pixel space under a budget, best iterate kept.

    `optimizer`: "adam", "sign" or "normalized"; by default "adam" for L-inf and "normalized" for L2
    (benchmarks/bench_l2_optimizers.py: on the mini-CLIP at 35 dB, 100% of pairs reach the target class
    with normalised steps, 89-90% with Adam).
    Default `lr`: budget/8 for Adam and sign steps, budget/4 (RMS per step) for normalised steps.
    """
    constraint = budget_constraint(norm, budget)
    optimizer = optimizer or ("normalized" if norm == "l2" else "adam")
    lr = lr if lr is not None else budget / (4 if optimizer == "normalized" else 8)
    _check_common(lr, steps, loss)
    if resolution not in ("model", "source"):
        raise ProbeError(f"resolution must be 'model' or 'source', got {resolution!r}")
    optimizers = {"adam": Adam(lr, steps), "sign": SteepestDescent(lr, steps, "linf"),
                  "normalized": SteepestDescent(lr, steps, "l2")}
    if optimizer not in optimizers:
        raise ProbeError(f"optimizer must be one of {sorted(optimizers)}, got {optimizer!r}")
    return MatchParts(space="pixel", loss=LOSSES[loss], optimizer=optimizers[optimizer], constraint=constraint,
                      stop=RelativeStop(rel_l2_below), steps=steps, keep_best=True, resolution=resolution,
                      description={"mode": "fast", "loss": loss, "optimizer": optimizer, "lr": lr,
                                   "lr_schedule": "cosine decay to 5%", "constraint": f"{norm} <= {budget} "
                                   "in [0,1] pixels (l2: root-mean-square), and the [0,1] box", "budget": budget, "norm": norm,
                                   "stop": f"l2 <= {rel_l2_below} x initial l2", "max_steps": steps,
                                   "resolution": resolution, "keeps": "best iterate (lowest loss)"})


def _check_common(lr: float, steps: int, loss: str) -> None:
    if not (lr > 0 and math.isfinite(lr)):
        raise ProbeError(f"lr must be a positive number, got {lr}")
    if not (isinstance(steps, int) and steps >= 1):
        raise ProbeError(f"steps must be an integer >= 1, got {steps}")
    if loss not in LOSSES:
        raise ProbeError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")

# --- the loop -------------------------------------------------------------------------------------


@dataclass
class MatchResult:
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
    description: dict

    def trace_rows(self) -> list[dict]:
        """One row per (step, sample), for CSV."""
        names = list(self.trace)
        steps, n = self.trace[names[0]].shape
        return [{"step": s, "sample": i, **{k: float(self.trace[k][s, i]) for k in names}}
                for s in range(steps) for i in range(n)]


Callback = Callable[[int, dict[str, Tensor]], "bool | None"]


def _as_batch(images: Tensor, name: str) -> Tensor:
    if not torch.is_tensor(images) or not images.is_floating_point():
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


def target_embeddings(encoder, targets: Tensor, n: int) -> Tensor:
    """Targets as embeddings: (N,m) passes through, images are embedded once (no grad)."""
    if torch.is_tensor(targets) and targets.dim() == 2:
        emb = targets.to(encoder.device, torch.float32)
    else:
        with torch.no_grad():
            emb = encoder(_as_batch(targets, "targets").to(encoder.device))
    if emb.shape[0] != n:
        raise ProbeError(f"got {n} sources but {emb.shape[0]} targets; pass one target per source")
    return emb


def match(encoder, sources: Tensor, targets: Tensor, mode: str = "fast", parts: MatchParts | None = None,
          seed: int = 0, verbose: bool = False, callback: Callback | None = None, **options) -> MatchResult:
    """Match each source image's embedding to its target (an image or an embedding), N pairs at once.

    `mode` picks `paper_parts(**options)` or `fast_parts(**options)`; `parts` overrides with your own.
    `callback(step, metrics)` is called every step; returning False cancels (the best result so far is
    returned with `cancelled=True`). The caller's tensors are never modified. Results are on the sources'
    device.
    """
    if parts is None:
        builders = {"paper": paper_parts, "fast": fast_parts}
        if mode not in builders:
            raise ProbeError(f"mode must be 'paper' or 'fast', got {mode!r}")
        try:
            parts = builders[mode](**options)
        except TypeError as err:
            raise ProbeError(f"{mode} mode: {err}") from err
    sources = _as_batch(sources, "sources")
    out_device = sources.device
    src = sources.to(encoder.device, torch.float32)
    target = target_embeddings(encoder, targets, src.shape[0])

    if parts.space == "normalized":
        x0 = encoder.preprocess(src)
        embed, to_pixels = encoder.embed_normalized, lambda x: encoder.denormalize(x).clamp(0, 1)
        source_pixels = encoder.to_model_input(src).clamp(0, 1)
        clamp = ClampToRange.of(x0)
        constraint = clamp if parts.constraint is None else AllOf(
            [clamp, _in_pixel_space(parts.constraint, encoder, x0)])
    else:
        x0 = src if parts.resolution == "source" else encoder.to_model_input(src).clamp(0, 1)
        embed, to_pixels = encoder, lambda x: x
        source_pixels = x0
        constraint = parts.constraint or (lambda x, _: x.clamp(0, 1))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _run(parts, embed, to_pixels, constraint, x0, source_pixels, target, out_device,
                    verbose, callback)


def _run(parts: MatchParts, embed, to_pixels, constraint, x0: Tensor, source_pixels: Tensor, target: Tensor,
         out_device, verbose: bool, callback: Callback | None) -> MatchResult:
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
    bar = tqdm(total=parts.steps, disable=not verbose, desc=f"matching ({parts.description.get('mode')})",
               unit="step", leave=False)
    for step in range(parts.steps + 1):
        x_var = x.detach().requires_grad_(True)
        emb = embed(x_var)
        loss = parts.loss(emb, target)
        (grad,) = torch.autograd.grad(loss.sum(), x_var)
        with torch.no_grad():
            record = _step_metrics(loss, emb, target, source_emb, to_pixels(x), source_pixels)
            history.append(record)
            converged |= parts.stop(record, history[0])
            # NaN/inf anywhere in grad makes its sum non-finite; read it with the stopping rule: one sync
            finite = torch.isfinite(loss).all() & torch.isfinite(grad.sum())
            finite, done = torch.stack([finite, converged.all()]).tolist()
            if not finite:
                bad = (~torch.isfinite(loss)).nonzero().flatten().tolist() or "some"
                raise DivergenceError(f"step {step}: loss or gradient became NaN/inf for sample(s) {bad}; "
                                      f"lower the learning rate (lr={parts.description.get('lr')})")
            if parts.keep_best:
                improved = loss < best_loss
                best_loss = torch.where(improved, loss, best_loss)
                best_x = _where_active(improved, x, best_x)
            if verbose:
                bar.set_postfix(loss=f"{float(loss.mean()):.4g}", cos=f"{float(record['cos_to_target'].mean()):.4f}")
            if callback is not None and callback(step, record) is False:
                cancelled = True
                break
            if done or step == parts.steps:
                break
            active = ~converged
            x = parts.optimizer.step(x, grad, state, step, active)
            x = constraint(x, x0)
            steps_run += active.long()
            bar.update(1)
    bar.close()
    with torch.no_grad():
        final_x = best_x if parts.keep_best else x
        images = to_pixels(final_x)
        final_emb = embed(final_x)
        final = _step_metrics(parts.loss(final_emb, target), final_emb, target, source_emb, images,
                              source_pixels)
        converged = parts.stop(final, history[0])
    trace = {k: torch.stack([h[k] for h in history]).cpu() for k in history[0]}
    already = (converged & (steps_run == 0)).nonzero().flatten().tolist()
    if already:
        warnings.warn(f"sample(s) {already} met the stopping rule before any step: the thresholds are in this "
                      "model's embedding units and may be too loose for it", stacklevel=3)
    return MatchResult(images=images.to(out_device), sources=source_pixels.to(out_device),
                       converged=converged.cpu(), steps_run=steps_run.cpu(), trace=trace,
                       initial={k: v[0] for k, v in trace.items()},
                       final={k: v.cpu() for k, v in final.items()}, target_embedding=target.to(out_device),
                       seconds=time.perf_counter() - start, cancelled=cancelled, description=parts.description)


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
