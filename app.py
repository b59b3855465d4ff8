"""probe's attack-and-inspect app: watch a picture take on another picture's embedding while looking the same,
then look at why (the local geometry of the embedding map). Gradio Blocks, deployable unchanged as a Hugging
Face Space; every view is also a named API endpoint (gradio_client) and, with --mcp, an MCP tool.

Layout and wiring only: each handler is the server's checks (`probe.serving`) around one `probe.experiments`
call, streamed under the time cap. Settings, limits, the model allowlist and every default come from
`space_config.yml` and the settings' declarations.

    python app.py [--device cpu|cuda|cuda:1] [--port 7860] [--host 127.0.0.1] [--mcp] [--config FILE]
"""
from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from probe import experiments  # noqa: E402
from probe.data import reference_images  # noqa: E402
from probe.errors import ProbeError  # noqa: E402
from probe.models import resolve_device  # noqa: E402
from probe.serving import (Server, Workspace, caption_of, exact_jacobian_seconds, load_config,  # noqa: E402
                           precomputed)
from probe.zeroshot import parse_labels  # noqa: E402

WORKSPACE = Workspace(os.environ.get("PROBE_APP_TMP"))
os.environ.setdefault("GRADIO_TEMP_DIR", str(WORKSPACE.root / "gradio"))  # gradio's uploads stay in it too

import gradio as gr  # noqa: E402

from probe.gradio_parts import (curves, finished, gpu, image_file, refusals, repair_mcp_file_lists, slider,  # noqa: E402
                                streamed)

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
REFERENCE = reference_images(EXAMPLES, EXAMPLES / "shapes")   # the PCA view's reference set
SURVIVE_WEB = ("jpeg", "resize")   # what "survive JPEG and resizing" optimises over


