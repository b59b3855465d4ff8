"""Model spec string -> Encoder: [0,1] RGB pixels in, embeddings out, preprocessing done differentiably inside.

One entry point, `load_encoder(spec)`, like open_clip's factory. A spec is `BACKEND:NAME[@WEIGHTS]`:

    openclip:ViT-B-32@laion2b_s34b_b79k        built-in architecture with a pretrained tag
    openclip:ViT-B-32@random                   same architecture, seeded random weights (`@random:7`)
    openclip:hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K
    openclip:local-dir:/path/to/folder         a folder in OpenCLIP's Hub layout
    hf:facebook/dinov2-small[@REVISION|@random]   Hugging Face transformers (repo id or local folder)
    timm:vit_small_patch16_224.augreg_in21k[@random|@local:/path/weights.safetensors]

or a preset name from `PRESETS` (e.g. `clip-b32`, `vit-h-14`, `mini-clip`).
"""
from __future__ import annotations

import contextlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from probe.errors import ModelError, ProbeError
from probe.toy import MINI_CLIP_DIR

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_DIR = PACKAGE_DIR / "configs"

PRESETS: dict[str, tuple[str, str]] = {
    "vit-h-14": ("openclip:ViT-H-14@laion2b_s32b_b79k",
                 "the paper's model: OpenCLIP ViT-H-14, ImageBind-huge's frozen image encoder"),
    "clip-b32": ("openclip:ViT-B-32@openai", "CLIP ViT-B/32 (OpenAI weights), the paper's alternative"),
    "clip-l14": ("openclip:ViT-L-14@openai", "CLIP ViT-L/14 (OpenAI weights), the paper's alternative"),
    "mini-clip": (f"openclip:local-dir:{MINI_CLIP_DIR}",
                  "the project's trained mini-CLIP (shapes and colours, 64 px): works offline"),
    "tiny": ("openclip:probe-tiny-vit@random", "2-layer random-init ViT for tests (no meaning)"),
}

BACKENDS = ("openclip", "hf", "timm")


def default_spec() -> str:
    """The offline default model: the shipped mini-CLIP, or the random-init `tiny` where it is absent."""
    return "mini-clip" if (MINI_CLIP_DIR / "open_clip_config.json").is_file() else "tiny"
INTERPOLATIONS = {"bicubic", "bilinear", "nearest"}


@dataclass(frozen=True)
class ModelSpec:
    backend: str
    name: str
    weights: str | None  # None: the default of that name (pretrained where the name implies weights)

    def __str__(self) -> str:
        return f"{self.backend}:{self.name}" + (f"@{self.weights}" if self.weights else "")


@dataclass(frozen=True)
class Preprocess:
    """How pixels become model input: resize, centre crop, normalise (the model's own recipe)."""

    size: tuple[int, int]          # model input (H, W)
    resize_shorter: int | None     # shorter side before the centre crop; None: resize straight to `size`
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"


def parse_spec(spec: str) -> ModelSpec:
    """`BACKEND:NAME[@WEIGHTS]` or a preset name -> ModelSpec."""
    spec = spec.strip()
    if spec in PRESETS:
        spec = PRESETS[spec][0]
    backend, sep, rest = spec.partition(":")
    if not sep or backend not in BACKENDS:
        raise ModelError(f"model spec {spec!r}: expected BACKEND:NAME[@WEIGHTS] with BACKEND one of "
                         f"{', '.join(BACKENDS)}, or a preset ({', '.join(PRESETS)})")
    name, weights = rest, None
    if "@" in rest and not rest.startswith("local-dir:"):
        name, _, weights = rest.rpartition("@")
    if not name:
        raise ModelError(f"model spec {spec!r}: missing model name after '{backend}:'")
    return ModelSpec(backend, name, weights or None)


