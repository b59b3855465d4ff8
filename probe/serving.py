"""What a server around the experiments needs, kept out of the UI so it is tested without one: the app's
settings (`space_config.yml`), a bounded model cache limited to an allowlist, checks on uploads and
parameters, a runner that streams an experiment's progress from a worker thread under a time cap and
stops it when the client goes away, and a temporary workspace that cleans itself.

`app.py` wires these to Gradio widgets; every computation is still one `probe.experiments` call.
"""
from __future__ import annotations

import atexit
import os
import queue
import shutil
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from probe.errors import ProbeError

CONFIG_FILE = Path(__file__).resolve().parents[1] / "space_config.yml"
HARDWARE = ("cpu", "gpu")


# --- settings --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    max_steps: int
    max_budget: float
    max_upload_bytes: int
    max_upload_pixels: int
    max_pixels: int            # matching at source resolution scales larger images down to this
    max_images: int            # images per request (equivalence, classify)
    time_cap_seconds: float
    concurrent_jobs: int
    queue_size: int


@dataclass(frozen=True)
class AppConfig:
    """The app's settings for one kind of hardware (`cpu` or `gpu`)."""

    models: dict[str, str]          # display name -> model spec: the allowlist
    default_model: str              # a display name
    offline_model: str              # the display name used when the default's weights cannot be had
    default_steps: int
    limits: Limits
    labels: dict[str, list[str]]    # display name -> default class names for zero-shot views
    default_labels: list[str]
    hardware: str
    examples: list[dict] = field(default_factory=list)

    def spec(self, model: str) -> str:
        """The spec of an allowlisted model, given by display name or by its spec; anything else is refused."""
        if model in self.models:
            return self.models[model]
        if model in self.models.values():
            return model
        raise ProbeError(f"model {model!r} is not offered here; choose one of: {', '.join(self.models)}")

    def name(self, model: str) -> str:
        spec = self.spec(model)
        return next(name for name, value in self.models.items() if value == spec)

    def labels_for(self, model: str) -> list[str]:
        return self.labels.get(self.name(model), self.default_labels)