class Views:
    """The views, each an API endpoint (and MCP tool): the server's checks, one experiment call, its outputs.
    `endpoints` holds them as the UI and the API call them (refusals as gr.Error, ZeroGPU where it runs)."""

    def __init__(self, server: Server):
        self.server, self.config, self.limits = server, server.config, server.config.limits
        cap = lambda *a, **k: int(self.limits.time_cap_seconds)  # noqa: E731
        def match_seconds(source=None, target=None, model=None, mode="fast", steps=None, budget=None, labels=None,
                          survive=False, *rest, **options):
            return self.config.match_gpu_seconds(model, mode, steps, bool(survive))

        self.endpoints = {"match": gpu(match_seconds)(refusals(self.match)),
                          "inspect": gpu(cap)(refusals(self.inspect)),
                          "equivalence": gpu(cap)(refusals(self.equivalence)),
                          "one_to_many": gpu(cap)(refusals(self.one_to_many)),
                          "classify": gpu(lambda *a, **k: 60)(refusals(self.classify))}

    def match(self, source, target, model, mode="fast", steps=None, budget=8 / 255, labels="", survive=False,
              progress=gr.Progress()):
        """Make the source picture take on the target picture's embedding while looking the same.

        Args:
            source: the picture to change (an image file).
            target: the picture whose embedding the source takes on (an image file).
            model: the model, by its name in the list offered here (or its allowlisted spec).
            mode: "fast" (ours: [0,1] pixels under an L-inf budget, at the source's resolution) or "paper" (the
                authors' procedure, at the model's resolution).
            steps: the iteration cap (empty: the model's default here).
            budget: L-inf budget in [0,1] pixels (8/255 = 0.031); in paper mode an extra budget on top of the
                authors' clamp, 0 for none.
            labels: comma-separated class names for the zero-shot view; empty for the model's defaults.
            survive: fast mode only: make the match survive JPEG and resizing (expectation over random
                differentiable versions of them; slower per step). The summary's `survival` block says what the
                picture is read as after real JPEG, resizing and a screenshot, either way.
        Returns:
            the matched PNG, the difference x 50, the live curves, zero-shot probabilities of the source and of the
            saved PNG, the PCA view, a zip of everything, and last the JSON summary.
        """
        settings = self.server.settings(model, mode, steps, budget, SURVIVE_WEB if survive else ())
        uploads = self.server.images([source, target], ["source", "target"])
        encoder, names = self.server.encoder(model), self.server.labels(model, labels)
        for note in uploads.notes:
            gr.Warning(note)
        call = lambda p: experiments.match(encoder, *uploads.pictures, settings, classes=names,  # noqa: E731
                                           reference=REFERENCE, progress=p)
        for update in streamed(call, self.limits.time_cap_seconds, progress):
            if update.result is None:
                yield *(gr.skip(),) * 2, curves(update.history), *(gr.skip(),) * 4, {"status": "running",
                                                                                      "step": update.done}
            else:
                matched, diff, *rest = self.server.match_outputs(update.result, uploads, update.timed_out)
                yield matched, diff, curves(update.history), *rest

    def inspect(self, image, model, method="auto", k=4, matched=None, progress=gr.Progress()):
        """The geometry behind matching at one picture: the singular values of the Jacobian of the embedding,
        directional Lipschitz estimates along the top singular directions and random ones (and along the
        displacement to a matched picture), and the top singular directions shown as images.

        Args:
            image: the picture (an image file).
            model: the model, by its name in the list offered here.
            method: "exact" (the full Jacobian), "topk" (matrix-free, the top k only) or "auto" (exact when it fits
                the time cap).
            k: how many top singular directions to estimate along and show (1 to 16).
            matched: optional, a picture matched from `image` (adds the direction of that displacement).
        Returns:
            the spectrum plot, the Lipschitz plot, the directions as images, and the JSON summary.
        """
        k = replace(experiments.INSPECT["k"], high=16).check(k)
        uploads = self.server.images([image] + ([matched] if matched else []), ["image", "matched"])
        picture, *other = uploads.pictures
        encoder, cap = self.server.encoder(model), self.limits.time_cap_seconds
        if method == "auto":
            method = "exact" if exact_jacobian_seconds(encoder, picture) < cap / 3 else "topk"
        last = finished(lambda p: experiments.inspect(encoder, picture, method=method, k=k,
                                                      matched=other[0] if other else None, progress=p), cap, progress)
        return self.server.inspect_outputs(last.result, uploads.notes, method)

    def equivalence_view(self, sources, targets, model, steps, budget, labels, progress):
        settings = self.server.settings(model, "fast", steps, budget)
        uploads, n = self.server.images(sources + targets), len(sources)
        encoder, names = self.server.encoder(model), self.server.labels(model, labels)
        last = finished(lambda p: experiments.equivalence(encoder, uploads.pictures[:n], uploads.pictures[n:],
                                                          settings, classes=names or None, progress=p),
                        self.limits.time_cap_seconds, progress)
        return self.server.equivalence_outputs(last.result, uploads.names[:n], uploads.names[n:], last.timed_out)

    def equivalence(self, sources, target, model, steps=None, budget=8 / 255, labels="", progress=gr.Progress()):
        """Many pictures take on ONE target's embedding: different pictures, one embedding (the paper's
        equivalence classes).

        Args:
            sources: the pictures to change (image files).
            target: the picture whose embedding they all take on (an image file).
            model: the model, by its name in the list offered here.
            steps: the iteration cap per picture (empty: the model's default here).
            budget: L-inf budget in [0,1] pixels.
            labels: comma-separated class names for the vision x text matrix; empty for the model's defaults.
        Returns:
            a gallery of the matched pictures, the vision x text matrix, the cosine matrix between the matched
            embeddings, a zip of everything, and the JSON summary.
        """
        return self.equivalence_view(list(sources or []), [target], model, steps, budget, labels, progress)

    def one_to_many(self, source, targets, model, steps=None, budget=8 / 255, labels="", progress=gr.Progress()):
        """ONE picture takes on several targets' embeddings: look-alikes whose embeddings differ (the paper's
        local normal spaces).

        Args:
            source: the picture to change (an image file).
            targets: the pictures whose embeddings it takes on, one each (image files).
            model: the model, by its name in the list offered here.
            steps: the iteration cap per target (empty: the model's default here).
            budget: L-inf budget in [0,1] pixels.
            labels: comma-separated class names for the vision x text matrix; empty for the model's defaults.
        Returns:
            a gallery of the look-alikes, the vision x text matrix, the cosine matrix between their embeddings,
            a zip of everything, and the JSON summary.
        """
        return self.equivalence_view([source], list(targets or []), model, steps, budget, labels, progress)

    def classify(self, images, labels, model):
        """Zero-shot probabilities of pictures over class names (the paper's vision x text matrix).

        Args:
            images: the pictures (image files).
            labels: comma-separated class names.
            model: the model (with a text tower), by its name in the list offered here.
        Returns:
            the heatmap, and the JSON with the probabilities.
        """
        if not images:
            raise ProbeError("no images given")
        uploads = self.server.images(list(images))
        labels = parse_labels(labels, self.config.labels_for(model))
        result = experiments.classify(self.server.encoder(model), uploads.pictures, labels)
        return self.server.classify_outputs(result, uploads.names)


