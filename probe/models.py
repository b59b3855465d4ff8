"""Model spec string -> Encoder: [0,1] RGB pixels in, embeddings out, preprocessing done differentiably inside.

One entry point, `load_encoder(spec)`, like open_clip's factory. A spec is `BACKEND:NAME[@WEIGHTS]`:

    openclip:ViT-B-32@laion2b_s34b_b79k        built-in architecture with a pretrained tag
    openclip:ViT-B-32@random                   same architecture, seeded random weights (`@random:7`)
    openclip:hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K
    openclip:local-dir:/path/to/folder         a folder in OpenCLIP's Hub layout
    hf:facebook/dinov2-small[@REVISION|@random]   Hugging Face transformers (repo id or local folder)
    timm:vit_small_patch16_224.augreg_in21k[@random|@local:/path/weights.safetensors]

or a preset name (`presets()`: e.g. `clip-b32`, `vit-h-14`; plug-ins add theirs with `register_model`, as the
mini-CLIP of `probe.toy` does). `ENCODERS` keeps the last few loaded encoders for the CLI, the app and `repro`.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import socket
import threading
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from probe import plugins
from probe.errors import ModelError, ProbeError
from probe.images import from_pil, quantize, to_pil

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_DIR = PACKAGE_DIR / "configs"


@dataclass(frozen=True)
class Preset:
    """A named model: its spec, a line on what it is, its own defaults per matching mode (e.g. the steps a
    visitor's match gets), and whether it is the offline default."""

    spec: str
    about: str
    defaults: dict = field(default_factory=dict)   # mode -> {setting: value}, checked by probe.matching
    offline_default: bool = False


PRESETS: dict[str, Preset] = {
    "vit-h-14": Preset("openclip:ViT-H-14@laion2b_s32b_b79k",
                       "the paper's model: OpenCLIP ViT-H-14, ImageBind-huge's frozen image encoder"),
    "clip-b32": Preset("openclip:ViT-B-32-quickgelu@openai",
                       "CLIP ViT-B/32 (OpenAI weights, with the QuickGELU they were trained with), the paper's "
                       "alternative"),
    "clip-l14": Preset("openclip:ViT-L-14-quickgelu@openai",
                       "CLIP ViT-L/14 (OpenAI weights, with the QuickGELU they were trained with), the paper's "
                       "alternative"),
    "tiny": Preset("openclip:probe-tiny-vit@random", "2-layer random-init ViT for tests (no meaning)"),
}

BACKENDS = ("openclip", "hf", "timm")


def register_model(name: str, spec: str, about: str, defaults: dict | None = None,
                   offline_default: bool = False) -> None:
    """Add a named model (a plug-in's: `probe.plugins`); `defaults` maps a matching mode to its settings."""
    PRESETS[name] = Preset(spec, about, dict(defaults or {}), offline_default)


def presets() -> dict[str, Preset]:
    """Every named model, the plug-ins' included."""
    plugins.load()
    return PRESETS


def default_spec() -> str:
    """The offline default model: the one a plug-in marks so (the shipped mini-CLIP), else the random-init
    `tiny`."""
    return next((name for name, p in presets().items() if p.offline_default), "tiny")


def defaults_for(spec: str, mode: str) -> dict:
    """A named model's own settings for a matching mode (`spec` a preset name, with or without @sha256:...)."""
    base = PINNED_SUFFIX.sub("", spec.strip())
    preset = presets().get(base)
    return dict(preset.defaults.get(mode, {})) if preset else {}


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


RANDOM_SUFFIX = re.compile(r"@(random(?::\d+)?)$")


def parse_spec(spec: str) -> ModelSpec:
    """`BACKEND:NAME[@WEIGHTS]`, a preset name, or a preset with `@random[:SEED]` (its architecture with random
    weights, e.g. `mini-clip@random`) -> ModelSpec."""
    spec = spec.strip()
    random_suffix = RANDOM_SUFFIX.search(spec)
    base = spec[:random_suffix.start()] if random_suffix else spec
    if base in presets():
        spec = PRESETS[base].spec
        if random_suffix:  # the preset's architecture: drop its weights tag (a folder's path has none)
            if not spec.startswith("openclip:local-dir:"):
                spec = spec.rsplit("@", 1)[0]
            spec += random_suffix.group(0)
    backend, sep, rest = spec.partition(":")
    if not sep or backend not in BACKENDS:
        raise ModelError(f"model spec {spec!r}: expected BACKEND:NAME[@WEIGHTS] with BACKEND one of "
                         f"{', '.join(BACKENDS)}, or a preset ({', '.join(presets())})")
    name, weights = rest, None
    if rest.startswith("local-dir:"):  # paths may hold '@': only a trailing @random[:SEED] is split off
        suffix = RANDOM_SUFFIX.search(rest)
        if suffix:
            name, weights = rest[:suffix.start()], suffix.group(1)
    elif "@" in rest:
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
    holds (`weights`: `pretrained:...`, `random:<seed>`, `local:<folder>`, `mini-clip@sha256:<12 hex>`) and
    their fingerprint (`weights_sha256`), so every output can say so without naming a path of this machine.
    """

    def __init__(self, model: torch.nn.Module, embed_image: Callable, preprocess: Preprocess, spec: str,
                 weights: str, embed_text: Callable | None = None, logit_scale: float | None = None,
                 reference_transform: Callable | None = None, reference_name: str | None = None,
                 weight_files: Sequence[Path] = ()):
        super().__init__()
        self.weight_files = tuple(Path(p) for p in weight_files)
        self._weights_sha256: str | None = None
        self.model = model.eval().requires_grad_(False)
        self._embed_image = embed_image
        self._embed_text = embed_text
        self.reference_transform = reference_transform
        self.reference_name = reference_name or (
            "probe's differentiable preprocessing of the 8-bit image (the model has no PIL transform of its own)")
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
    def weights_sha256(self) -> str:
        """The one fingerprint of the weights: sha256 of the weight file(s) the model was loaded from, or of its
        parameters where there is no file (random init). Computed once, on first use."""
        if self._weights_sha256 is None:
            self._weights_sha256 = (files_sha256(self.weight_files) if self.weight_files
                                    else parameters_sha256(self.model))
        return self._weights_sha256

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

    def reference_input(self, images) -> torch.Tensor:
        """The model's own preprocessing, as the authors' code fed the model: PIL images (as opened) or [0,1]
        images (N,3,H,W, or a list of (3,H,W) of any sizes, first made 8-bit PIL images, as a saved file would
        be) -> normalised model input (N,3,h,w). Not differentiable; `reference_name` says what ran."""
        items = list(images) if not torch.is_tensor(images) else list(images if images.dim() == 4 else images[None])
        out = []
        for item in items:
            if self.reference_transform is None:
                pixels = item if torch.is_tensor(item) else from_pil(item)
                out.append(self.preprocess(quantize(pixels)[None].to(self.device).float())[0])
                continue
            pil = item if isinstance(item, Image.Image) else to_pil(item)
            out.append(self.reference_transform(pil).to(self.device, torch.float32))
        if not out:
            raise ProbeError("no images given")
        return torch.stack(out)

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
        return {"model": self.spec, "weights": self.weights, "weights_sha256": self.weights_sha256,
                "weights_sha256_of": "file" if self.weight_files else "parameters", "input_size": list(self.input_size),
                "mean": list(self.pre.mean), "std": list(self.pre.std),
                "interpolation": self.pre.interpolation, "resize_shorter": self.pre.resize_shorter,
                "reference_preprocessing": self.reference_name, "has_text": self.has_text, "device": str(self.device),
                "compute_dtype": str(self.compute_dtype).removeprefix("torch.")}


def _transform_name(library: str, transform) -> str:
    steps = getattr(transform, "transforms", [transform])
    return f"{library} (PIL): " + ", ".join(_step_name(t) for t in steps)


def _step_name(step) -> str:
    name = type(step).__name__
    size = getattr(step, "size", None)
    mode = getattr(step, "interpolation", None)
    details = [str(size)] if size is not None else []
    if mode is not None:
        details.append(str(getattr(mode, "value", mode)))
    return f"{name}({', '.join(details)})" if details else name


@contextlib.contextmanager
def _quiet_logging():
    """Hush a library's INFO/WARNING chatter (e.g. "model initialized randomly") for the duration."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


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


def files_sha256(paths: Sequence[Path]) -> str:
    """sha256 over the bytes of the files, in order (one file: the sha256 the Hub shows for it)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 23):
                digest.update(chunk)
    return digest.hexdigest()


def parameters_sha256(module: torch.nn.Module) -> str:
    """sha256 over a module's parameters and buffers (names, shapes, dtypes, values), for weights with no file."""
    digest = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{name} {tuple(tensor.shape)} {tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def shown_path(path: str | Path) -> str:
    """A user's folder or file as outputs name it: relative to the working directory, else to the home folder
    (`~/...`), else as given; never resolved to an absolute path that names this machine's layout."""
    path = Path(path).expanduser()
    absolute = path.resolve()
    for base, prefix in ((Path.cwd().resolve(), ""), (Path.home().resolve(), "~/")):
        if absolute == base:
            return prefix.rstrip("/") or "."
        if absolute.is_relative_to(base):
            return prefix + str(absolute.relative_to(base))
    return str(path)


def _first_file(folder: Path, names: Sequence[str]) -> list[Path]:
    """The first of `names` present in `folder` (a sharded `*.index.json` expands to its shards)."""
    for name in names:
        path = folder / name
        if path.is_file():
            if name.endswith(".index.json"):
                shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
                return [folder / shard for shard in shards]
            return [path]
    return []


def _cached_hub_files(repo: str, names: Sequence[str], revision: str | None = None) -> list[Path]:
    """The first of `names` of a Hub repo that is in the local Hugging Face cache (after a load put it there)."""
    from huggingface_hub import try_to_load_from_cache

    for name in names:
        found = try_to_load_from_cache(repo, name, revision=revision)
        if isinstance(found, str):
            return _first_file(Path(found).parent, [name])
    return []


OPENCLIP_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                   "pytorch_model.bin.index.json")


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
    files: list[Path] = []
    if name.startswith(("hf-hub:", "local-dir:")):
        if weights is not None and seed is None:
            raise ModelError(f"{spec}: '@{weights}' is not supported for {name.split(':')[0]} models; "
                             "their weights come with the repo or folder (or '@random[:SEED]' for its "
                             "architecture with random weights)")
        if name.startswith("local-dir:"):
            folder = Path(name.removeprefix("local-dir:")).expanduser()
            if not (folder / "open_clip_config.json").is_file():
                raise ModelError(f"{spec}: {folder} is not a folder in OpenCLIP's Hub layout "
                                 "(open_clip_config.json + open_clip_model.safetensors)")
            name = f"local-dir:{folder.resolve()}"
            label = f"local:{shown_path(folder)}"
            spec = ModelSpec(spec.backend, f"local-dir:{shown_path(folder)}", spec.weights)
            files = _first_file(folder, OPENCLIP_WEIGHT_FILES)
        else:
            from huggingface_hub import hf_hub_download

            repo = name.removeprefix("hf-hub:")
            config_path = _call_loader(spec, lambda: hf_hub_download(repo, "open_clip_config.json"))
            label = f"pretrained:{repo}@{_hub_revision(config_path)}"
        if seed is None:
            model = _call_loader(spec, lambda: open_clip.create_model(name))
            if name.startswith("hf-hub:"):
                files = _cached_hub_files(name.removeprefix("hf-hub:"), OPENCLIP_WEIGHT_FILES)
        else:
            files = []
            with _seeded(seed), _quiet_logging():
                model = _call_loader(spec, lambda: open_clip.create_model(name, load_weights=False))
            label = f"random:{seed} (architecture of {label})"
    else:
        if name not in open_clip.list_models():
            raise ModelError(f"{spec}: unknown OpenCLIP architecture {name!r} "
                             f"(e.g. ViT-B-32, ViT-L-14, ViT-H-14; see open_clip.list_models())")
        if weights is None:
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
            raise ModelError(f"{spec}: say which weights: @TAG (one of: {tags}) or @random")
        if seed is not None:
            with _seeded(seed), _quiet_logging():
                model = open_clip.create_model(name, pretrained=None)
            label = f"random:{seed}"
        else:
            cfg = open_clip.get_pretrained_cfg(name, weights)
            if not cfg:
                tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
                raise ModelError(f"{spec}: unknown pretrained tag {weights!r} for {name} (known: {tags})")
            path = _call_loader(spec, lambda: open_clip.download_pretrained(cfg))
            # weights trained with QuickGELU (OpenAI's) run with it even under the plain architecture name;
            # open_clip itself would only warn and run them with the wrong activation
            quick = bool(cfg.get("quick_gelu")) and not open_clip.get_model_config(name).get("quick_gelu")
            model = _call_loader(spec, lambda: open_clip.create_model(name, pretrained=weights,
                                                                      force_quick_gelu=quick))
            repo = cfg.get("hf_hub", "").strip("/")
            revision = _hub_revision(path)
            label = f"pretrained:{weights}" + (f" ({repo}@{revision})" if repo else "") + (
                " with QuickGELU forced, as trained" if quick else "")
            files = [Path(path)]
    pcfg = model.visual.preprocess_cfg
    transform = open_clip.transform.image_transform_v2(open_clip.transform.PreprocessCfg(**pcfg), is_train=False)
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
                   embed_text=embed_text, logit_scale=None if scale is None else float(scale.detach().exp()),
                   reference_transform=transform, reference_name=_transform_name("open_clip's preprocess", transform),
                   weight_files=files)


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
    folder = Path(spec.name).expanduser()
    shown = ModelSpec(spec.backend, shown_path(folder), spec.weights) if folder.is_dir() else spec
    files: list[Path] = []
    if seed is not None:
        with _seeded(seed):
            model = transformers.AutoModel.from_config(config)
        label = f"random:{seed}"
    else:
        model = _call_loader(spec, lambda: transformers.AutoModel.from_pretrained(spec.name, revision=revision))
        if folder.is_dir():
            label = f"local:{shown_path(folder)}"
            files = _first_file(folder, HF_WEIGHT_FILES)
        else:
            config_path = _call_loader(spec, lambda: _hf_file(spec.name, "config.json", revision))
            label = f"pretrained:{spec.name}@{_hub_revision(config_path) or revision or 'main'}"
            files = _cached_hub_files(spec.name, HF_WEIGHT_FILES, revision)
    processor_path = _call_loader(spec, lambda: _hf_file(spec.name, "preprocessor_config.json", revision))
    pre = _hf_preprocess(json.loads(processor_path.read_text()))
    processor = _call_loader(spec, lambda: transformers.AutoImageProcessor.from_pretrained(spec.name,
                                                                                          revision=revision))

    def transform(image):
        return processor(images=image, return_tensors="pt")["pixel_values"][0]
    embed_text, scale = None, None
    if hasattr(model, "get_text_features"):
        tokenizer = _call_loader(spec, lambda: transformers.AutoTokenizer.from_pretrained(spec.name,
                                                                                          revision=revision))

        def embed_text(m, texts, device):
            tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(device)
            out = m.get_text_features(**tokens)
            return out if torch.is_tensor(out) else out.pooler_output

        scale = float(model.logit_scale.detach().exp()) if hasattr(model, "logit_scale") else None
    return Encoder(model, _hf_embed_image, pre, spec=str(shown), weights=label, embed_text=embed_text,
                   logit_scale=scale, reference_transform=transform,
                   reference_name=f"the transformers image processor ({type(processor).__name__})",
                   weight_files=files)


