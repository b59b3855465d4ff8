"""The server-side pieces of the app, without a server: model cache, streaming under a time cap, workspace."""
import os
import time

import pytest

from probe.errors import ProbeError
from probe.serving import ModelCache, Workspace, check_number, load_config, parse_labels, stream


def test_model_cache_keeps_the_most_recent_few():
    loads = []
    cache = ModelCache(2, loader=lambda spec: loads.append(spec) or f"encoder of {spec}")
    for spec in ("a", "b", "a", "c", "a", "b"):
        assert cache.get(spec) == f"encoder of {spec}"
    assert loads == ["a", "b", "c", "b"]        # "b" was dropped when "c" came, "a" stayed in use
    assert list(cache.models) == ["a", "b"]


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


def test_parameters_and_labels_are_checked():
    assert check_number("7", "steps", 1, 10, integer=True) == 7
    with pytest.raises(ProbeError, match="steps must be a whole number"):
        check_number(2.5, "steps", 1, 10, integer=True)
    with pytest.raises(ProbeError, match="budget must be a number"):
        check_number("lots", "budget", 0, 1)
    assert parse_labels(" a, b ,", ["x", "y"]) == ["a", "b"] and parse_labels("", ["x", "y"]) == ["x", "y"]
    with pytest.raises(ProbeError, match="at least 2"):
        parse_labels("only", [])


def test_config_picks_values_by_hardware():
    cpu, gpu = load_config(hardware="cpu"), load_config(hardware="gpu")
    assert cpu.limits.time_cap_seconds != gpu.limits.time_cap_seconds or cpu.default_steps != gpu.default_steps
    assert cpu.spec("CLIP ViT-B/32 (LAION-2B)") == "openclip:ViT-B-32@laion2b_s34b_b79k"
    with pytest.raises(ProbeError, match="is not offered here"):
        cpu.spec("openclip:ViT-L-14@openai")
