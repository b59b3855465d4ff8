"""The app as a Hugging Face Space: the front matter Hugging Face builds from agrees with ZeroGPU, the
requirements and space_config.yml; on ZeroGPU every GPU handler is wrapped by `spaces.GPU` with a duration within
its limit and gives the same result as unwrapped; MCP clients reach the tools over streamable HTTP."""
import ast
import asyncio
import base64
import functools
import json
import re
from pathlib import Path

import pytest
import yaml

pytest.importorskip("gradio")

import app as app_module  # noqa: E402
import probe.gradio_parts as gradio_parts  # noqa: E402
from probe.serving import Server, Workspace, hub_repos, load_config  # noqa: E402
from app_helpers import CAT, MINI, STAR, config_file, launch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# ZeroGPU's Python versions, as Hugging Face's ZeroGPU page lists them (read 2026-12, recorded in
# ../shared/FIELD-NOTES.md: "ZeroGPU lists Python 3.10.13 and 3.12.12 and torch 2.8 or later").
ZERO_GPU_PYTHONS = ("3.10.13", "3.12.12")
# The longest duration one ZeroGPU call may ask for: "5 minutes is the maximum time that can be requested at
# once" (ZeroGPU Explorers, huggingface.co/spaces/zero-gpu-explorers/README/discussions/7).
ZERO_GPU_MAX_SECONDS = 300
GPU_ENDPOINTS = {"match", "inspect", "equivalence", "one_to_many", "classify"}


def front_matter() -> dict:
    match = re.match(r"---\n(.*?)\n---\n", (ROOT / "README.md").read_text(), re.S)
    assert match, "README.md must open with the Space front matter"
    return yaml.safe_load(match.group(1))


def test_space_front_matter_config_and_requirements_agree():
    front = front_matter()
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert front["sdk"] == "gradio" and front["sdk_version"] == pins["gradio"]
    assert front["app_file"] == "app.py"
    version = str(front["python_version"])
    assert any(v == version or v.startswith(version + ".") for v in ZERO_GPU_PYTHONS), (version, ZERO_GPU_PYTHONS)
    assert front["suggested_hardware"].startswith("zero-")
    config = load_config(hardware="cpu")
    repos = sorted({repo for spec in config.models.values() for repo in hub_repos(spec)})
    assert sorted(front["models"]) == repos and sorted(front["preload_from_hub"]) == repos
    assert front["short_description"] and len(front["short_description"]) <= 60 and front["license"]
    assert "kornia" in pins and "spaces" not in pins   # ZeroGPU brings its own `spaces`


class SpyGPU:
    """Stands in for the `spaces` package: records what `spaces.GPU(duration=...)` wraps, calls through."""

    def __init__(self):
        self.wrapped: dict[str, object] = {}

    def GPU(self, duration=None, **options):  # noqa: N802 (the package's name)
        def decorate(fn):
            self.wrapped[fn.__name__] = duration

            @functools.wraps(fn)
            def on_gpu(*args, **kwargs):
                return fn(*args, **kwargs)
            on_gpu.on_zero_gpu = True
            return on_gpu
        return decorate


@pytest.fixture
def zero_gpu(monkeypatch, tmp_path):
    spy = SpyGPU()
    monkeypatch.setattr(gradio_parts, "spaces", spy)
    monkeypatch.setattr(gradio_parts, "ZERO_GPU", True)
    server = Server(load_config(hardware="gpu"), "cpu", Workspace(tmp_path / "work"))
    return spy, server, app_module.Views(server)


def test_on_zero_gpu_every_gpu_handler_is_wrapped_within_the_limit(zero_gpu):
    spy, server, views = zero_gpu
    assert set(spy.wrapped) == GPU_ENDPOINTS
    assert all(getattr(views.endpoints[name], "on_zero_gpu", False) for name in GPU_ENDPOINTS)
    limits = server.config.limits
    for model in server.config.models:
        match = spy.wrapped["match"]
        at_defaults = match(CAT, STAR, model)
        at_most = match(CAT, STAR, model, "fast", limits.max_steps, limits.max_budget, "", True)
        paper = match(CAT, STAR, model, "paper", limits.max_steps)
        refused = match(CAT, STAR, model, "fast", "many")   # a request the handler refuses gets the most
        for seconds in (at_defaults, at_most, paper, refused):
            assert isinstance(seconds, int) and 0 < seconds <= ZERO_GPU_MAX_SECONDS, (model, seconds)
        assert at_defaults <= at_most
    for name in GPU_ENDPOINTS - {"match"}:
        seconds = spy.wrapped[name](CAT, MINI) if callable(spy.wrapped[name]) else spy.wrapped[name]
        assert 0 < seconds <= ZERO_GPU_MAX_SECONDS, (name, seconds)


@pytest.mark.slow
def test_on_zero_gpu_a_handler_gives_what_it_gives_unwrapped(zero_gpu):
    _, _, views = zero_gpu
    labels = "red circle, blue star, green square"
    wrapped = views.endpoints["classify"]([CAT, STAR], labels, MINI)[1]
    plain = views.classify([CAT, STAR], labels, MINI)[1]
    assert wrapped["probabilities"] == plain["probabilities"] and wrapped["labels"] == plain["labels"]
    assert max(zip(plain["probabilities"][1], plain["labels"]))[1] == "blue star"

    def last(outputs):
        *_, final = outputs
        return final[-1]

    progress = lambda *a, **k: None  # noqa: E731
    on_gpu = last(views.endpoints["match"](CAT, STAR, MINI, "fast", 5, 8 / 255, labels, False, progress=progress))
    off = last(views.match(CAT, STAR, MINI, "fast", 5, 8 / 255, labels, False, progress=progress))
    assert on_gpu["cos_to_target_png"] == off["cos_to_target_png"] and on_gpu["steps_run"] == 5


def test_mcp_clients_list_and_call_the_tools_over_streamable_http(tmp_path):
    pytest.importorskip("mcp")
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    demo, url, _ = launch(config_file(tmp_path), mcp_server=True)

    async def session_calls():
        async with streamablehttp_client(url + "gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = {tool.name: tool for tool in (await session.list_tools()).tools}
                # a data URL: gradio fetches only public http(s) URLs, and this server is on 127.0.0.1
                image = "data:image/png;base64," + base64.b64encode(Path(STAR).read_bytes()).decode()
                answer = await session.call_tool("classify", {"images": [image], "model": MINI,
                                                              "labels": "red circle, blue star, green square"})
                return tools, answer

    try:
        tools, answer = asyncio.run(session_calls())
    finally:
        demo.close()
    assert GPU_ENDPOINTS <= set(tools), sorted(tools)
    assert "L-inf budget in [0,1] pixels" in tools["match"].description + json.dumps(tools["match"].inputSchema)
    assert not answer.isError, answer
    text = next(c.text for c in answer.content if getattr(c, "text", None))
    record = next(item for item in ast.literal_eval(text) if isinstance(item, dict) and "probabilities" in item)
    best = max(zip(record["probabilities"][0], record["labels"]))[1]
    assert best == "blue star", record