# --- timm ----------------------------------------------------------------------------------------


def _load_timm(spec: ModelSpec) -> Encoder:
    import timm
    import timm.data

    seed = parse_random_seed(spec.weights)
    name, weights = spec.name, spec.weights
    files: list[Path] = []
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
        label = f"local:{shown_path(path)}"
        spec = ModelSpec(spec.backend, name, label)
        files = [path]
    elif weights is None:
        base = name.removeprefix("hf-hub:").split(".")[0]
        if not name.startswith("hf-hub:") and not timm.list_models(base):
            raise ModelError(f"{spec}: unknown timm architecture {base!r} (see timm.list_models('vit_*'))")
        model = _call_loader(spec, lambda: timm.create_model(name, pretrained=True, num_classes=0))
        hub_id = model.pretrained_cfg.get("hf_hub_id") or name
        label = f"pretrained:{hub_id}"
        files = _cached_hub_files(hub_id.removeprefix("hf-hub:"), ("model.safetensors", "pytorch_model.bin"))
    else:
        raise ModelError(f"{spec}: timm weights are chosen by the name's tag (name.tag); "
                         "'@' takes only random[:SEED] or local:PATH")
    cfg = timm.data.resolve_model_data_config(model)
    size = tuple(cfg["input_size"][-2:])
    crop_pct = cfg.get("crop_pct", 1.0) or 1.0
    pre = Preprocess(size=size, resize_shorter=math.floor(min(size) / crop_pct), mean=tuple(cfg["mean"]),
                     std=tuple(cfg["std"]), interpolation=cfg.get("interpolation", "bicubic")
                     if cfg.get("interpolation") in INTERPOLATIONS else "bicubic")
    transform = timm.data.create_transform(**cfg, is_training=False)
    return Encoder(model, lambda m, x: m(x), pre, spec=str(spec), weights=label, reference_transform=transform,
                   reference_name=_transform_name("timm's eval transform", transform), weight_files=files)


