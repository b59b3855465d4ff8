"""Contrastive training of the mini-CLIP on freshly generated batches.

Each step draws a new batch from ``probe.toy.data`` with a seed derived from
(run seed, step), so data needs no storage and a resumed run sees exactly the
batches an uninterrupted run would. A curriculum (``ramp``) widens the wide
recipe's range of difficulty from easy shapes to the full range over the first
part of the run; it too is a function of the step alone. Model, optimiser and step go into a
checkpoint every ``checkpoint_every`` steps, written atomically; with a fixed
seed and thread count, resuming gives the same weights as never stopping.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import json
import math
import multiprocessing
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch

from probe.errors import ProbeError
from probe.models import resolve_device
from probe.params import Param, check_call, declare
from probe.progress import Progress, report
from probe.files import write_bytes
from probe.toy.data import EVAL_SEED, RECIPE, RECIPES, generate_batch
from probe.toy.model import (CONFIG_FILE, POOLS, WEIGHTS_FILE, build_model, model_config, pixels_to_tensor,
                             save_hub_folder, tokenizer)

MAX_STEPS = 10**6
MAX_SEED = EVAL_SEED // MAX_STEPS  # keeps every batch seed below the held-out range
MAX_LOGIT_SCALE = math.log(100)  # cap on the learnable temperature, as in CLIP
CHECKPOINT_FILE = "checkpoint.pt"


def batch_seed(seed: int, step: int) -> int:
    """Data seed of training batch ``step``: unique per (seed, step) and below ``EVAL_SEED``."""
    return seed * MAX_STEPS + step


def reach(step: int, steps: int, ramp: float) -> float:
    """The curriculum: the hardest difficulty drawn at ``step``, rising linearly from 0 to 1 over ``ramp`` x steps."""
    return 1.0 if ramp <= 0 else min(1.0, step / (ramp * steps))


def learning_rate(step: int, steps: int, peak: float) -> float:
    """Linear warm-up over the first 5% of steps, then cosine decay to zero."""
    warmup = max(1, steps // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


class ContrastiveLoss(torch.nn.Module):
    """CLIP's symmetric contrastive loss (image -> caption and caption -> image cross-entropy over the batch),
    with optional label smoothing of the one-hot targets; without smoothing it equals ``open_clip.ClipLoss``."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, image_features, text_features, logit_scale):
        per_image = logit_scale * image_features @ text_features.T   # as open_clip computes both, bit for bit
        per_text = logit_scale * text_features @ image_features.T
        labels = torch.arange(len(per_image), device=per_image.device)
        smooth = self.label_smoothing
        return (torch.nn.functional.cross_entropy(per_image, labels, label_smoothing=smooth)
                + torch.nn.functional.cross_entropy(per_text, labels, label_smoothing=smooth)) / 2


