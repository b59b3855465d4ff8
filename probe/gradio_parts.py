"""The Gradio pieces the app's layout is built from (a front end, like `probe.cli`): refusals shown as one clear
gr.Error, ZeroGPU's decorator where it runs, inputs whose values reach the server's own checks unconverted, and
progress streamed from `probe.serving.stream` under the time cap."""
from __future__ import annotations

import functools
import inspect
import logging
import os

import gradio as gr
import pandas as pd

from probe.errors import ProbeError
from probe.serving import curve_rows, stream

try:  # present on Hugging Face Spaces only; its decorator is a no-op off ZeroGPU
    import spaces
except ImportError:
    spaces = None

LOG = logging.getLogger("probe.app")
ZERO_GPU = bool(os.environ.get("SPACES_ZERO_GPU")) and spaces is not None


def gpu(duration):
    """spaces.GPU on ZeroGPU (the work holds a GPU for about `duration(...)` seconds), else nothing."""
    return spaces.GPU(duration=duration) if ZERO_GPU else (lambda fn: fn)


def as_gradio_error(err: Exception, where: str) -> gr.Error:
    """A refusal (ProbeError) keeps its message; anything unexpected is logged and answered in general terms."""
    if isinstance(err, gr.Error):
        return err
    if isinstance(err, ProbeError):
        return gr.Error(str(err))
    LOG.exception("unexpected error in %s", where)
    return gr.Error(f"unexpected error ({type(err).__name__}); the server logged it. Try again or report it.")


def refusals(fn):
    """`fn` (a function or a generator) with every failure raised as one gr.Error, for the UI and API clients."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except GeneratorExit:
                raise
            except Exception as err:
                raise as_gradio_error(err, fn.__name__) from err
    else:
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as err:
                raise as_gradio_error(err, fn.__name__) from err
    return wrapped


def image_file(**options) -> gr.Image:
    """An image input that hands the uploaded file's path over unopened, so the server's own checks answer files
    that are not images (or too large) with a clear message instead of a decoding error."""
    component = gr.Image(type="filepath", **options)
    decode = component.preprocess
    component.preprocess = lambda payload: (decode(payload) if payload is None or payload.path is None or (
        payload.url and payload.url.startswith("data:")) else str(payload.path))
    return component


def slider(*args, **options) -> gr.Slider:
    """A slider whose value reaches the server unchecked, so its check names the setting and the range."""
    component = gr.Slider(*args, **options)
    component.preprocess = lambda payload: payload
    return component


def curves(history: list[dict]) -> pd.DataFrame:
    """The live curves as the LinePlot reads them."""
    return pd.DataFrame(curve_rows(history), columns=["step", "value", "series"])


def streamed(call, cap: float, progress):
    """The updates of `call(progress)` streamed under the time cap, each also shown on Gradio's progress bar."""
    for update in stream(call, cap):
        progress(update.done / update.total if update.total else 0, desc=f"{update.stage}: {update.done} of "
                 f"{update.total}")
        yield update


def finished(call, cap: float, progress):
    """The last update of `streamed(...)`: the result (partial where the time cap stopped it)."""
    last = None
    for last in streamed(call, cap, progress):
        pass
    return last


def repair_mcp_file_lists() -> None:
    """Make gradio's MCP server accept lists of files (the Equivalence and Classify tools take several pictures).

    gradio 6.31 describes a `gr.File(file_count="multiple")` input with a `$ref` into `$defs` kept inside the
    property, which MCP's input validation cannot resolve ("PointerToNowhere"), and it converts URLs to files only at
    fixed positions, never at list items. Here the references are inlined and each list item is converted."""
    from gradio.mcp import GradioMCPServer

    simplify, convert = GradioMCPServer.simplify_filedata_schema, GradioMCPServer.convert_strings_to_filedata
    if getattr(simplify, "repaired", False):
        return

    def simplify_inlined(self, schema):
        return simplify(self, inline_refs(schema))

    def convert_items(self, value, positions):
        return convert(self, value, [p for position in positions for p in at_items(position, value)])

    simplify_inlined.repaired = True
    GradioMCPServer.simplify_filedata_schema = simplify_inlined
    GradioMCPServer.convert_strings_to_filedata = convert_items


def inline_refs(schema: dict) -> dict:
    """A JSON schema with every `#/$defs/...` reference replaced by its definition, wherever the `$defs` sit."""
    definitions: dict = {}

    def collect(node):
        if isinstance(node, dict):
            definitions.update(node.get("$defs", {}))
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    def resolve(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/") and ref.split("/")[-1] in definitions:
                node = {**definitions[ref.split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    collect(schema)
    return resolve(schema)


def at_items(position: list, value) -> list[list]:
    """A schema position (with "items" for any list item) as the positions of `value`'s actual items."""
    if "items" not in position:
        return [position]
    cut = position.index("items")
    node = value
    for key in position[:cut]:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, list):
        return []
    return [q for i in range(len(node)) for q in at_items(position[:cut] + [i] + position[cut + 1:], value)]