LOADERS = {"openclip": _load_openclip, "hf": _load_hf, "timm": _load_timm}

# --- reaching the Hub ----------------------------------------------------------------------------

HUB_CHECK_SECONDS = 3.0
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def needs_hub(spec: ModelSpec) -> bool:
    """Whether loading `spec` may download from the Hugging Face Hub (random init and local files do not)."""
    random_init = parse_random_seed(spec.weights) is not None
    if spec.backend == "openclip":
        return not random_init and not spec.name.startswith("local-dir:")
    if spec.backend == "hf":
        return not Path(spec.name).expanduser().is_dir()
    return not random_init and not (spec.weights or "").startswith("local:")


def hub_reachable(timeout: float = HUB_CHECK_SECONDS) -> bool:
    """Whether the Hub endpoint accepts a TCP connection within `timeout` seconds (name lookup included).
    Behind a proxy the libraries know better: assume reachable."""
    from huggingface_hub import constants

    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return True
    url = urllib.parse.urlparse(constants.ENDPOINT)
    address = (url.hostname, url.port or (443 if url.scheme == "https" else 80))
    answer: list[bool] = []

    def attempt():
        try:
            socket.create_connection(address, timeout=timeout).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])


@contextlib.contextmanager
def hub_offline():
    """Load from the local Hugging Face cache only (as HF_HUB_OFFLINE=1 does), for the duration."""
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def _go_offline(spec: ModelSpec) -> bool:
    """Offline mode when the Hub cannot be reached, so a missing download fails at once instead of after a
    minute of retries, while weights already in the cache still load."""
    from huggingface_hub import constants

    return needs_hub(spec) and not constants.is_offline_mode() and not hub_reachable()