def build(server: Server) -> gr.Blocks:
    """The Blocks UI; each event is also an API endpoint named after its view."""
    views, shown = Views(server).endpoints, precomputed(EXAMPLES / "precomputed")
    repair_mcp_file_lists()
    with gr.Blocks(title="probe: equivalence structures of ViT embeddings", delete_cache=(1800, 3600)) as demo:
        gr.Markdown("# Pictures that look the same to you and different to a vision transformer\n"
                    "Reproducing and probing *Intriguing Equivalence Structures of the Embedding Space of Vision "
                    "Transformers* (Salman, Shams, Liu, arXiv:2401.15568).")
        gr.Markdown(server.weights_note())
        with gr.Tab("Match"):
            match_tab(server, views["match"], shown.get("match", {}))
        with gr.Tab("Inspect"):
            inspect_tab(server, views["inspect"], shown.get("inspect", (None,) * 4))
        with gr.Tab("Equivalence"):
            equivalence_tab(server, views, shown.get("equivalence", (None,) * 5))
        with gr.Tab("Classify"):
            classify_tab(server, views["classify"])
        with gr.Tab("About"):
            gr.Markdown(about(server))
    demo.queue(default_concurrency_limit=server.config.limits.concurrent_jobs, max_size=server.config.limits.queue_size)
    return demo


def model_picker(server: Server) -> gr.Dropdown:
    return gr.Dropdown(list(server.config.models), value=server.default_model, label="model", allow_custom_value=True)


def steps_slider(server: Server, model: gr.Dropdown, label: str = "steps") -> gr.Slider:
    """The iteration cap, starting at the model's default here and following the model picked."""
    limits = server.config.limits
    steps = slider(1, limits.max_steps, value=server.config.steps_for(server.default_model), step=1, label=label)
    model.change(lambda name: gr.update(value=server.config.steps_for(name)) if name in server.config.models
                 else gr.skip(), model, steps, api_name=False)
    return steps


def match_tab(server: Server, match, initial: dict) -> None:
    config, limits = server.config, server.config.limits
    with gr.Row():
        source = image_file(label="source (the picture to change)", sources=["upload", "webcam", "clipboard"],
                            value=str(EXAMPLES / "cat.png"))
        target = image_file(label="target (whose embedding it takes on)", sources=["upload", "webcam", "clipboard"],
                            value=str(EXAMPLES / "shapes/blue_star.png"))
    with gr.Accordion("or draw the target", open=False):
        sketch = gr.Sketchpad(label="draw a shape", type="filepath", canvas_size=(320, 320))
        use_sketch = gr.Button("use this drawing as the target")
    gr.Examples([[str(ROOT / e["source"]), str(ROOT / e["target"])] for e in config.examples],
                inputs=[source, target], label="example pairs")
    with gr.Row():
        model = model_picker(server)
        mode = gr.Radio(["fast", "paper"], value="fast", label="mode",
                        info="fast: ours, [0,1] pixels, source resolution; paper: the authors' procedure")
        steps = steps_slider(server, model)
        budget = slider(0, limits.max_budget, value=8 / 255, step=1 / 255,
                        label="budget (L-inf, [0,1] pixels)", info="8/255 = 0.031")
    with gr.Row():
        labels = gr.Textbox(label="class names for the zero-shot view (comma-separated; empty: the model's)", value="")
        survive = gr.Checkbox(False, label="survive JPEG and resizing", info="fast mode: optimised over random JPEG "
                              "(quality 50-95) and rescaling; slower per step")
    with gr.Row():
        start, stop = gr.Button("Match", variant="primary"), gr.Button("Stop")
    caption = gr.Markdown(initial.get("caption", ""))
    with gr.Row():
        matched = gr.Image(label="matched (download: full resolution PNG)", type="filepath",
                           value=initial.get("matched"), format="png")
        diff = gr.Image(label="difference x 50 (grey = unchanged)", type="filepath", value=initial.get("diff"))
    plot = gr.LinePlot(value=curves(initial.get("history", [])), x="step", y="value", color="series", title="matching, live",
                       y_title="cosine / relative loss", x_title="step", label="live curves")
    with gr.Row():
        before = gr.Label(label="zero-shot: source", value=initial.get("before"), num_top_classes=5)
        after = gr.Label(label="zero-shot: matched (saved PNG)", value=initial.get("after"), num_top_classes=5)
    pca = gr.Image(label="embeddings on the first principal components of a reference set (the paper's Fig 1 view)",
                   type="filepath", value=initial.get("pca"))
    download = gr.File(label="everything shown (zip of PNGs + JSON)", value=initial.get("zip"))
    summary = gr.JSON(label="summary", value=initial.get("summary"))
    event = start.click(match, [source, target, model, mode, steps, budget, labels, survive],
                        [matched, diff, plot, before, after, pca, download, summary], api_name="match",
                        concurrency_limit=limits.concurrent_jobs)
    event.then(caption_of, summary, caption, api_name=False)
    stop.click(None, None, None, cancels=[event], api_name=False)
    use_sketch.click(lambda drawing: (drawing or {}).get("composite"), sketch, target, api_name=False)


