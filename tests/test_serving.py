"""The server-side pieces of the app, without a server: the one model cache, streaming under a time cap, workspace,
request checks derived from the settings' declarations."""
import os
import time

import pytest

from probe.errors import ProbeError
from probe.models import EncoderCache
from probe.serving import Workspace, load_config, stream
from probe.zeroshot import parse_labels


def test_model_cache_keeps_the_most_recent_few():
    loads = []
    cache = EncoderCache(2, loader=lambda spec, device, dtype: loads.append(spec) or f"encoder of {spec}")
    for spec in ("a", "b", "a", "c", "a", "b"):
        assert cache.get(spec) == f"encoder of {spec}"
    assert loads == ["a", "b", "c", "b"]        # "b" was dropped when "c" came, "a" stayed in use
    assert [key[0] for key in cache.encoders] == ["a", "b"]


def test_stream_reports_progress_then_the_result():
    def call(progress):
        for step in range(5):
            progress("match", step, 5, {"loss": 1.0 / (step + 1)})
        return "done"

    updates = list(stream(call, time_cap=60, every=0.0))
    assert updates[-1].result == "done" and not updates[-1].timed_out
    assert [row["step"] for row in updates[-1].history] == [0, 1, 2, 3, 4]


def test_stream_stops_a_call_at_the_time_cap_and_raises_its_errors():
    def forever(progress):
        step = 0
        while progress("match", step, 0, {}) is not False:
            step += 1
            time.sleep(0.01)
        return step

    last = list(stream(forever, time_cap=0.3))[-1]
    assert last.timed_out and last.result > 0

    def broken(progress):
        raise ProbeError("bad input")

    with pytest.raises(ProbeError, match="bad input"):
        list(stream(broken, time_cap=5))


def test_workspace_removes_old_request_folders(tmp_path):
    space = Workspace(tmp_path / "space", max_age=60)
    old = space.new("match")
    os.utime(old, (time.time() - 120, time.time() - 120))
    fresh = space.new("match")
    assert not old.exists() and fresh.exists()


def test_request_parameters_are_checked_against_the_declarations_and_the_limits():
    config = load_config(hardware="cpu")
    mini = "mini-CLIP (offline, shapes and colours)"
    assert config.settings(mini, "fast", "7", 0.01).steps == 7
    with pytest.raises(ProbeError, match="steps must be a whole number"):
        config.settings(mini, "fast", 2.5, 0.01)
    with pytest.raises(ProbeError, match="budget must be a number"):
        config.settings(mini, "fast", 10, "lots")
    with pytest.raises(ProbeError, match=rf"steps must be in \[1, {config.limits.max_steps}\]"):
        config.settings(mini, "fast", config.limits.max_steps + 1, 0.01)   # the server's limit, not the library's
    with pytest.raises(ProbeError, match=r"budget must be in \(0, 0.25\]"):
        config.settings(mini, "fast", 10, 0)                               # fast mode needs a budget
    assert config.settings(mini, "paper", 10, 0).budget is None            # paper: 0 means none, as the authors
    assert parse_labels(" a, b ,", ["x", "y"]) == ["a", "b"] and parse_labels("", ["x", "y"]) == ["x", "y"]
    with pytest.raises(ProbeError, match="at least 2"):
        parse_labels("only", [])


def test_config_picks_values_by_hardware():
    cpu, gpu = load_config(hardware="cpu"), load_config(hardware="gpu")
    assert cpu.limits.time_cap_seconds != gpu.limits.time_cap_seconds or cpu.default_steps != gpu.default_steps
    assert cpu.spec("CLIP ViT-B/32 (LAION-2B)") == "openclip:ViT-B-32@laion2b_s34b_b79k"
    with pytest.raises(ProbeError, match="is not offered here"):
        cpu.spec("openclip:ViT-L-14@openai")
