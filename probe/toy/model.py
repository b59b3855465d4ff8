"""Architecture of the mini-CLIP and saving it in OpenCLIP's Hub folder layout.

The model is a plain ``open_clip.CLIP`` built from a custom config: a small
ViT at 64 px and a small text transformer with context length 16 and the
default (49408-token) BPE tokenizer. The text width is kept at 64 because the
token embedding dominates the parameter count; weights are saved as float16.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save

from probe.errors import ProbeError
from probe.files import write_bytes, write_json

IMAGE_SIZE = 64
CONTEXT_LENGTH = 16
MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP statistics, the OpenCLIP default
STD = (0.26862954, 0.26130258, 0.27577711)

MODEL_CFG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": IMAGE_SIZE, "patch_size": 4, "width": 64, "layers": 4, "head_width": 16},
    "text_cfg": {"context_length": CONTEXT_LENGTH, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 3},
}
PREPROCESS_CFG = {
    "size": IMAGE_SIZE,
    "mode": "RGB",
    "mean": list(MEAN),
    "std": list(STD),
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"


POOLS = ("tok", "avg")   # the image embedding from the class token, or the average of the patch tokens


def model_config(pool: str | None = None) -> dict:
    """The mini-CLIP's OpenCLIP config (``MODEL_CFG``), with the image tower's pooling set when ``pool`` is given."""
    if pool is not None and pool not in POOLS:
        raise ProbeError(f"pool must be one of {POOLS}, got {pool!r}")
    if pool is None or pool == MODEL_CFG["vision_cfg"].get("pool_type", "tok"):
        return MODEL_CFG
    return {**MODEL_CFG, "vision_cfg": {**MODEL_CFG["vision_cfg"], "pool_type": pool}}


def build_model(seed: int, config: dict = MODEL_CFG) -> "open_clip.CLIP":  # noqa: F821 (open_clip: slow import)
    """A freshly initialised mini-CLIP of ``config``; the initial weights depend only on ``seed``."""
    import open_clip

    torch.manual_seed(seed)
    return open_clip.CLIP(**config)


def tokenizer() -> "open_clip.SimpleTokenizer":  # noqa: F821
    """OpenCLIP's default BPE tokenizer with the model's context length."""
    import open_clip

    return open_clip.SimpleTokenizer(context_length=CONTEXT_LENGTH)


def pixels_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """Normalise a uint8 (N, ``IMAGE_SIZE``, ``IMAGE_SIZE``, 3) batch like the model's preprocess.

    A fast path for training, where images already have the right size.
    """
    if pixels.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ProbeError(f"expected {IMAGE_SIZE}x{IMAGE_SIZE} RGB images, got array shape {pixels.shape[1:]}")
    batch = pixels.astype(np.float32) / 255.0
    batch = (batch - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()


def save_hub_folder(model: torch.nn.Module, out_dir: str | Path, config: dict) -> None:
    """Write ``open_clip_config.json`` (``config``, the model's) and float16 ``open_clip_model.safetensors`` into
    ``out_dir``.

    The folder loads with ``open_clip.create_model_and_transforms("local-dir:" + out_dir)``.
    Both files are written atomically (``probe.results``), weights first, so a crash never
    leaves a half-written model behind.
    """
    out_dir = Path(out_dir)
    weights = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    write_bytes(out_dir / WEIGHTS_FILE, save(weights))
    write_json(out_dir / CONFIG_FILE, {"model_cfg": config, "preprocess_cfg": PREPROCESS_CFG})