def inspect_tab(server: Server, inspect, shown: tuple) -> None:
    with gr.Row():
        image = image_file(label="picture", value=str(EXAMPLES / "cat.png"))
        matched = image_file(label="optional: a picture matched from it")
    with gr.Row():
        model = model_picker(server)
        method = gr.Radio(["auto", "exact", "topk"], value="auto", label="method",
                          info="exact Jacobian, or matrix-free top-k when it would be too slow")
        k = slider(1, 16, value=4, step=1, label="top singular directions")
    button = gr.Button("Inspect", variant="primary")
    with gr.Row():
        spectrum = gr.Image(label="singular values of the Jacobian", type="filepath", value=shown[0])
        lipschitz = gr.Image(label="Lipschitz estimates against the step size", type="filepath", value=shown[1])
    directions = gr.Gallery(label="top right singular directions (grey = 0)", columns=4, value=shown[2])
    summary = gr.JSON(label="summary", value=shown[3])
    button.click(inspect, [image, model, method, k, matched], [spectrum, lipschitz, directions, summary],
                 api_name="inspect", concurrency_limit=server.config.limits.concurrent_jobs)


def equivalence_tab(server: Server, views: dict, shown: tuple) -> None:
    limits = server.config.limits
    gr.Markdown("**Many -> one**: different pictures, one embedding. **One -> many**: look-alikes, different "
                "embeddings.")
    with gr.Row():
        sources = gr.File(label="many -> one: sources", file_count="multiple", file_types=["image"],
                          value=[str(EXAMPLES / n) for n in ("cat.png", "coffee.png", "rocket.png")])
        target = image_file(label="many -> one: target", value=str(EXAMPLES / "shapes/red_circle.png"))
    with gr.Row():
        source = image_file(label="one -> many: source", value=str(EXAMPLES / "cat.png"))
        targets = gr.File(label="one -> many: targets", file_count="multiple", file_types=["image"],
                          value=[str(EXAMPLES / "shapes" / n) for n in ("red_circle.png", "blue_star.png",
                                                                        "yellow_triangle.png")])
    with gr.Row():
        model = model_picker(server)
        steps = steps_slider(server, model, "steps per pair")
        budget = slider(1 / 255, limits.max_budget, value=8 / 255, step=1 / 255,
                        label="budget (L-inf, [0,1] pixels)")
        labels = gr.Textbox(label="class names (empty: the model's)", value="")
    with gr.Row():
        many, one = gr.Button("many -> one", variant="primary"), gr.Button("one -> many", variant="primary")
    gallery = gr.Gallery(label="matched pictures", columns=4, value=shown[0])
    with gr.Row():
        vision_text = gr.Image(label="vision x text probabilities of the matched pictures", type="filepath",
                               value=shown[1])
        cosines = gr.Image(label="cosine between the matched embeddings", type="filepath", value=shown[2])
    outputs = [gallery, vision_text, cosines, gr.File(label="everything shown (zip)", value=shown[3]),
               gr.JSON(label="summary", value=shown[4])]
    many.click(views["equivalence"], [sources, target, model, steps, budget, labels], outputs,
               api_name="equivalence", concurrency_limit=limits.concurrent_jobs)
    one.click(views["one_to_many"], [source, targets, model, steps, budget, labels], outputs,
              api_name="one_to_many", concurrency_limit=limits.concurrent_jobs)


def classify_tab(server: Server, classify) -> None:
    images = gr.File(label="pictures", file_count="multiple", file_types=["image"])
    labels = gr.Textbox(label="class names (comma-separated)", value=", ".join(server.config.default_labels))
    model = model_picker(server)
    button = gr.Button("Classify", variant="primary")
    plot, probabilities = gr.Image(label="vision x text probabilities", type="filepath"), gr.JSON(label="probabilities")
    button.click(classify, [images, labels, model], [plot, probabilities], api_name="classify",
                 concurrency_limit=server.config.limits.concurrent_jobs)


def about(server: Server) -> str:
    return (ROOT / "docs" / "about.md").read_text().format(weights=server.config.spec(server.default_model))


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
        server = create_app(args.config, args.device)
    except ProbeError as err:
        raise SystemExit(f"error: {err}") from None
    build(server).launch(server_name=args.host, server_port=args.port,
                         max_file_size=server.config.limits.max_upload_bytes, mcp_server=args.mcp or None,
                         allowed_paths=[str(EXAMPLES)])


def create_app(config_path: str | None = None, device: str | None = None, hardware: str | None = None) -> Server:
    """Settings, device and the model cache; on ZeroGPU the default model goes to cuda now, as it requires."""
    config = load_config(config_path, hardware) if config_path else load_config(hardware=hardware)
    device = device or ("cuda" if config.hardware == "gpu" else "cpu")
    resolve_device(device)
    server = Server(config, device, WORKSPACE)
    server.encoder(server.default_model)
    return server


if __name__ == "__main__":
    main()