def load_encoder(spec: str, device: str | torch.device | None = "cpu", dtype: str = "float32") -> Encoder:
    """Resolve a model spec (or preset name) to an Encoder on `device`.

    dtype `bfloat16` runs forward passes under autocast while inputs and their gradients stay float32.
    """
    if dtype not in DTYPES:
        raise ProbeError(f"dtype {dtype!r} is not supported (use float32 or bfloat16)")
    dev = resolve_device(device)
    pinned = PINNED_SUFFIX.search(spec.strip())
    parsed = parse_spec(spec.strip()[:pinned.start()] if pinned else spec)
    offline = _go_offline(parsed)
    with hub_offline() if offline else contextlib.nullcontext():
        try:
            encoder = LOADERS[parsed.backend](parsed)
        except ModelError as err:
            if not offline:
                raise
            raise ModelError(f"{err} (the Hugging Face Hub did not answer within {HUB_CHECK_SECONDS:g} s, so "
                             "only the local cache was tried)") from err
    _name_packaged(encoder, parsed)
    if pinned and not encoder.weights_sha256.startswith(pinned.group(1).lower()):
        raise ModelError(f"{spec}: the weights here have sha256 {encoder.weights_sha256[:12]}, not "
                         f"{pinned.group(1)}: another version of them is installed")
    encoder.compute_dtype = DTYPES[dtype]
    return encoder.to(dev)


