"""What a server around the experiments needs, kept out of the UI so it is tested without one: the app's
settings (`space_config.yml`, checked against the settings' declarations), the models it may load (an
allowlist), checks on uploads and on request parameters (derived
from the declarations, with the app's tighter limits), a runner that streams an experiment's progress from a
worker thread under a time cap and stops it when the client goes away, and a temporary workspace that cleans
itself.

`app.py` wires these to Gradio widgets; every computation is still one `probe.experiments` call.
"""
from __future__ import annotations

import atexit
import csv
import json
import os
import queue
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import yaml
from PIL import Image, UnidentifiedImageError

from probe.errors import ProbeError
from probe.images import as_pixels, open_pil
from probe.matching import FastSettings, PaperSettings, Settings, settings_for
from probe.models import EncoderCache, defaults_for, hub_reachable, needs_hub, parse_spec, weights_status
from probe.params import Param, params_of
from probe.readback import survival_lines
from probe.results import SUMMARY_FILE, save
from probe.zeroshot import parse_labels

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
    default_steps: int              # on this hardware, for models without their own (probe.models.defaults_for)
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

    def request_params(self, mode: str = "fast") -> dict[str, Param]:
        """The matching settings a request may set, as declared (`probe.matching`), with this server's limits."""
        params = params_of(FastSettings if mode == "fast" else PaperSettings)
        limits = self.limits
        return {**params, "steps": replace(params["steps"], high=limits.max_steps),
                "budget": replace(params["budget"], high=limits.max_budget)}

    def steps_for(self, model: str, mode: str = "fast") -> int:
        """The steps a request gets when it does not say: the model's own default for the mode where it has one
        (the same in the CLI), else this hardware's."""
        return defaults_for(self.spec(model), mode).get("steps", self.default_steps)

    def match_gpu_seconds(self, model: str, mode: str = "fast", steps=None, survive: bool = False) -> int:
        """ZeroGPU: the seconds a match may hold the GPU (about 0.1 s a step, 0.3 s surviving JPEG and resizing,
        within the time cap). A request the handler will refuse gets the most."""
        try:
            steps = self.steps_for(model, mode) if steps is None else float(steps)
        except (ProbeError, TypeError, ValueError):
            steps = self.limits.max_steps
        return int(min(self.limits.time_cap_seconds, 15 + (0.3 if survive else 0.1) * steps))

    def settings(self, model: str, mode: str, steps, budget, survive=()) -> Settings:
        """A request's matching settings: its values checked against the declarations and this server's limits,
        over the model's own defaults. In paper mode a budget of 0 means none (the authors' procedure); `survive`
        (fast mode only) names the transformations the match is to survive."""
        params = self.request_params(mode)
        values = {"steps": params["steps"].check(steps), "survive": survive or None}
        if mode == "paper":
            budget = replace(params["budget"], low=0.0, open_low=False).check(budget)
            values["budget"] = budget or None
        else:
            values["budget"] = params["budget"].check(budget)
            values["max_pixels"] = self.limits.max_pixels
        return settings_for(mode, defaults_for(self.spec(model), mode), **values)


def detect_hardware() -> str:
    """`gpu` on ZeroGPU or with CUDA, else `cpu`."""
    if os.environ.get("SPACES_ZERO_GPU"):
        return "gpu"
    return "gpu" if torch.cuda.is_available() else "cpu"


def load_config(path: str | Path = CONFIG_FILE, hardware: str | None = None) -> AppConfig:
    """Read `space_config.yml` for `hardware` (default: detected), with clear errors for a bad file; its
    defaults and limits are checked against the settings' declarations."""
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
    declared = params_of(FastSettings)
    for key, param in (("max_steps", declared["steps"]), ("max_budget", declared["budget"]),
                       ("max_pixels", declared["max_pixels"])):
        try:
            param.check(getattr(limits, key))
        except ProbeError as err:
            raise ProbeError(f"{path}: limits.{key}: {err}") from None
    try:
        config.request_params()["steps"].check(config.default_steps)
    except ProbeError as err:
        raise ProbeError(f"{path}: default_steps: {err}") from None
    return config


