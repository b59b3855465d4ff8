"""The server-side pieces of the app, without a server: the one model cache, streaming under a time cap, workspace,
request checks derived from the settings' declarations."""
import os
import time
from dataclasses import replace
from pathlib import Path

import PIL.Image
import pytest
import torch

from probe.errors import ProbeError
from probe.images import save_png
from probe.models import EncoderCache
from probe.serving import Workspace, byte_size, check_image, load_config, stream
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


@pytest.mark.parametrize("hardware", ["cpu", "gpu"])
def test_the_app_and_the_cli_give_the_mini_clip_the_same_match_settings(hardware):
    """The mini-CLIP's visitor defaults are one per-model entry: the app's default match (its steps and budget
    as the UI fills them) and `probe match --model mini-clip` get the same settings, on either hardware."""
    from probe.cli import build_parser
    from probe.cli.match_cmd import settings_from_args
    from probe.matching import FastSettings

    config = load_config(hardware=hardware)
    mini = "mini-CLIP (offline, shapes and colours)"
    app = config.settings(mini, "fast", config.steps_for(mini), FastSettings().budget)
    examples = Path(__file__).resolve().parents[1] / "examples"
    cat, star = str(examples / "cat.png"), str(examples / "shapes" / "blue_star.png")
    args = build_parser().parse_args(["match", "--source", cat, "--target", star, "--model", "mini-clip", "--out",
                                      "x"])
    cli = settings_from_args(args)
    assert replace(app, max_pixels=cli.max_pixels) == cli
    assert app.steps == config.steps_for(mini) == cli.steps


def test_config_picks_values_by_hardware():
    cpu, gpu = load_config(hardware="cpu"), load_config(hardware="gpu")
    assert cpu.limits.time_cap_seconds != gpu.limits.time_cap_seconds or cpu.default_steps != gpu.default_steps
    assert cpu.spec("CLIP ViT-B/32 (LAION-2B)") == "openclip:ViT-B-32@laion2b_s34b_b79k"
    with pytest.raises(ProbeError, match="is not offered here"):
        cpu.spec("openclip:ViT-L-14@openai")


def test_an_upload_over_the_byte_limit_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    """A small valid PNG one byte over the limit is refused with a message giving its size and the limit (exact
    counts where rounding would show them equal), without PIL ever opening it; at exactly the limit the same
    file is accepted (and decoded)."""
    path = tmp_path / "noise.png"
    save_png(torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0)), path)
    size = path.stat().st_size
    assert size < 2**11
    limits = replace(load_config(hardware="cpu").limits, max_upload_bytes=size - 1)
    opened = []
    real_open = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda *args, **kwargs: opened.append(args) or real_open(*args, **kwargs))
    with pytest.raises(ProbeError) as refused:
        check_image(path, limits, "source")
    assert str(refused.value) == f"source (noise.png): the file is {size:,} bytes; the limit here is {size - 1:,} bytes"
    assert opened == []
    big = replace(limits, max_upload_bytes=2**20)
    assert byte_size(2**20 + 2**18) == "1.2 MiB" and byte_size(3 * 2**10) == "3.0 KiB" and byte_size(87) == "87 bytes"
    assert "the file is 1.2 MiB; the limit here is 1.0 MiB" in refusal(tmp_path, 2**20 + 2**18, big)
    image, notes = check_image(path, replace(limits, max_upload_bytes=size), "source")
    assert image.size == (16, 16) and notes == [] and opened


def refusal(folder, size: int, limits) -> str:
    """check_image's message for a file of `size` bytes (a PNG header, then padding: refused before decoding)."""
    path = folder / f"padded-{size}.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(size - 8))
    with pytest.raises(ProbeError) as refused:
        check_image(path, limits, "source")
    return str(refused.value)


def test_upload_checks_at_their_edges(tmp_path):
    """No upload (None or an empty path) is refused as such, under the default name `image`; a file at exactly the
    pixel limit is accepted and one pixel over refused; a file that is not an image is refused as one (even under a
    zero pixel limit: its unreadable header counts no pixels); sizes that round to the same text are given exactly."""
    limits = load_config(hardware="cpu").limits
    for missing in (None, ""):
        with pytest.raises(ProbeError) as refused:
            check_image(missing, limits)
        assert str(refused.value) == "image: no image given"
    path = tmp_path / "noise.png"
    save_png(torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0)), path)
    image, notes = check_image(path, replace(limits, max_upload_pixels=256), "source")
    assert image.size == (16, 16) and notes == []
    with pytest.raises(ProbeError, match="16x16 pixels is more than the 255 allowed"):
        check_image(path, replace(limits, max_upload_pixels=255), "source")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ProbeError, match="not an image"):
        check_image(text, replace(limits, max_upload_pixels=0), "source")
    close = replace(limits, max_upload_bytes=2**20)
    assert "the file is 1,048,577 bytes; the limit here is 1,048,576 bytes" in refusal(tmp_path, 2**20 + 1, close)


def test_byte_sizes_switch_units_at_a_kibibyte_and_a_mebibyte():
    """Counts below 1024 are bytes, from 1024 KiB, from 2^20 MiB (one decimal)."""
    assert [byte_size(n) for n in (1023, 1024, 2047, 2048, 2**20 - 1, 2**20)] == \
        ["1023 bytes", "1.0 KiB", "2.0 KiB", "2.0 KiB", "1024.0 KiB", "1.0 MiB"]


@pytest.mark.parametrize("fmt", ["JPEG", "BMP"])
def test_still_formats_without_frames_pass_without_notes(tmp_path, fmt):
    """JPEG and BMP images (PIL gives them no frame count) come back as they are, with no note."""
    path = tmp_path / f"still.{fmt.lower()}"
    PIL.Image.new("RGB", (8, 6), (200, 30, 10)).save(path, format=fmt)
    image, notes = check_image(path, load_config(hardware="cpu").limits, "source")
    assert image.size == (8, 6) and image.format == fmt and notes == []


def test_an_animated_upload_gives_its_first_frame(tmp_path):
    """An animated GIF (red frame, then blue) gives its first, red frame and a note saying so."""
    path = tmp_path / "anim.gif"
    frames = [PIL.Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    image, notes = check_image(path, load_config(hardware="cpu").limits, "source")
    assert image.convert("RGB").getpixel((4, 4)) == (255, 0, 0)
    assert notes == ["source (anim.gif): an animated image; its first frame was used"]