def detect_hardware() -> str:
    """`gpu` on ZeroGPU or with CUDA, else `cpu`."""
    if os.environ.get("SPACES_ZERO_GPU"):
        return "gpu"
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def load_config(path: str | Path = CONFIG_FILE, hardware: str | None = None) -> AppConfig:
    """Read `space_config.yml` for `hardware` (default: detected), with clear errors for a bad file."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ProbeError(f"{path}: cannot read the app settings ({err})") from err
    hardware = hardware or detect_hardware()
    if hardware not in HARDWARE:
        raise ProbeError(f"hardware must be one of {HARDWARE}, got {hardware!r}")

    def pick(value):
        return value[hardware] if isinstance(value, dict) and hardware in value else value

    try:
        models = {str(k): str(v) for k, v in raw["models"].items()}
        limits = Limits(**{k: pick(v) for k, v in raw["limits"].items()})
        config = AppConfig(models=models, default_model=pick(raw["default_model"]),
                           offline_model=raw["offline_model"], default_steps=int(pick(raw["default_steps"])),
                           limits=limits, labels={str(k): list(v) for k, v in raw.get("labels", {}).items()},
                           default_labels=list(raw["default_labels"]), hardware=hardware,
                           examples=list(raw.get("examples", [])))
    except (KeyError, TypeError) as err:
        raise ProbeError(f"{path}: missing or malformed setting {err}") from err
    for name in (config.default_model, config.offline_model, *config.labels):
        if name not in models:
            raise ProbeError(f"{path}: {name!r} is not in the models allowlist")
    if not 1 <= config.default_steps <= limits.max_steps:
        raise ProbeError(f"{path}: default_steps {config.default_steps} is outside [1, max_steps]")
    return config


def hub_repos(spec: str) -> list[str]:
    """The Hugging Face repos a spec downloads from (for the Space's `models:` and `preload_from_hub:`)."""
    import open_clip

    from probe.models import needs_hub, parse_spec

    parsed = parse_spec(spec)
    if not needs_hub(parsed):
        return []
    if parsed.backend == "openclip" and parsed.name.startswith("hf-hub:"):
        return [parsed.name.removeprefix("hf-hub:")]
    if parsed.backend == "openclip":
        cfg = open_clip.get_pretrained_cfg(parsed.name, parsed.weights or "")
        return [cfg["hf_hub"].strip("/")] if cfg.get("hf_hub") else []
    return [parsed.name]


def weights_available(spec: str) -> bool:
    """Whether a spec loads without the Hub: random init, local folders, or weights already in the cache."""
    from probe.models import hub_reachable, needs_hub, parse_spec, weights_status

    return not needs_hub(parse_spec(spec)) or "cache" in weights_status(spec) or hub_reachable()


# --- models ----------------------------------------------------------------------------------------


class ModelCache:
    """At most `size` encoders in memory, least recently used dropped first; loads are serialised."""

    def __init__(self, size: int, device: str = "cpu", loader: Callable | None = None):
        from probe.models import load_encoder

        self.size, self.device = max(1, size), device
        self.loader = loader or (lambda spec: load_encoder(spec, device=self.device))
        self.models: OrderedDict[str, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, spec: str):
        with self.lock:
            if spec in self.models:
                self.models.move_to_end(spec)
                return self.models[spec]
            encoder = self.loader(spec)
            self.models[spec] = encoder
            while len(self.models) > self.size:
                self.models.popitem(last=False)
            return encoder


def exact_jacobian_seconds(encoder, image) -> float:
    """A rough cost of the exact Jacobian at `image`: one timed forward + backward pass times the embedding size
    (the VJPs are batched, so this overestimates); the app picks the matrix-free method when it is too slow."""
    import torch

    from probe.experiments import as_pixels

    pixels = encoder.to_model_input(as_pixels(image)[None].to(encoder.device)).detach().requires_grad_(True)
    start = time.perf_counter()
    embedding = encoder(pixels)
    embedding.sum().backward()
    if encoder.device.type == "cuda":
        torch.cuda.synchronize(encoder.device)
    return (time.perf_counter() - start) * embedding.shape[1]


# --- checks on what a request sends -------------------------------------------------------------


def check_image(path: str | Path | None, limits: Limits, what: str = "image"):
    """An uploaded image file -> (PIL image, notes). Refuses missing, empty, non-image, damaged and too large
    (bytes or pixels, read from the header before decoding) files with a message naming the problem;
    animated images give their first frame."""
    from PIL import Image, UnidentifiedImageError

    from probe.images import open_pil

    if path is None or str(path) == "":
        raise ProbeError(f"{what}: no image given")
    path = Path(path)
    what = f"{what} ({path.name})"
    if not path.is_file():
        raise ProbeError(f"{what}: the upload did not arrive (no file)")
    size = path.stat().st_size
    if size > limits.max_upload_bytes:
        raise ProbeError(f"{what}: the file is {size / 2**20:.1f} MiB; the limit here is "
                         f"{limits.max_upload_bytes / 2**20:.0f} MiB")
    try:
        with Image.open(path) as header:
            width, height = header.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        width = height = 0  # open_pil below gives the clear message
    if width * height > limits.max_upload_pixels:
        raise ProbeError(f"{what}: {width}x{height} pixels is more than the {limits.max_upload_pixels:,} "
                         "allowed here; scale it down first")
    try:
        image = open_pil(path)
    except ProbeError as err:   # name the upload, not the server's copy of it
        raise ProbeError(f"{what}: {str(err).split(': ', 1)[-1]}") from None
    notes = []
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
        image = image.copy()
        notes.append(f"{what}: an animated image; its first frame was used")
    return image, notes


def check_number(value, name: str, low: float, high: float, integer: bool = False):
    """A request parameter in [low, high], or a message naming it."""
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise ProbeError(f"{name} must be a number, got {value!r}") from None
    if integer and float(value) != number:
        raise ProbeError(f"{name} must be a whole number, got {value!r}")
    if not low <= number <= high:
        raise ProbeError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return number


def parse_labels(text: str | None, default: list[str]) -> list[str]:
    labels = [part.strip() for part in (text or "").split(",") if part.strip()]
    labels = labels or list(default)
    if len(labels) < 2:
        raise ProbeError(f"give at least 2 comma-separated class names, got {text!r}")
    if len(labels) > 100:
        raise ProbeError(f"at most 100 class names, got {len(labels)}")
    return labels


# --- running an experiment with progress, a time cap and cancellation ---------------------------


WORKER_NAME = "probe-experiment"


@dataclass
class Update:
    """One report from a running experiment: its progress so far, and the result once it is done."""

    stage: str
    done: int
    total: int
    history: list[dict]           # one row per progress report with metrics: {"step", **metrics}
    result: Any = None
    timed_out: bool = False


def stream(call: Callable[[Callable], Any], time_cap: float, every: float = 0.5) -> Iterator[Update]:
    """Run `call(progress)` in a worker thread; yield an Update at most every `every` seconds and a last one
    with the result. Past `time_cap` seconds the progress callback asks the call to stop (its partial result
    comes back, `timed_out` set). Closing the iterator (the client went away, or pressed Stop) stops the call
    at its next step; an exception in the call is raised here."""
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    deadline = time.monotonic() + time_cap
    timed_out = threading.Event()

    def progress(stage, done, total, metrics):
        events.put(("progress", stage, done, total, dict(metrics)))
        if time.monotonic() > deadline:
            timed_out.set()
        return not (stop.is_set() or timed_out.is_set())

    def work():
        try:
            events.put(("done", call(progress)))
        except BaseException as err:  # handed to the consumer, who raises it
            events.put(("error", err))

    worker = threading.Thread(target=work, daemon=True, name=WORKER_NAME)
    worker.start()
    history: list[dict] = []
    stage, done, total = "starting", 0, 0
    last = 0.0
    try:
        while True:
            try:
                event = events.get(timeout=every)
            except queue.Empty:
                yield Update(stage, done, total, list(history))
                continue
            if event[0] == "error":
                raise event[1]
            if event[0] == "done":
                yield Update(stage, done, total, list(history), result=event[1], timed_out=timed_out.is_set())
                return
            _, stage, done, total, metrics = event
            if metrics:
                history.append({"stage": stage, "step": done, **metrics})
            if time.monotonic() - last >= every:
                last = time.monotonic()
                yield Update(stage, done, total, list(history))
    finally:
        stop.set()


# --- a workspace that cleans itself ---------------------------------------------------------------


class Workspace:
    """A private temporary folder for the app's files: one subfolder per request, folders older than
    `max_age` seconds removed as new ones are made, the whole folder removed at exit."""

    def __init__(self, root: str | Path | None = None, max_age: float = 3600.0):
        self.root = Path(root or tempfile.mkdtemp(prefix="probe-app-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age = max_age
        atexit.register(shutil.rmtree, self.root, ignore_errors=True)

    def new(self, kind: str) -> Path:
        self.clean()
        return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=self.root))

    def clean(self) -> None:
        cutoff = time.time() - self.max_age
        for child in self.root.iterdir():
            if child.is_dir() and child.name != "gradio" and child.stat().st_mtime < cutoff:
                shutil.rmtree(child, ignore_errors=True)


def bundle(folder: Path, name: str = "results.zip") -> Path:
    """Everything in `folder` (PNGs, JSON, CSV) as one zip beside it, for a single download."""
    target = folder.parent / f"{folder.name}-{name}"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder))
    return target