def hub_repos(spec: str) -> list[str]:
    """The Hugging Face repos a spec downloads from (for the Space's `models:` and `preload_from_hub:`)."""
    import open_clip

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
    return not needs_hub(parse_spec(spec)) or "cache" in weights_status(spec) or hub_reachable()


def exact_jacobian_seconds(encoder, image) -> float:
    """A rough cost of the exact Jacobian at `image`: one timed forward + backward pass times the embedding size
    (the VJPs are batched, so this overestimates); the app picks the matrix-free method when it is too slow."""
    pixels = encoder.to_model_input(as_pixels(image)[None].to(encoder.device)).detach().requires_grad_(True)
    start = time.perf_counter()
    embedding = encoder(pixels)
    embedding.sum().backward()
    if encoder.device.type == "cuda":
        torch.cuda.synchronize(encoder.device)
    return (time.perf_counter() - start) * embedding.shape[1]


# --- checks on what a request sends -------------------------------------------------------------


def byte_size(count: int) -> str:
    """A byte count as people read it: 1.2 MiB, 3.4 KiB, 87 bytes."""
    if count >= 2**20:
        return f"{count / 2**20:.1f} MiB"
    return f"{count / 2**10:.1f} KiB" if count >= 2**10 else f"{count} bytes"


def check_image(path: str | Path | None, limits: Limits, what: str = "image"):
    """An uploaded image file -> (PIL image, notes). Refuses missing, empty, non-image, damaged and too large
    (bytes or pixels, read from the header before decoding) files with a message naming the problem;
    animated images give their first frame."""
    if path is None or str(path) == "":
        raise ProbeError(f"{what}: no image given")
    path = Path(path)
    what = f"{what} ({path.name})"
    if not path.is_file():
        raise ProbeError(f"{what}: the upload did not arrive (no file)")
    size = path.stat().st_size
    if size > limits.max_upload_bytes:
        shown = [byte_size(size), byte_size(limits.max_upload_bytes)]
        if shown[0] == shown[1]:   # too close to tell apart when rounded: exact counts
            shown = [f"{size:,} bytes", f"{limits.max_upload_bytes:,} bytes"]
        raise ProbeError(f"{what}: the file is {shown[0]}; the limit here is {shown[1]}")
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


# --- one server: its models, its requests, what it shows -------------------------------------------


@dataclass
class Uploads:
    """Checked uploads: the pictures, the names results call them by (the file's name, not the server's path to
    it), and notes on what was done to them."""

    pictures: list
    names: list[str]
    notes: list[str]