class WeightAverage:
    """An exponential moving average of a model's floating-point weights and buffers, its decay warmed up as
    min(decay, (1 + t) / (10 + t)) so the first steps do not freeze the random initialisation in."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        current = model.state_dict()
        for name, average in self.state.items():
            average.lerp_(current[name].detach(), 1 - decay)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        current = model.state_dict()
        for name, average in self.state.items():
            current[name].copy_(average)


@dataclass
class TrainResult:
    """A training run: the model (CPU, eval mode), the steps done, and whether it was cancelled (then the
    checkpoint holds the last step and `resume=True` continues; no model folder was written)."""

    model: torch.nn.Module   # an open_clip.CLIP
    step: int
    steps: int
    seconds: float
    cancelled: bool


def train(
    out_dir: str | Path,
    *,
    seed: int = 0,
    steps: int = 3000,
    batch: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 0.1,
    threads: int = 1,
    workers: int = 0,
    resume: bool = False,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 100,
    progress: Progress | None = None,
    device: str = "cpu",
    recipe: str | None = None,
    ramp: float = 0.0,
    pool: str | None = None,
    init: str | Path | None = None,
    ema: float = 0.0,
    label_smoothing: float = 0.0,
) -> TrainResult:
    """Train a mini-CLIP and write it to ``out_dir`` in OpenCLIP's Hub layout.

    ``checkpoint`` defaults to ``out_dir/checkpoint.pt``. Without ``resume`` an
    existing checkpoint is an error, so a finished or running job is never
    overwritten by accident. ``device`` runs the model there; data is always
    generated on the CPU, by ``workers`` processes (0: in this one), which is
    what bounds the speed on a GPU. Workers are spawned, so a script that calls
    this with ``workers`` > 0 needs an ``if __name__ == "__main__":`` guard.
    ``progress`` hears ("train", step, steps, {loss, logit_scale}) every step; returning
    False stops after a checkpoint, and the result is marked cancelled. ``recipe`` (default
    ``probe.toy.data.RECIPE``) chooses the data generator; ``ramp`` > 0 (wide recipe) makes it a curriculum that
    reaches the full range of difficulty after that share of the steps. ``pool`` sets the image tower's pooling
    (``probe.toy.model.POOLS``; default: the config's, the class token). ``init``, a mini-CLIP
    folder, starts from its weights instead of a fresh initialisation (a second training stage); the
    weights' sha256 is part of the resume check. ``ema`` > 0 keeps an exponential moving average of the
    weights with that decay (warmed up over the first steps) and writes it as the model; ``label_smoothing``
    softens the contrastive loss's one-hot targets.
    """
    recipe = recipe or RECIPE
    check_call(TRAIN, seed=seed, steps=steps, batch=batch, lr=lr, weight_decay=weight_decay, threads=threads,
               workers=workers, checkpoint_every=checkpoint_every, device=device, recipe=recipe, ramp=ramp, pool=pool,
               ema=ema, label_smoothing=label_smoothing)
    config = model_config(pool)
    settings = {"seed": seed, "steps": steps, "batch": batch, "lr": lr, "weight_decay": weight_decay,
                "model_cfg": config}
    start_state, start_digest = _read_weights(Path(init)) if init is not None else (None, None)
    # recorded only when not the shipped recipe's, so checkpoints written before these options existed resume
    if recipe != "narrow":
        settings["recipe"] = recipe
    if ramp:
        settings["ramp"] = ramp
    if start_digest:
        settings["init"] = start_digest
    if ema:
        settings["ema"] = ema
    if label_smoothing:
        settings["label_smoothing"] = label_smoothing
    out_dir = Path(out_dir)
    ckpt_path = Path(checkpoint) if checkpoint else out_dir / CHECKPOINT_FILE
    torch.set_num_threads(threads)
    device = resolve_device(device)

    model = build_model(seed, config)
    if start_state is not None:
        _load_weights(model, start_state, init, config)
    model = model.to(device)
    optimizer = _optimizer(model, lr, weight_decay)
    average = WeightAverage(model, ema) if ema else None
    start = _load_checkpoint(ckpt_path, model, optimizer, settings, average) if resume else 0
    if not resume and ckpt_path.exists():
        raise ProbeError(f"checkpoint {ckpt_path} already exists; pass --resume to continue it or delete it")

    tok = tokenizer()
    loss_fn = ContrastiveLoss(label_smoothing)
    model.train()
    started = time.monotonic()
    report(progress, "train", start, steps)
    with contextlib.closing(_batches(seed, batch, start, steps, workers, recipe, ramp)) as batches:
        for step, (pixels, captions) in zip(range(start, steps), batches):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, steps, lr)
            loss = _train_step(model, optimizer, loss_fn, tok, pixels, captions, device)
            if average is not None:
                average.update(model, step + 1)
            if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
                _save_checkpoint(ckpt_path, model, optimizer, settings, step + 1, average)
            if not report(progress, "train", step + 1, steps, {"loss": loss,
                                                                "logit_scale": model.logit_scale.exp().item()}):
                if (step + 1) % checkpoint_every:
                    _save_checkpoint(ckpt_path, model, optimizer, settings, step + 1, average)
                return TrainResult(model.cpu().eval(), step + 1, steps, time.monotonic() - started, True)
    if average is not None:
        average.copy_to(model)
    save_hub_folder(model.cpu(), out_dir, config)
    return TrainResult(model.eval(), steps, steps, time.monotonic() - started, False)


TRAIN = declare(
    train,
    seed=Param("seed of the weights and the data", kind=int, low=0, high=MAX_SEED, open_high=True),
    steps=Param("optimisation steps", kind=int, low=1, high=MAX_STEPS),
    batch=Param("images per batch (the contrastive loss needs negatives)", kind=int, low=2),
    lr=Param("peak learning rate", low=0, open_low=True),
    weight_decay=Param("AdamW weight decay on weight matrices", low=0),
    threads=Param("torch CPU threads", kind=int, low=1),
    workers=Param("processes generating data (0: in the training process; on a GPU use ~8)", kind=int, low=0),
    checkpoint_every=Param("steps between checkpoints", kind=int, low=1),
    device=Param("cpu, cuda, cuda:1 ...", kind=str),
    recipe=Param("data generator: narrow (sizes near half the image, 3 x 3 positions) or wide (any size, position, "
                 "outline, plain/noisy/gradient backgrounds)", kind=str, choices=RECIPES, optional=True),
    ramp=Param("wide recipe: share of the steps over which difficulty rises to the full range", low=0, high=1,
               open_high=True),
    pool=Param("image embedding: the class token (tok) or the average of the patch tokens (avg); default tok",
               kind=str, choices=POOLS, optional=True),
    ema=Param("decay of an exponential moving average of the weights, written as the model (0: none)", low=0,
              high=1, open_high=True),
    label_smoothing=Param("label smoothing of the contrastive loss's targets", low=0, high=1, open_high=True),
)


def _batches(seed: int, batch: int, start: int, steps: int, workers: int, recipe: str, ramp: float):
    """Yield (uint8 pixels, captions) of training batches ``start .. steps-1`` in order.

    With ``workers`` > 0 they are generated in that many processes (which leave Ctrl-C to this one), at
    most two per worker ahead.
    """
    if workers == 0:
        yield from (generate_batch(batch, batch_seed(seed, step), recipe, reach(step, steps, ramp))
                    for step in range(start, steps))
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN))
    pending = collections.deque()
    try:
        for step in range(start, steps):
            pending.append(pool.submit(generate_batch, batch, batch_seed(seed, step), recipe, reach(step, steps, ramp)))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(cancel_futures=True)


def _read_weights(folder: Path) -> tuple[dict, str]:
    """The (float16) weights of mini-CLIP folder ``folder`` and their sha256, from one read of the file."""
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ProbeError(f"--init {folder}: no {WEIGHTS_FILE} there; is it a mini-CLIP folder?")
    raw = weights.read_bytes()
    return safetensors.torch.load(raw), hashlib.sha256(raw).hexdigest()


def _load_weights(model: torch.nn.Module, state: dict, folder, config: dict) -> None:
    """Copy ``state`` (read from ``folder``) into ``model`` (built from ``config``) as float32. The folder's own
    config must be ``config``: class-token and averaged weights have the same tensors and would load silently."""
    saved = Path(folder) / CONFIG_FILE
    theirs = json.loads(saved.read_text()).get("model_cfg", {}) if saved.is_file() else config
    if theirs != config:
        differ = sorted(f"{tower}.{key}" for tower in ("vision_cfg", "text_cfg")
                        for key in theirs.get(tower, {}).keys() | config[tower].keys()
                        if theirs.get(tower, {}).get(key) != config[tower].get(key)) or ["embed_dim"]
        raise ProbeError(f"--init {folder} was trained with another model config (differs in {', '.join(differ)}); "
                         "train with its options (e.g. --pool)")
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as err:
        raise ProbeError(f"--init {folder} does not fit this model: {str(err).splitlines()[0]}") from err


def _optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW (fused: much faster on CPU) with weight decay on matrices only, not gains and biases."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6, fused=True)


def _train_step(model, optimizer, loss_fn, tok, pixels, captions: list[str], device) -> float:
    """One optimisation step on a batch of uint8 images and their captions; returns the loss."""
    images = pixels_to_tensor(pixels).to(device)
    texts = tok(captions).to(device)
    image_features, text_features, logit_scale = model(images, texts)
    loss = loss_fn(image_features, text_features, logit_scale)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
    return loss.item()


def _save_checkpoint(path: Path, model, optimizer, settings: dict, step: int, average=None) -> None:
    """Write the training state atomically (``probe.results``): a crash leaves the previous checkpoint."""
    state = {"step": step, "settings": settings, "model": model.state_dict(), "optimizer": optimizer.state_dict()}
    if average is not None:
        state["ema"] = average.state
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getvalue())


def _load_checkpoint(path: Path, model, optimizer, settings: dict, average=None) -> int:
    """Restore model and optimiser from ``path``; returns the step to continue from."""
    if not path.exists():
        raise ProbeError(f"--resume given but no checkpoint at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["settings"] != settings:
        raise ProbeError(
            f"checkpoint {path} was written with {state['settings']}, which differs from {settings}; "
            "resume with the same --seed/--steps/--batch/--lr/--weight-decay and model config"
        )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise ProbeError(f"checkpoint {path} does not fit this model: {str(err).splitlines()[0]}") from err
    optimizer.load_state_dict(state["optimizer"])
    if average is not None:
        average.state = state["ema"]
    return state["step"]
