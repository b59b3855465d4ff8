"""probe's attack-and-inspect app: watch a picture take on another picture's embedding while looking the same,
then look at why (the local geometry of the embedding map). Gradio Blocks, deployable unchanged as a Hugging
Face Space; every view is also a named API endpoint (gradio_client) and, where gradio's MCP support is
installed, an MCP tool.

Widgets and wiring only: every computation is one `probe.experiments` call; settings, limits, the model
allowlist and request checks come from `space_config.yml` through `probe.serving`.

    python app.py [--device cpu|cuda|cuda:1] [--port 7860] [--host 127.0.0.1] [--mcp] [--config FILE]
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from probe import experiments  # noqa: E402
from probe.errors import ProbeError  # noqa: E402
from probe.matching import FastSettings, PaperSettings  # noqa: E402
from probe.results import save  # noqa: E402
from probe.toy.effect import photo_paths  # noqa: E402
from probe.serving import (ModelCache, Workspace, bundle, check_image, check_number, load_config,  # noqa: E402
                           parse_labels, stream, weights_available)

WORKSPACE = Workspace(os.environ.get("PROBE_APP_TMP"))
os.environ.setdefault("GRADIO_TEMP_DIR", str(WORKSPACE.root / "gradio"))  # gradio's uploads stay in it too

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

try:  # present on Hugging Face Spaces only; its decorator is a no-op off ZeroGPU
    import spaces
except ImportError:
    spaces = None

ROOT = Path(__file__).resolve().parent
PRECOMPUTED = ROOT / "examples" / "precomputed"
REFERENCE = sorted((ROOT / "examples").glob("*.png")) + sorted((ROOT / "examples" / "shapes").glob("*.png")) + \
    photo_paths()   # the photos scikit-image and matplotlib ship: a reference set for the PCA view
LOG = logging.getLogger("probe.app")
ZERO_GPU = bool(os.environ.get("SPACES_ZERO_GPU")) and spaces is not None


def gpu(duration):
    """spaces.GPU on ZeroGPU (the work runs on a GPU for about `duration(...)` seconds), else nothing."""
    return spaces.GPU(duration=duration) if ZERO_GPU else (lambda fn: fn)


def image_file(**options) -> gr.Image:
    """An image input that hands the uploaded file's path over unopened, so that the app's own checks answer
    files that are not images (or too large) with a clear message instead of a decoding error."""
    component = gr.Image(type="filepath", **options)
    decode = component.preprocess

    def preprocess(payload):
        if payload is None or (payload.url and payload.url.startswith("data:")) or payload.path is None:
            return decode(payload)
        return str(payload.path)

    component.preprocess = preprocess   # on the instance: a subclass would make gradio write a .pyi stub
    return component


def slider(*args, **options) -> gr.Slider:
    """A slider whose value reaches the app unchecked, so that the app's own check names the parameter and its
    allowed range in its message (API clients can send any number)."""
    component = gr.Slider(*args, **options)
    component.preprocess = lambda payload: payload
    return component


class App:
    """The state one server holds: settings, the device, the model cache."""

    def __init__(self, config, device: str):
        self.config, self.device = config, device
        self.models = ModelCache(2, device)
        default = config.default_model
        self.default_model = default if weights_available(config.spec(default)) else config.offline_model
        self.fallback = self.default_model != default

    def encoder(self, model: str):
        return self.models.get(self.config.spec(model))

    def weights_note(self) -> str:
        spec = self.config.spec(self.default_model)
        encoder = self.encoder(self.default_model)
        text = f"**Model:** {self.default_model} (`{spec}`), weights `{encoder.weights}`, device `{self.device}`."
        if self.fallback:
            text += (f" The default ({self.config.default_model}) is not available here: its weights are not in "
                     "the Hugging Face cache and the Hub cannot be reached. To use pretrained CLIPs, run once where "
                     "the Hub is reachable (weights go to the Hugging Face cache, `HF_HOME`), or deploy as a Space, "
                     "which preloads them.")
        return text


def _errors(fn):
    """Every refusal reaches the UI and API clients as one clear gr.Error; unexpected failures are logged."""
    import functools
    import inspect

    def handle(err):
        if isinstance(err, gr.Error):
            return err
        if isinstance(err, ProbeError):
            return gr.Error(str(err))
        LOG.exception("unexpected error in %s", fn.__name__)
        return gr.Error(f"unexpected error ({type(err).__name__}); the server logged it. Try again or report it.")

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except GeneratorExit:
                raise
            except Exception as err:
                raise handle(err) from err
        return generator

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            raise handle(err) from err
    return plain


def _curves(history: list[dict]) -> pd.DataFrame:
    """Live curves: cosine to the target, and the loss relative to its start, per step."""
    rows = [r for r in history if r.get("stage", "").endswith("match") and "loss" in r]
    if not rows:
        return pd.DataFrame({"step": [], "value": [], "series": []})
    first = rows[0]["loss"] or 1.0
    data = [{"step": r["step"], "value": r["cos_to_target"], "series": "cosine to target"} for r in rows]
    data += [{"step": r["step"], "value": r["loss"] / first, "series": "loss / initial loss"} for r in rows]
    return pd.DataFrame(data)


def _top(probabilities, classes, k: int = 5) -> dict:
    row = [float(p) for p in probabilities]
    best = sorted(range(len(row)), key=row.__getitem__, reverse=True)[:k]
    return {classes[i]: row[i] for i in best}


def build(app: App) -> gr.Blocks:
    """The Blocks UI; each event is also an API endpoint named after its view."""
    config, limits = app.config, app.config.limits
    model_names = list(config.models)

    def settings_for(mode: str, steps, budget):
        steps = check_number(steps, "steps", 1, limits.max_steps, integer=True)
        budget = check_number(budget, "budget", 0.0, limits.max_budget)
        if mode == "fast":
            if budget == 0:
                raise ProbeError("budget must be > 0 in fast mode (an L-inf distance in [0,1] pixels, e.g. 8/255)")
            return FastSettings(budget=budget, steps=steps, max_pixels=limits.max_pixels)
        if mode == "paper":
            return PaperSettings(steps=steps, budget=budget or None)
        raise ProbeError(f"mode must be 'fast' or 'paper', got {mode!r}")

    def duration(*args, **kwargs):
        steps = kwargs.get("steps", args[4] if len(args) > 4 else config.default_steps)
        return int(min(limits.time_cap_seconds, 15 + 0.1 * float(steps or 0)))

    @gpu(duration)
    @_errors
    def match(source, target, model, mode="fast", steps=config.default_steps, budget=8 / 255, labels="",
              progress=gr.Progress()):
        """Make the source picture take on the target picture's embedding while looking the same.

        Args:
            source: the picture to change (an image file).
            target: the picture whose embedding the source takes on (an image file).
            model: the model, by its name in the list offered here (or its allowlisted spec).
            mode: "fast" (our method: [0,1] pixels under an L-inf budget, at the source's resolution) or "paper"
                (the authors' procedure: gradient descent in the model's normalised input space, at the model's
                resolution).
            steps: the iteration cap.
            budget: L-inf budget in [0,1] pixels (8/255 = 0.031); in paper mode an extra budget on top of the
                authors' clamp, 0 for none.
            labels: comma-separated class names for the zero-shot view; empty for the model's defaults.
        Returns:
            the matched PNG (at the source's resolution in fast mode, the model's in paper mode), the difference
            x 50, the live curves, zero-shot probabilities before and after, the PCA view of the source, target
            and matched embeddings, a zip of everything, and last the JSON summary (cosine to the target before, after and after the PNG round trip, PSNR, L-inf, steps,
            weights).
        """
        settings = settings_for(mode, steps, budget)
        src, src_notes = check_image(source, limits, "source")
        tgt, tgt_notes = check_image(target, limits, "target")
        encoder = app.encoder(model)
        names = parse_labels(labels, config.labels_for(model)) if encoder.has_text else []
        for note in src_notes + tgt_notes:
            gr.Warning(note)
        source_in = source if not src_notes else src
        target_in = target if not tgt_notes else tgt
        empty = (gr.skip(),) * 4   # zero-shot before, after, PCA view, download
        for update in stream(lambda p: experiments.match(encoder, source_in, target_in, settings, progress=p),
                             limits.time_cap_seconds):
            if update.total:
                progress(update.done / update.total, desc=f"step {update.done} of {update.total}")
            if update.result is None:
                yield (gr.skip(), gr.skip(), _curves(update.history), *empty, {"status": "running",
                                                                               "step": update.done})
                continue
            run = update.result
            folder = WORKSPACE.new("match")
            save(run, folder)
            before = after = None
            if names:
                read = experiments.classify(encoder, [folder / "source.png", folder / "matched.png"], names)
                before, after = (_top(row, read.classes) for row in read.probabilities)
            view = experiments.projection(encoder, [folder / "source.png", target_in, folder / "matched.png"],
                                          REFERENCE, names=["source", "target", "matched (PNG)"], k=4)
            save(view, folder / "pca")
            summary = run.to_dict()
            summary["notes"] = src_notes + tgt_notes + run.values["notes"]
            if update.timed_out:
                note = f"stopped at the time cap ({limits.time_cap_seconds:g} s) after {run.values['steps_run']} steps"
                summary["notes"].append(note)
                gr.Warning(note)
            from probe.results import write_json

            write_json(folder / "summary.json", summary)
            summary["pca"] = view.to_dict()["coefficients"]
            yield (str(folder / "matched.png"), str(folder / "diff_x50.png"), _curves(update.history), before, after,
                   str(folder / "pca" / "pca_bars.png"), str(bundle(folder)), summary)

    @gpu(lambda *a, **k: int(limits.time_cap_seconds))
    @_errors
    def inspect(image, model, method="auto", k=4, matched=None, progress=gr.Progress()):
        """The geometry behind matching at one picture: the singular values of the Jacobian of the embedding,
        directional Lipschitz estimates along the top singular directions and random ones (and along the
        displacement to a matched picture), and the top singular directions shown as images.

        Args:
            image: the picture (an image file).
            model: the model, by its name in the list offered here.
            method: "exact" (the full Jacobian), "topk" (matrix-free, the top k only) or "auto" (exact when it fits
                the time cap).
            k: how many top singular directions to estimate along and show.
            matched: optional, a picture matched from `image` (adds the direction of that displacement).
        Returns:
            the spectrum plot, the Lipschitz plot, the directions as images, and the JSON summary.
        """
        k = check_number(k, "k", 1, 16, integer=True)
        picture, notes = check_image(image, limits, "image")
        other = check_image(matched, limits, "matched")[0] if matched else None
        encoder = app.encoder(model)
        if method == "auto":
            from probe.serving import exact_jacobian_seconds

            method = "exact" if exact_jacobian_seconds(encoder, picture) < limits.time_cap_seconds / 3 else "topk"
        if method not in ("exact", "topk"):
            raise ProbeError(f"method must be auto, exact or topk, got {method!r}")
        result = None
        for update in stream(lambda p: experiments.inspect(encoder, picture, method=method, k=k, matched=other,
                                                           progress=p), limits.time_cap_seconds):
            if update.total:
                progress(update.done / update.total, desc=update.stage)
            result = update
        run = result.result
        if run.cancelled:
            raise ProbeError(f"stopped at the time cap ({limits.time_cap_seconds:g} s); try method topk or smaller k")
        folder = WORKSPACE.new("inspect")
        save(run, folder)
        directions = [(str(folder / f"direction_{i + 1}.png"), f"v{i + 1}, sigma {float(s):.3g}")
                      for i, s in enumerate(run.spectrum.singular_values[:k])
                      if (folder / f"direction_{i + 1}.png").is_file()]
        summary = run.to_dict() | {"notes": notes, "method_used": method}
        return str(folder / "spectrum.png"), str(folder / "lipschitz_eps.png"), directions, summary

    def _equivalence(sources, targets, model, steps, budget, labels, progress):
        if len(sources) > limits.max_images or len(targets) > limits.max_images:
            raise ProbeError(f"at most {limits.max_images} images per request")
        settings = settings_for("fast", steps, budget)
        checked = [check_image(p, limits, f"image {i + 1}")[0] for i, p in enumerate(sources + targets)]
        encoder = app.encoder(model)
        names = parse_labels(labels, config.labels_for(model)) if encoder.has_text else None
        result = None
        for update in stream(lambda p: experiments.equivalence(encoder, checked[:len(sources)],
                                                               checked[len(sources):], settings, classes=names,
                                                               progress=p), limits.time_cap_seconds):
            progress(0 if not update.total else update.done / update.total, desc=update.stage)
            result = update
        run = result.result
        folder = WORKSPACE.new("equivalence")
        save(run, folder)
        gallery = [(str(folder / f"matched_{i + 1}.png"),
                    f"{i + 1}: cos {p.values['cos_to_target_png']:.3f}, {p.values['psnr_db_png']:.1f} dB")
                   for i, p in enumerate(run.pairs)]
        summary = run.to_dict()
        if result.timed_out:
            summary["notes"] = [f"stopped at the time cap after {len(run.pairs)} pairs"]
        matrix = folder / "vision_text_after.png"
        return (gallery, str(matrix) if matrix.is_file() else None, str(folder / "cosine_matched.png")
                if run.pairs else None, str(bundle(folder)), summary)

    @gpu(lambda *a, **k: int(limits.time_cap_seconds))
    @_errors
    def equivalence(sources, target, model, steps=config.default_steps, budget=8 / 255, labels="",
                    progress=gr.Progress()):
        """Many pictures take on ONE target's embedding: different pictures, one embedding (the paper's
        equivalence classes).

        Args:
            sources: the pictures to change (image files).
            target: the picture whose embedding they all take on (an image file).
            model: the model, by its name in the list offered here.
            steps: the iteration cap per picture.
            budget: L-inf budget in [0,1] pixels.
            labels: comma-separated class names for the vision x text matrix; empty for the model's defaults.
        Returns:
            a gallery of the matched pictures, the vision x text matrix, the cosine matrix between the matched
            embeddings, a zip of everything, and the JSON summary.
        """
        return _equivalence(list(sources or []), [target], model, steps, budget, labels, progress)

    @gpu(lambda *a, **k: int(limits.time_cap_seconds))
    @_errors
    def one_to_many(source, targets, model, steps=config.default_steps, budget=8 / 255, labels="",
                    progress=gr.Progress()):
        """ONE picture takes on several targets' embeddings: look-alikes whose embeddings differ (the paper's
        local normal spaces).

        Args:
            source: the picture to change (an image file).
            targets: the pictures whose embeddings it takes on, one each (image files).
            model: the model, by its name in the list offered here.
            steps: the iteration cap per target.
            budget: L-inf budget in [0,1] pixels.
            labels: comma-separated class names for the vision x text matrix; empty for the model's defaults.
        Returns:
            a gallery of the look-alikes, the vision x text matrix, the cosine matrix between their embeddings,
            a zip of everything, and the JSON summary.
        """
        return _equivalence([source], list(targets or []), model, steps, budget, labels, progress)

    @gpu(lambda *a, **k: 60)
    @_errors
    def classify(images, labels, model):
        """Zero-shot probabilities of pictures over class names (the paper's vision x text matrix).

        Args:
            images: the pictures (image files).
            labels: comma-separated class names.
            model: the model (with a text tower), by its name in the list offered here.
        Returns:
            the heatmap, and the JSON with the probabilities.
        """
        images = list(images or [])
        if not images:
            raise ProbeError("no images given")
        if len(images) > limits.max_images:
            raise ProbeError(f"at most {limits.max_images} images per request")
        checked = [check_image(p, limits, f"image {i + 1}")[0] for i, p in enumerate(images)]
        encoder = app.encoder(model)
        run = experiments.classify(encoder, checked, parse_labels(labels, config.labels_for(model)))
        run.names = [Path(str(p)).name for p in images]
        folder = WORKSPACE.new("classify")
        save(run, folder)
        return str(folder / "classify.png"), run.to_dict()

    initial = _precomputed()
    with gr.Blocks(title="probe: equivalence structures of ViT embeddings", delete_cache=(1800, 3600)) as demo:
        gr.Markdown("# Pictures that look the same to you and different to a vision transformer\n"
                    "Reproducing and probing *Intriguing Equivalence Structures of the Embedding Space of Vision "
                    "Transformers* (Salman, Shams, Liu, arXiv:2401.15568).")
        gr.Markdown(app.weights_note())
        with gr.Tab("Match"):
            with gr.Row():
                source = image_file(label="source (the picture to change)",
                                   sources=["upload", "webcam", "clipboard"], value=str(ROOT / "examples/cat.png"))
                target = image_file(label="target (whose embedding it takes on)",
                                   sources=["upload", "webcam", "clipboard"],
                                   value=str(ROOT / "examples/shapes/blue_star.png"))
            with gr.Accordion("or draw the target", open=False):
                sketch = gr.Sketchpad(label="draw a shape", type="filepath", canvas_size=(320, 320))
                use_sketch = gr.Button("use this drawing as the target")
            gr.Examples([[str(ROOT / e["source"]), str(ROOT / e["target"])] for e in config.examples],
                        inputs=[source, target], label="example pairs")
            with gr.Row():
                model = gr.Dropdown(model_names, value=app.default_model, label="model", allow_custom_value=True)
                mode = gr.Radio(["fast", "paper"], value="fast", label="mode",
                                info="fast: ours, [0,1] pixels, source resolution; paper: the authors' procedure")
                steps = slider(1, limits.max_steps, value=config.default_steps, step=1, label="steps")
                budget = slider(0, limits.max_budget, value=round(8 / 255, 4), step=1 / 255,
                                   label="budget (L-inf, [0,1] pixels)", info="8/255 = 0.031")
            labels = gr.Textbox(label="class names for the zero-shot view (comma-separated; empty: the model's)",
                                value="")
            with gr.Row():
                run_button = gr.Button("Match", variant="primary")
                stop_button = gr.Button("Stop")
            caption = gr.Markdown(initial.get("caption", ""))
            with gr.Row():
                matched = gr.Image(label="matched (download: full resolution PNG)", type="filepath",
                                   value=initial.get("matched"), format="png")
                diff = gr.Image(label="difference x 50 (grey = unchanged)", type="filepath", value=initial.get("diff"))
            curves = gr.LinePlot(value=initial.get("curves"), x="step", y="value", color="series",
                                 title="matching, live", y_title="cosine / relative loss", x_title="step",
                                 label="live curves")
            with gr.Row():
                before = gr.Label(label="zero-shot: source", value=initial.get("before"), num_top_classes=5)
                after = gr.Label(label="zero-shot: matched (saved PNG)", value=initial.get("after"), num_top_classes=5)
            pca = gr.Image(label="embeddings on the first principal components of a reference set (the paper's "
                                 "Fig 1 view)", type="filepath", value=initial.get("pca"))
            download = gr.File(label="everything shown (zip of PNGs + JSON)", value=initial.get("zip"))
            summary = gr.JSON(label="summary", value=initial.get("summary"))
            event = run_button.click(match, [source, target, model, mode, steps, budget, labels],
                                     [matched, diff, curves, before, after, pca, download, summary], api_name="match",
                                     concurrency_limit=limits.concurrent_jobs)
            event.then(describe_match, summary, caption, api_name=False)
            stop_button.click(None, None, None, cancels=[event], api_name=False)
            use_sketch.click(lambda drawing: (drawing or {}).get("composite"), sketch, target, api_name=False)
        with gr.Tab("Inspect"):
            with gr.Row():
                inspect_image = image_file(label="picture", value=str(ROOT / "examples/cat.png"))
                inspect_matched = image_file(label="optional: a picture matched from it")
            with gr.Row():
                inspect_model = gr.Dropdown(model_names, value=app.default_model, label="model", allow_custom_value=True)
                method = gr.Radio(["auto", "exact", "topk"], value="auto", label="method",
                                  info="exact Jacobian, or matrix-free top-k when it would be too slow")
                k = slider(1, 16, value=4, step=1, label="top singular directions")
            inspect_button = gr.Button("Inspect", variant="primary")
            shown = initial.get("inspect", (None,) * 4)
            with gr.Row():
                spectrum_plot = gr.Image(label="singular values of the Jacobian", type="filepath", value=shown[0])
                lipschitz_plot = gr.Image(label="Lipschitz estimates against the step size", type="filepath",
                                          value=shown[1])
            directions = gr.Gallery(label="top right singular directions (grey = 0)", columns=4, value=shown[2])
            inspect_summary = gr.JSON(label="summary", value=shown[3])
            inspect_button.click(inspect, [inspect_image, inspect_model, method, k, inspect_matched],
                                 [spectrum_plot, lipschitz_plot, directions, inspect_summary], api_name="inspect",
                                 concurrency_limit=limits.concurrent_jobs)
        with gr.Tab("Equivalence"):
            gr.Markdown("**Many -> one**: different pictures, one embedding. **One -> many**: look-alikes, "
                        "different embeddings.")
            with gr.Row():
                eq_sources = gr.File(label="many -> one: sources", file_count="multiple", file_types=["image"],
                                     value=[str(ROOT / "examples" / n) for n in ("cat.png", "coffee.png", "rocket.png")])
                eq_target = image_file(label="many -> one: target",
                                      value=str(ROOT / "examples/shapes/red_circle.png"))
            with gr.Row():
                om_source = image_file(label="one -> many: source", value=str(ROOT / "examples/cat.png"))
                om_targets = gr.File(label="one -> many: targets", file_count="multiple", file_types=["image"],
                                     value=[str(ROOT / "examples/shapes" / n) for n in ("red_circle.png",
                                                                                       "blue_star.png",
                                                                                       "yellow_triangle.png")])
            with gr.Row():
                eq_model = gr.Dropdown(model_names, value=app.default_model, label="model", allow_custom_value=True)
                eq_steps = slider(1, limits.max_steps, value=config.default_steps, step=1, label="steps per pair")
                eq_budget = slider(1 / 255, limits.max_budget, value=round(8 / 255, 4), step=1 / 255,
                                      label="budget (L-inf, [0,1] pixels)")
                eq_labels = gr.Textbox(label="class names (empty: the model's)", value="")
            with gr.Row():
                many_button = gr.Button("many -> one", variant="primary")
                one_button = gr.Button("one -> many", variant="primary")
            shown = initial.get("equivalence", (None,) * 5)
            gallery = gr.Gallery(label="matched pictures", columns=4, value=shown[0])
            with gr.Row():
                vision_text = gr.Image(label="vision x text probabilities of the matched pictures", type="filepath",
                                       value=shown[1])
                cosines = gr.Image(label="cosine between the matched embeddings", type="filepath", value=shown[2])
            eq_download = gr.File(label="everything shown (zip)", value=shown[3])
            eq_summary = gr.JSON(label="summary", value=shown[4])
            outputs = [gallery, vision_text, cosines, eq_download, eq_summary]
            many_button.click(equivalence, [eq_sources, eq_target, eq_model, eq_steps, eq_budget, eq_labels], outputs,
                              api_name="equivalence", concurrency_limit=limits.concurrent_jobs)
            one_button.click(one_to_many, [om_source, om_targets, eq_model, eq_steps, eq_budget, eq_labels], outputs,
                             api_name="one_to_many", concurrency_limit=limits.concurrent_jobs)
        with gr.Tab("Classify"):
            cl_images = gr.File(label="pictures", file_count="multiple", file_types=["image"])
            cl_labels = gr.Textbox(label="class names (comma-separated)", value=", ".join(config.default_labels))
            cl_model = gr.Dropdown(model_names, value=app.default_model, label="model", allow_custom_value=True)
            cl_button = gr.Button("Classify", variant="primary")
            cl_plot = gr.Image(label="vision x text probabilities", type="filepath")
            cl_summary = gr.JSON(label="probabilities")
            cl_button.click(classify, [cl_images, cl_labels, cl_model], [cl_plot, cl_summary], api_name="classify",
                            concurrency_limit=limits.concurrent_jobs)
        with gr.Tab("About"):
            gr.Markdown(about(app))
    demo.queue(default_concurrency_limit=limits.concurrent_jobs, max_size=limits.queue_size)
    return demo


def describe_match(summary: dict | None) -> str:
    """The line above a match result: what was reached, and at which resolution."""
    if not summary or "resolution" not in summary:
        return ""
    height, width = summary["resolution"]
    where = ("the source's resolution" if summary["settings"].get("resolution") == "source"
             else "the model's input resolution, as the authors ran it" if summary["mode"] == "paper"
             else "the model's input resolution")
    return (f"**{summary['status']}.** The matched picture is {width} x {height} pixels ({where}); saved as PNG its "
            f"cosine to the target is {summary['cos_to_target_png']:.3f} (from {summary['cos_to_target_initial']:.3f}), "
            f"PSNR {summary['psnr_db_png']:.1f} dB.")


def _precomputed() -> dict:
    """The shipped example results (made by `examples/precompute.py` with the shipped mini-CLIP), shown before
    any click: the Match tab's under their own names, the other tabs' under "inspect" and "equivalence"."""
    import json

    def read(name):
        path = PRECOMPUTED / name / "summary.json"
        return (PRECOMPUTED / name, json.loads(path.read_text())) if path.is_file() else (None, None)

    folder, summary = read("match")
    if summary is None:
        return {}
    trace = pd.read_csv(folder / "trace.csv")
    history = [{"stage": "match", "step": int(r.step), "loss": float(r.loss), "cos_to_target": float(r.cos_to_target)}
               for r in trace.itertuples()]
    out = {"matched": str(folder / "matched.png"), "diff": str(folder / "diff_x50.png"), "curves": _curves(history),
           "pca": str(folder / "pca" / "pca_bars.png"), "before": summary.get("zero_shot_source"),
           "after": summary.get("zero_shot_matched"), "zip": str(folder / "results.zip"), "summary": summary,
           "caption": f"*Example result, precomputed with the shipped mini-CLIP (`{summary['weights']}`): "
                      f"{Path(summary['source']).name} -> {Path(summary['target']).name}, {summary['status']}.*"}
    folder, summary = read("inspect")
    if summary is not None:
        out["inspect"] = (str(folder / "spectrum.png"), str(folder / "lipschitz_eps.png"),
                          [(str(p), p.stem.replace("_", " ")) for p in sorted(folder.glob("direction_*.png"))], summary)
    folder, summary = read("equivalence")
    if summary is not None:
        out["equivalence"] = ([(str(folder / f"matched_{i + 1}.png"), f"{i + 1}: {Path(p['source']).name}")
                               for i, p in enumerate(summary["pairs"])], str(folder / "vision_text_after.png"),
                              str(folder / "cosine_matched.png"), str(folder / "results.zip"), summary)
    return out


def about(app: App) -> str:
    spec = app.config.spec(app.default_model)
    return f"""
### What the paper claims
A vision transformer's embedding space has large **equivalence classes**: very different pictures share (nearly) the
same embedding, and pictures that look identical can have very different embeddings. The authors show it by
*embedding matching*: a picture is changed imperceptibly until its embedding equals an unrelated picture's; every
downstream model (zero-shot classification) then follows the embedding, not the picture. The Jacobian of the embedding
explains why: it maps ~150,000 input dimensions to ~1,000, so almost every direction changes the embedding little, and
a few change it a lot.

### How to read each view
- **Match**: the matched picture looks like the source (difference x 50: grey means unchanged) while its cosine to the
  target's embedding approaches 1 and the zero-shot classifier reads it as the target. *Fast* is our method (pixels
  under an L-inf budget, at your picture's resolution); *paper* is the authors' procedure (their step, clamp and
  stopping rule, at the model's resolution). The summary gives the numbers after saving the picture as an 8-bit PNG.
- **Inspect**: singular values of the Jacobian (log scale: a few large, the rest small), how far the embedding moves
  per unit step along the top directions (flat lines = the linear regime; random directions move it far less), and the
  top directions as pictures.
- **Equivalence**: many pictures carrying one embedding, or one picture's look-alikes carrying many; the cosine matrix
  between the matched embeddings shows which is which.
- **Classify**: the vision x text probabilities of any pictures.

### Weights loaded here
`{spec}`. The shipped mini-CLIP (64 px, shapes and colours, 30 classes such as "red circle") works offline and is a
teaching model: give it shapes and colours as targets. Pretrained CLIPs (ViT-B/32, the paper's ViT-H-14) need their
weights from the Hugging Face Hub once (`HF_HOME` cache); a Space preloads them. Nothing else than the models listed
is ever loaded, and no remote code runs.

### Citation
Shaeke Salman, Md Montasir Bin Shams, Xiuwen Liu. *Intriguing Equivalence Structures of the Embedding Space of Vision
Transformers.* arXiv:2401.15568, 2024. The paper's downstream classifier is ImageBind-huge, whose towers are OpenCLIP
ViT-H-14: OpenCLIP ViT-H-14's own zero-shot head stands in for it here (a substitution).
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=os.environ.get("PROBE_DEVICE"), help="cpu, cuda, cuda:1 (default: "
                        "cuda where the config's hardware is gpu, else cpu)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--config", default=None, help="settings file (default space_config.yml)")
    parser.add_argument("--mcp", action="store_true", help="also serve the endpoints as MCP tools")
    args = parser.parse_args(argv)
    try:
        app = create_app(args.config, args.device)
    except ProbeError as err:
        raise SystemExit(f"error: {err}") from None
    build(app).launch(server_name=args.host, server_port=args.port, max_file_size=app.config.limits.max_upload_bytes,
                      mcp_server=args.mcp or None, allowed_paths=[str(ROOT / "examples")])


def create_app(config_path: str | None = None, device: str | None = None, hardware: str | None = None) -> App:
    """Settings, device and the model cache; on ZeroGPU the default model goes to cuda now, as it requires."""
    from probe.models import resolve_device

    config = load_config(config_path, hardware) if config_path else load_config(hardware=hardware)
    device = device or ("cuda" if config.hardware == "gpu" else "cpu")
    resolve_device(device)
    app = App(config, device)
    app.encoder(app.default_model)
    return app


if __name__ == "__main__":
    main()