class Server:
    """What one server holds (its settings, device, models two at a time: large ones take gigabytes, and a
    workspace) and what each view needs besides its experiment call: the request's checks, and the files and
    numbers it shows. No UI here: `app.py` wires these to widgets."""

    def __init__(self, config: AppConfig, device: str, workspace: Workspace | None = None):
        self.config, self.device = config, device
        self.models = EncoderCache(2)
        self.workspace = workspace or Workspace()
        default = config.default_model
        self.default_model = default if weights_available(config.spec(default)) else config.offline_model
        self.fallback = self.default_model != default

    def encoder(self, model: str):
        return self.models.get(self.config.spec(model), device=self.device)

    def labels(self, model: str, text: str | None) -> list[str]:
        """The class names a view reads over: the text's, else the model's defaults; none without a text tower."""
        return parse_labels(text, self.config.labels_for(model)) if self.encoder(model).has_text else []

    def settings(self, model: str, mode: str, steps, budget, survive=()) -> Settings:
        """The request's matching settings (its steps, or the model's default here)."""
        return self.config.settings(model, mode, self.config.steps_for(model, mode) if steps is None else steps,
                                    budget, survive)

    def images(self, paths: list, roles: list[str] | None = None) -> Uploads:
        """Uploaded files checked (`check_image`, each named by its role in its messages)."""
        if len(paths) > self.config.limits.max_images:
            raise ProbeError(f"at most {self.config.limits.max_images} images per request, got {len(paths)}")
        roles = roles or [f"image {i + 1}" for i in range(len(paths))]
        checked = [check_image(p, self.config.limits, role) for p, role in zip(paths, roles)]
        return Uploads([c[0] for c in checked], [Path(str(p)).name for p in paths],
                       [note for c in checked for note in c[1]])

    def saved(self, result, kind: str) -> Path:
        folder = self.workspace.new(kind)
        save(result, folder)
        return folder

    def match_outputs(self, result, uploads: Uploads, timed_out: bool) -> tuple:
        """A finished match: matched PNG, difference, the zero-shot readings, PCA view, zip, summary."""
        notes = uploads.notes + ([f"stopped at the time cap ({self.config.limits.time_cap_seconds:g} s) after "
                                  f"{result.values['steps_run']} steps"] if timed_out else [])
        result.source, result.target = uploads.names
        result.values["notes"] = notes + result.values["notes"]
        folder = self.saved(result, "match")
        view = folder / "pca_bars.png"
        return (str(folder / "matched.png"), str(folder / "diff_x50.png"), result.top("source") or None,
                result.top("matched") or None, str(view) if view.is_file() else None, str(bundle(folder)),
                json.loads((folder / SUMMARY_FILE).read_text()))

    def inspect_outputs(self, result, notes: list[str], method: str) -> tuple:
        """Spectrum and Lipschitz plots, the top directions as images, summary."""
        if result.cancelled:
            raise ProbeError(f"stopped at the time cap ({self.config.limits.time_cap_seconds:g} s); try method topk "
                             "or a smaller k")
        folder = self.saved(result, "inspect")
        k = result.settings["k"]
        directions = [(str(folder / f"direction_{i + 1}.png"), f"v{i + 1}, sigma {float(s):.3g}")
                      for i, s in enumerate(result.spectrum.singular_values[:k])
                      if (folder / f"direction_{i + 1}.png").is_file()]
        return (str(folder / "spectrum.png"), str(folder / "lipschitz_eps.png"), directions,
                result.to_dict() | {"notes": notes, "method_used": method})

    def equivalence_outputs(self, result, sources: list[str], targets: list[str], timed_out: bool) -> tuple:
        """The matched pictures, the vision x text and cosine matrices, zip, summary. `sources`, `targets`: the
        uploads' file names, as the result calls them."""
        pairs = len(result.sources)
        result.sources, result.targets = (sources * pairs)[:pairs], (targets * pairs)[:pairs]
        for pair, source, target in zip(result.pairs, result.sources, result.targets):
            pair.source, pair.target = source, target
        folder = self.saved(result, "equivalence")
        gallery = [(str(folder / f"matched_{i + 1}.png"), f"{i + 1}: {p.source} -> {p.target}, cos "
                    f"{p.values['cos_to_target_png']:.3f}, {p.values['psnr_db_png']:.1f} dB; "
                    + "; ".join(survival_lines(p.values, ("jpeg75",)))) for i, p in enumerate(result.pairs)]
        matrix, cosines = folder / "vision_text_after.png", folder / "cosine_matched.png"
        summary = result.to_dict() | ({"notes": [f"stopped at the time cap after {len(result.pairs)} pairs"]}
                                      if timed_out else {})
        return (gallery, str(matrix) if matrix.is_file() else None, str(cosines) if cosines.is_file() else None,
                str(bundle(folder)), summary)

    def classify_outputs(self, result, names: list[str]) -> tuple:
        result.names = names
        folder = self.saved(result, "classify")
        return str(folder / "classify.png"), result.to_dict()

    def weights_note(self) -> str:
        encoder = self.encoder(self.default_model)
        text = (f"**Model:** {self.default_model} (`{self.config.spec(self.default_model)}`), weights "
                f"`{encoder.weights}`, device `{self.device}`.")
        if self.fallback:
            text += (f" The default ({self.config.default_model}) is not available here: its weights are not in "
                     "the Hugging Face cache and the Hub cannot be reached. To use pretrained CLIPs, run once where "
                     "the Hub is reachable (weights go to the Hugging Face cache, `HF_HOME`), or deploy as a Space, "
                     "which preloads them.")
        return text


