"""Contrastive training of the mini-CLIP on freshly generated batches.

Each step draws a new batch from ``probe.toy.data`` with a seed derived from
(run seed, step), so data needs no storage and a resumed run sees exactly the
batches an uninterrupted run would. Model, optimiser and step go into a
checkpoint every ``checkpoint_every`` steps, written atomically; with a fixed
seed and thread count, resuming gives the same weights as never stopping.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import open_clip
import torch
from tqdm import tqdm

from probe.toy.data import EVAL_SEED, generate_samples
from probe.toy.model import build_model, images_to_tensor, save_hub_folder, tokenizer

MAX_STEPS = 10**6
MAX_SEED = EVAL_SEED // MAX_STEPS  # keeps every batch seed below the held-out range
MAX_LOGIT_SCALE = math.log(100)  # cap on the learnable temperature, as in CLIP
CHECKPOINT_FILE = "checkpoint.pt"


def batch_seed(seed: int, step: int) -> int:
    """Data seed of training batch ``step``: unique per (seed, step) and below ``EVAL_SEED``."""
    return seed * MAX_STEPS + step


def learning_rate(step: int, steps: int, peak: float) -> float:
    """Linear warm-up over the first 5% of steps, then cosine decay to zero."""
    warmup = max(1, steps // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def train(
    out_dir: str | Path,
    *,
    seed: int = 0,
    steps: int = 3000,
    batch: int = 64,
    lr: float = 2e-3,
    threads: int = 1,
    resume: bool = False,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 100,
    progress: bool = True,
) -> open_clip.CLIP:
    """Train a mini-CLIP and write it to ``out_dir`` in OpenCLIP's Hub layout.

    ``checkpoint`` defaults to ``out_dir/checkpoint.pt``. Without ``resume`` an
    existing checkpoint is an error, so a finished or running job is never
    overwritten by accident.
    """
    settings = {"seed": seed, "steps": steps, "batch": batch, "lr": lr}
    _check_settings(settings, threads, checkpoint_every)
    out_dir = Path(out_dir)
    ckpt_path = Path(checkpoint) if checkpoint else out_dir / CHECKPOINT_FILE
    torch.set_num_threads(threads)

    model = build_model(seed)
    optimizer = _optimizer(model, lr)
    start = _load_checkpoint(ckpt_path, model, optimizer, settings) if resume else 0
    if not resume and ckpt_path.exists():
        raise FileExistsError(f"checkpoint {ckpt_path} already exists; pass --resume to continue it or delete it")

    tok = tokenizer()
    loss_fn = open_clip.ClipLoss()
    model.train()
    started = time.monotonic()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc="train", disable=not progress)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, lr)
        samples = generate_samples(batch, batch_seed(seed, step))
        loss = _train_step(model, optimizer, loss_fn, tok, samples)
        bar.set_postfix(loss=f"{loss:.3f}", scale=f"{model.logit_scale.exp().item():.1f}")
        if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
            _save_checkpoint(ckpt_path, model, optimizer, settings, step + 1)
    save_hub_folder(model, out_dir)
    if progress:
        print(f"trained steps {start}..{steps} in {time.monotonic() - started:.0f} s; model written to {out_dir}")
    return model.eval()


def _check_settings(settings: dict, threads: int, checkpoint_every: int) -> None:
    if not 0 <= settings["seed"] < MAX_SEED:
        raise ValueError(f"seed must be in [0, {MAX_SEED}), got {settings['seed']}")
    if not 1 <= settings["steps"] <= MAX_STEPS:
        raise ValueError(f"steps must be in [1, {MAX_STEPS}], got {settings['steps']}")
    if settings["batch"] < 2:
        raise ValueError(f"batch must be >= 2 (contrastive loss needs negatives), got {settings['batch']}")
    if settings["lr"] <= 0:
        raise ValueError(f"lr must be > 0, got {settings['lr']}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")


def _optimizer(model: torch.nn.Module, lr: float) -> torch.optim.AdamW:
    """AdamW (fused: much faster on CPU) with weight decay on matrices only, not gains and biases."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6, fused=True)


def _train_step(model, optimizer, loss_fn, tok, samples: list) -> float:
    """One optimisation step on a batch of samples; returns the loss."""
    images = images_to_tensor([s.image for s in samples])
    texts = tok([s.caption for s in samples])
    image_features, text_features, logit_scale = model(images, texts)
    loss = loss_fn(image_features, text_features, logit_scale)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
    return loss.item()


def _save_checkpoint(path: Path, model, optimizer, settings: dict, step: int) -> None:
    """Write the training state to a temporary file, then atomically rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"step": step, "settings": settings, "model": model.state_dict(), "optimizer": optimizer.state_dict()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, model, optimizer, settings: dict) -> int:
    """Restore model and optimiser from ``path``; returns the step to continue from."""
    if not path.exists():
        raise FileNotFoundError(f"--resume given but no checkpoint at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["settings"] != settings:
        raise ValueError(
            f"checkpoint {path} was written with {state['settings']}, which differs from {settings}; "
            "resume with the same --seed/--steps/--batch/--lr"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return state["step"]