PINNED_SUFFIX = re.compile(r"@sha256:([0-9a-fA-F]{6,64})$")


def packaged_preset(parsed: ModelSpec) -> str | None:
    """The preset whose weights ship inside this package and that `parsed` loads (by name or by folder)."""
    if parsed.backend != "openclip" or not parsed.name.startswith("local-dir:"):
        return None
    folder = Path(parsed.name.removeprefix("local-dir:")).expanduser().resolve()
    for name, preset in presets().items():
        if preset.spec == f"openclip:local-dir:{folder}" and folder.is_relative_to(PACKAGE_DIR):
            return name
    return None


def _name_packaged(encoder: Encoder, parsed: ModelSpec) -> None:
    """Weights that ship with the package are named by a stable id, the same on every install:
    `mini-clip@sha256:<first 12 hex>` (`mini-clip@random:0` for its architecture with random weights)."""
    name = packaged_preset(parsed)
    if name is None:
        return
    seed = parse_random_seed(parsed.weights)
    if seed is None:
        encoder.spec = encoder.weights = f"{name}@sha256:{encoder.weights_sha256[:12]}"
    else:
        encoder.spec, encoder.weights = f"{name}@random:{seed}", f"random:{seed} (architecture of {name})"


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


def _local_stamp(spec: str) -> tuple:
    """What a spec names now (a preset may be re-registered) and, for weights on this disk, each file's size and
    modification time: a cached encoder is reused only while both are unchanged."""
    try:
        parsed = parse_spec(PINNED_SUFFIX.sub("", spec.strip()))
    except ModelError:
        return (spec,)
    path = None
    if parsed.backend == "openclip" and parsed.name.startswith("local-dir:"):
        path = Path(parsed.name.removeprefix("local-dir:")).expanduser()
    elif parsed.backend == "hf" and Path(parsed.name).expanduser().is_dir():
        path = Path(parsed.name).expanduser()
    elif parsed.backend == "timm" and (parsed.weights or "").startswith("local:"):
        path = Path(parsed.weights.removeprefix("local:")).expanduser()
    files = sorted(path.iterdir()) if path is not None and path.is_dir() else [path] if path is not None else []
    return (str(parsed), *((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file()))


class EncoderCache:
    """The last `size` encoders loaded (by spec, device and dtype), least recently used dropped first; loads are
    serialised. The one cache the CLI, the app and `repro` keep models in (`ENCODERS`)."""

    def __init__(self, size: int = 4, loader: Callable | None = None):
        self.size = max(1, size)
        self.loader = loader or load_encoder
        self.encoders: OrderedDict[tuple, Encoder] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, spec: str, device: str | torch.device | None = "cpu", dtype: str = "float32") -> Encoder:
        key = (spec, str(device), dtype, _local_stamp(spec))
        with self.lock:
            if key in self.encoders:
                self.encoders.move_to_end(key)
                return self.encoders[key]
            encoder = self.loader(spec, device=device, dtype=dtype)
            self.encoders[key] = encoder
            while len(self.encoders) > self.size:
                self.encoders.popitem(last=False)
            return encoder


ENCODERS = EncoderCache()