def curve_rows(history: list[dict]) -> list[dict]:
    """The live curves of a match: cosine to the target, and the loss relative to its start, per step."""
    rows = [r for r in history if r.get("stage", "").endswith("match") and "loss" in r]
    first = (rows[0]["loss"] or 1.0) if rows else 1.0
    return ([{"step": r["step"], "value": r["cos_to_target"], "series": "cosine to target"} for r in rows]
            + [{"step": r["step"], "value": r["loss"] / first, "series": "loss / initial loss"} for r in rows])


def caption_of(summary: dict | None) -> str:
    """The line above a match result: what was reached, and at which resolution."""
    if not summary or "resolution" not in summary:
        return ""
    height, width = summary["resolution"]
    where = ("the source's resolution" if summary["settings"].get("resolution") == "source"
             else "the model's input resolution, as the authors ran it" if summary["mode"] == "paper"
             else "the model's input resolution")
    return (f"**{summary['status']}.** The matched picture is {width} x {height} pixels ({where}); saved as PNG its "
            f"cosine to the target is {summary['cos_to_target_png']:.3f} (from {summary['cos_to_target_initial']:.3f}),"
            f" PSNR {summary['psnr_db_png']:.1f} dB." + "".join(f" {line[0].upper()}{line[1:]}."
                                                                for line in survival_lines(summary)))


def precomputed(folder: Path) -> dict:
    """The example results shipped in `folder` (made by `examples/precompute.py` through the same calls): per
    view, what it shows before any click (the live curves as history rows)."""
    def read(name):
        path = folder / name / SUMMARY_FILE
        return (folder / name, json.loads(path.read_text())) if path.is_file() else (None, None)

    out = {}
    where, summary = read("match")
    if summary is not None:
        with open(where / "trace.csv") as handle:
            history = [{"stage": "match", "step": int(r["step"]), "loss": float(r["loss"]),
                        "cos_to_target": float(r["cos_to_target"])} for r in csv.DictReader(handle)]
        zero_shot = summary.get("zero_shot", {})
        top = {side: dict(sorted(zip(zero_shot.get("classes", []), values), key=lambda kv: -kv[1])[:5])
               for side, values in (("before", zero_shot.get("source", [])),
                                    ("after", zero_shot.get("read_back", {}).get("png", [])))}
        out["match"] = {"matched": str(where / "matched.png"), "diff": str(where / "diff_x50.png"),
                        "history": history, "pca": str(where / "pca_bars.png"), "zip": str(where / "results.zip"),
                        "summary": summary, **top,
                        "caption": f"*Example result, precomputed with the shipped mini-CLIP (`{summary['weights']}`):"
                                   f" {Path(summary['source']).name} -> {Path(summary['target']).name}, "
                                   f"{summary['status']}.*"}
    where, summary = read("inspect")
    if summary is not None:
        out["inspect"] = (str(where / "spectrum.png"), str(where / "lipschitz_eps.png"),
                          [(str(p), p.stem.replace("_", " ")) for p in sorted(where.glob("direction_*.png"))], summary)
    where, summary = read("equivalence")
    if summary is not None:
        out["equivalence"] = ([(str(where / f"matched_{i + 1}.png"), f"{i + 1}: {Path(p['source']).name}")
                               for i, p in enumerate(summary["pairs"])], str(where / "vision_text_after.png"),
                              str(where / "cosine_matched.png"), str(where / "results.zip"), summary)
    return out