def parse_random_seed(weights: str | None) -> int | None:
    """`random` -> 0, `random:7` -> 7, anything else -> None."""
    match = re.fullmatch(r"random(?::(\d+))?", weights or "")
    return None if match is None else int(match.group(1) or 0)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """A torch.device that exists on this machine, or a clear error."""
    try:
        dev = torch.device(device or "cpu")
    except (RuntimeError, TypeError) as err:
        raise ProbeError(f"device {device!r} is not a valid torch device (try cpu, cuda, cuda:1)") from err
    if dev.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ProbeError(f"device {device!r} requested but no CUDA device is available here")
        if dev.index is not None and dev.index >= count:
            raise ProbeError(f"device {device!r} requested but only {count} CUDA device(s) exist")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    elif dev.type not in ("cpu", "mps"):
        raise ProbeError(f"device {device!r} is not supported (use cpu or cuda[:N])")
    return dev


DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resize_center_crop(pixels: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    """Differentiable resize + centre crop of NCHW pixels to the model's input size.
    Images already at the input size pass through untouched."""
    h, w = pixels.shape[-2:]
    if (h, w) == pre.size:
        return pixels
    mode = pre.interpolation
    kwargs = {} if mode == "nearest" else {"align_corners": False, "antialias": True}
    if pre.resize_shorter is None:
        return F.interpolate(pixels, size=pre.size, mode=mode, **kwargs)
    short, long = (h, w) if h <= w else (w, h)
    new_long = int(pre.resize_shorter * long / short)  # torchvision's rounding, as the models were trained
    new = (pre.resize_shorter, new_long) if h <= w else (new_long, pre.resize_shorter)
    new = (max(new[0], pre.size[0]), max(new[1], pre.size[1]))
    if new != (h, w):
        pixels = F.interpolate(pixels, size=new, mode=mode, **kwargs)
    top = int(round((new[0] - pre.size[0]) / 2.0))
    left = int(round((new[1] - pre.size[1]) / 2.0))
    return pixels[..., top:top + pre.size[0], left:left + pre.size[1]]


class Encoder(torch.nn.Module):
    """A vision encoder that takes [0,1] RGB pixels (N,3,H,W, any size) and returns embeddings.

    Resize, crop and normalisation happen inside and are differentiable, so gradients reach the pixels.
    Embeddings are raw (as the paper uses) unless `normalize=True`. The encoder knows which weights it
    holds (`weights`: `pretrained:...`, `random:<seed>`, `local:<path>`), so every output can say so.
    """

    def __init__(self, model: torch.nn.Module, embed_image: Callable, preprocess: Preprocess, spec: str,
                 weights: str, embed_text: Callable | None = None, logit_scale: float | None = None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self._embed_image = embed_image
        self._embed_text = embed_text
        self.pre = preprocess
        self.spec = spec
        self.weights = weights
        self.logit_scale = logit_scale
        self.compute_dtype = torch.float32
        self.register_buffer("mean", torch.tensor(preprocess.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(preprocess.std).view(1, 3, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def input_size(self) -> tuple[int, int]:
        return self.pre.size

    @property
    def has_text(self) -> bool:
        return self._embed_text is not None

    def to_model_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0,1] pixels of any size -> [0,1] pixels at the model's input size."""
        return resize_center_crop(pixels, self.pre)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0,1] pixels of any size -> the model's normalised input (the paper's optimisation space)."""
        return self.normalize(self.to_model_input(pixels))

    def embed_normalized(self, x: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Embedding of already-normalised model input: float32 under a half-precision compute dtype,
        float64 for a float64 model and input (geometry's finite differences)."""
        autocast = (torch.autocast(self.device.type, dtype=self.compute_dtype)
                    if self.compute_dtype != torch.float32 else contextlib.nullcontext())
        with autocast:
            emb = self._embed_image(self.model, x)
        if emb.dtype != torch.float64:
            emb = emb.float()
        return F.normalize(emb, dim=-1) if normalize else emb

    def forward(self, pixels: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self.embed_normalized(self.preprocess(pixels), normalize=normalize)

    def encode_text(self, texts: list[str], normalize: bool = False) -> torch.Tensor:
        if self._embed_text is None:
            raise ModelError(f"{self.spec} has no text tower; use a CLIP-like model or a prototype head")
        emb = self._embed_text(self.model, list(texts), self.device).float()
        return F.normalize(emb, dim=-1) if normalize else emb

    def describe(self) -> dict:
        """What every result records about the model."""
        return {"model": self.spec, "weights": self.weights, "input_size": list(self.input_size),
                "mean": list(self.pre.mean), "std": list(self.pre.std),
                "interpolation": self.pre.interpolation, "resize_shorter": self.pre.resize_shorter,
                "has_text": self.has_text, "device": str(self.device),
                "compute_dtype": str(self.compute_dtype).removeprefix("torch.")}


@contextlib.contextmanager
def _seeded(seed: int | None):
    """Seed the CPU RNG for random initialisation without disturbing the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def _hub_revision(path: str | Path) -> str | None:
    """The commit hash in a Hugging Face cache path (`.../snapshots/<hash>/file`), if it is one."""
    parts = Path(path).parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts else None


# --- OpenCLIP -------------------------------------------------------------------------------------


def _register_shipped_configs() -> None:
    import open_clip

    for path in sorted(CONFIG_DIR.glob("*.json")):
        if path.stem not in open_clip.list_models():
            open_clip.add_model_config(path)


def _load_openclip(spec: ModelSpec) -> Encoder:
    import open_clip

    _register_shipped_configs()
    name, weights = spec.name, spec.weights
    seed = parse_random_seed(weights)
    if name.startswith(("hf-hub:", "local-dir:")):
        if weights is not None:
            raise ModelError(f"{spec}: '@{weights}' is not supported for {name.split(':')[0]} models; "
                             "their weights come with the repo or folder")
        if name.startswith("local-dir:"):
            folder = Path(name.removeprefix("local-dir:")).expanduser()
            if not (folder / "open_clip_config.json").is_file():
                raise ModelError(f"{spec}: {folder} is not a folder in OpenCLIP's Hub layout "
                                 "(open_clip_config.json + open_clip_model.safetensors)")
            name = f"local-dir:{folder.resolve()}"
            label = f"local:{folder.resolve()}"
        else:
            from huggingface_hub import hf_hub_download

            repo = name.removeprefix("hf-hub:")
            config_path = _call_loader(spec, lambda: hf_hub_download(repo, "open_clip_config.json"))
            label = f"pretrained:{repo}@{_hub_revision(config_path)}"
        model = _call_loader(spec, lambda: open_clip.create_model(name))
    else:
        if name not in open_clip.list_models():
            raise ModelError(f"{spec}: unknown OpenCLIP architecture {name!r} "
                             f"(e.g. ViT-B-32, ViT-L-14, ViT-H-14; see open_clip.list_models())")
        if weights is None:
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
            raise ModelError(f"{spec}: say which weights: @TAG (one of: {tags}) or @random")
        if seed is not None:
            with _seeded(seed):
                model = open_clip.create_model(name, pretrained=None)
            label = f"random:{seed}"
        else:
            cfg = open_clip.get_pretrained_cfg(name, weights)
            if not cfg:
                tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
                raise ModelError(f"{spec}: unknown pretrained tag {weights!r} for {name} (known: {tags})")
            path = _call_loader(spec, lambda: open_clip.download_pretrained(cfg))
            model = _call_loader(spec, lambda: open_clip.create_model(name, pretrained=weights))
            repo = cfg.get("hf_hub", "").strip("/")
            revision = _hub_revision(path)
            label = f"pretrained:{weights}" + (f" ({repo}@{revision})" if repo else "")
    pcfg = model.visual.preprocess_cfg
    size = pcfg["size"] if isinstance(pcfg["size"], (tuple, list)) else (pcfg["size"],) * 2
    resize_mode = pcfg.get("resize_mode", "shortest")
    pre = Preprocess(size=tuple(size), resize_shorter=None if resize_mode == "squash" else min(size),
                     mean=tuple(pcfg["mean"]), std=tuple(pcfg["std"]),
                     interpolation=pcfg.get("interpolation", "bicubic"))
    tokenizer = open_clip.get_tokenizer(name)

    def embed_text(m, texts, device):
        return m.encode_text(tokenizer(texts).to(device))

    scale = getattr(model, "logit_scale", None)
    return Encoder(model, lambda m, x: m.encode_image(x), pre, spec=str(spec), weights=label,
                   embed_text=embed_text, logit_scale=None if scale is None else float(scale.detach().exp()))


def _call_loader(spec: ModelSpec, load: Callable):
    """Run a third-party loader; turn its failure into one clear line."""
    try:
        return load()
    except ProbeError:
        raise
    except Exception as err:  # third-party loaders raise anything from OSError to RuntimeError
        first = (str(err).strip().splitlines() or [""])[0][:300]
        raise ModelError(
            f"could not load {spec}: {type(err).__name__}: {first}. If the Hugging Face Hub is unreachable, "
            "download the weights where it is (they go to the Hugging Face cache, HF_HOME) or point the spec "
            "at a local folder") from err


# --- Hugging Face transformers -------------------------------------------------------------------

PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


def _hf_file(name: str, filename: str, revision: str | None) -> Path:
    """A file of a transformers repo: from a local folder, or through the Hub cache."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / filename).is_file():
            raise ModelError(f"hf:{name}: {filename} missing in the folder")
        return folder / filename
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(name, filename, revision=revision))


def _hf_preprocess(cfg: dict) -> Preprocess:
    """The image processor's JSON (CLIP, ViT, DINOv2 style) -> differentiable preprocessing."""
    size = cfg.get("size", {"shortest_edge": 224})
    crop = cfg.get("crop_size") if cfg.get("do_center_crop", False) else None
    if isinstance(size, int):
        size = {"shortest_edge": size}
    if isinstance(crop, int):
        crop = {"height": crop, "width": crop}
    if "shortest_edge" in size:
        shorter = size["shortest_edge"]
        out = (crop["height"], crop["width"]) if crop else (shorter, shorter)
    else:
        shorter = None
        out = (crop["height"], crop["width"]) if crop else (size["height"], size["width"])
    resample = cfg.get("resample", 3)
    return Preprocess(size=tuple(out), resize_shorter=shorter,
                      mean=tuple(cfg.get("image_mean", (0.5, 0.5, 0.5))),
                      std=tuple(cfg.get("image_std", (0.5, 0.5, 0.5))),
                      interpolation=PIL_RESAMPLE.get(resample, "bicubic"))


def _hf_embed_image(model, x):
    """Image embedding by architecture: CLIP-like projection, else the CLS token."""
    if hasattr(model, "get_image_features"):
        out = model.get_image_features(pixel_values=x)
        return out if torch.is_tensor(out) else out.pooler_output
    out = model(pixel_values=x)
    if model.config.model_type == "dinov2":
        return out.pooler_output  # the layer-normed CLS token
    return out.last_hidden_state[:, 0]


def _load_hf(spec: ModelSpec) -> Encoder:
    import transformers

    seed = parse_random_seed(spec.weights)
    revision = None if seed is not None else spec.weights
    config = _call_loader(spec, lambda: transformers.AutoConfig.from_pretrained(spec.name, revision=revision))
    if seed is not None:
        with _seeded(seed):
            model = transformers.AutoModel.from_config(config)
        label = f"random:{seed}"
    else:
        model = _call_loader(spec, lambda: transformers.AutoModel.from_pretrained(spec.name, revision=revision))
        folder = Path(spec.name).expanduser()
        if folder.is_dir():
            label = f"local:{folder.resolve()}"
        else:
            config_path = _call_loader(spec, lambda: _hf_file(spec.name, "config.json", revision))
            label = f"pretrained:{spec.name}@{_hub_revision(config_path) or revision or 'main'}"
    processor_path = _call_loader(spec, lambda: _hf_file(spec.name, "preprocessor_config.json", revision))
    pre = _hf_preprocess(json.loads(processor_path.read_text()))
    embed_text, scale = None, None
    if hasattr(model, "get_text_features"):
        tokenizer = _call_loader(spec, lambda: transformers.AutoTokenizer.from_pretrained(spec.name,
                                                                                          revision=revision))

        def embed_text(m, texts, device):
            tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(device)
            out = m.get_text_features(**tokens)
            return out if torch.is_tensor(out) else out.pooler_output

        scale = float(model.logit_scale.detach().exp()) if hasattr(model, "logit_scale") else None
    return Encoder(model, _hf_embed_image, pre, spec=str(spec), weights=label, embed_text=embed_text,
                   logit_scale=scale)


# --- timm ----------------------------------------------------------------------------------------


def _load_timm(spec: ModelSpec) -> Encoder:
    import timm
    import timm.data

    seed = parse_random_seed(spec.weights)
    name, weights = spec.name, spec.weights
    if seed is not None:
        if name.startswith("hf-hub:"):
            raise ModelError(f"{spec}: @random needs a timm architecture name, not an hf-hub: repo")
        with _seeded(seed):
            model = _call_loader(spec, lambda: timm.create_model(name, pretrained=False, num_classes=0))
        label = f"random:{seed}"
    elif weights and weights.startswith("local:"):
        path = Path(weights.removeprefix("local:")).expanduser().resolve()
        if not path.is_file():
            raise ModelError(f"{spec}: weights file {path} does not exist")
        model = _call_loader(spec, lambda: timm.create_model(name, pretrained=True, num_classes=0,
                                                             pretrained_cfg_overlay={"file": str(path)}))
        label = f"local:{path}"
    elif weights is None:
        base = name.removeprefix("hf-hub:").split(".")[0]
        if not name.startswith("hf-hub:") and not timm.list_models(base):
            raise ModelError(f"{spec}: unknown timm architecture {base!r} (see timm.list_models('vit_*'))")
        model = _call_loader(spec, lambda: timm.create_model(name, pretrained=True, num_classes=0))
        hub_id = model.pretrained_cfg.get("hf_hub_id") or name
        label = f"pretrained:{hub_id}"
    else:
        raise ModelError(f"{spec}: timm weights are chosen by the name's tag (name.tag); "
                         "'@' takes only random[:SEED] or local:PATH")
    cfg = timm.data.resolve_model_data_config(model)
    size = tuple(cfg["input_size"][-2:])
    crop_pct = cfg.get("crop_pct", 1.0) or 1.0
    pre = Preprocess(size=size, resize_shorter=math.floor(min(size) / crop_pct), mean=tuple(cfg["mean"]),
                     std=tuple(cfg["std"]), interpolation=cfg.get("interpolation", "bicubic")
                     if cfg.get("interpolation") in INTERPOLATIONS else "bicubic")
    return Encoder(model, lambda m, x: m(x), pre, spec=str(spec), weights=label)


LOADERS = {"openclip": _load_openclip, "hf": _load_hf, "timm": _load_timm}


def load_encoder(spec: str, device: str | torch.device | None = "cpu", dtype: str = "float32") -> Encoder:
    """Resolve a model spec (or preset name) to an Encoder on `device`.

    dtype `bfloat16` runs forward passes under autocast while inputs and their gradients stay float32.
    """
    if dtype not in DTYPES:
        raise ProbeError(f"dtype {dtype!r} is not supported (use float32 or bfloat16)")
    dev = resolve_device(device)
    parsed = parse_spec(spec)
    encoder = LOADERS[parsed.backend](parsed)
    encoder.compute_dtype = DTYPES[dtype]
    return encoder.to(dev)


def weights_status(spec: str) -> str:
    """Whether a spec's weights are on this machine, without downloading anything."""
    parsed = parse_spec(spec)
    if parse_random_seed(parsed.weights) is not None:
        return "random init (always available)"
    if parsed.backend == "openclip" and parsed.name.startswith("local-dir:"):
        folder = Path(parsed.name.removeprefix("local-dir:"))
        return "local folder present" if (folder / "open_clip_config.json").is_file() else "local folder missing"
    if parsed.backend == "openclip" and not parsed.name.startswith("hf-hub:"):
        import open_clip
        from huggingface_hub import try_to_load_from_cache

        cfg = open_clip.get_pretrained_cfg(parsed.name, parsed.weights or "")
        repo = (cfg or {}).get("hf_hub", "").strip("/")
        files = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
        if repo and any(isinstance(try_to_load_from_cache(repo, f), str) for f in files):
            return f"in the local Hugging Face cache ({repo})"
        return f"not downloaded ({repo or 'no hub repo'}): needs the Hugging Face Hub once"
    return "unknown until loaded (downloaded from the Hub on first use)"
