"""The Gradio app, driven as its users drive it: launched on 127.0.0.1 with the mini-CLIP and tiny models and
called through gradio_client, bad input included, under load, cancelled; its settings against the Space's."""
import hashlib
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

from app_helpers import CAT, CIRCLE, COFFEE, MINI, ROOT, STAR, config_file, launch  # noqa: E402
from probe.serving import WORKER_NAME, caption_of, load_config, precomputed  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = config_file(tmp_path_factory.mktemp("app"), time_cap_seconds=60, concurrent_jobs=2, max_steps=400,
                       max_upload_pixels=4_000_000)
    demo, url, app = launch(path)
    yield url, app
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server[0], verbose=False)


def test_offline_start_uses_the_shipped_model_and_says_so(server):
    url, app = server
    assert app.default_model == MINI and app.fallback
    note = app.weights_note()
    assert "mini-clip@sha256:" in note and "Hub cannot be reached" in note


def test_match_streams_and_ends_with_png_then_summary(client):
    job = client.submit(source=handle_file(CAT), target=handle_file(STAR), model=MINI, mode="fast", steps=60,
                        budget=8 / 255, api_name="/match")
    outputs = job.result()
    updates = job.outputs()
    assert len(updates) >= 2   # intermediate curves came before the result
    matched, summary = outputs[0], outputs[-1]
    with Image.open(matched) as picture, Image.open(CAT) as original:
        assert picture.size == original.size and picture.format == "PNG"   # the source's resolution
    assert summary["cos_to_target_png"] > summary["cos_to_target_initial"] + 0.3
    assert summary["linf_pixel_png"] <= 8 / 255 + 1e-6 and summary["psnr_db_png"] > 30
    assert summary["weights"].startswith("mini-clip@sha256:") and summary["steps_run"] == 60
    assert outputs[4]["label"] == "blue star"   # the zero-shot view of the saved PNG
    assert Path(outputs[5]).name == "pca_bars.png" and summary["pca"][2] != summary["pca"][0]  # the PCA view
    assert Path(outputs[6]).suffix == ".zip"


def _pixels(path) -> torch.Tensor:
    """An image file as the test reads it, without probe: its 8-bit values / 255, (3,H,W)."""
    with Image.open(path) as picture:
        assert picture.mode == "RGB"   # 8 bits a channel, no alpha
        return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255).permute(2, 0, 1)


def test_after_numbers_are_those_of_the_returned_png(client, mini_clip):
    """The summary's "after" cosine, PSNR and peak change are the returned 8-bit matched.png's: the test reopens
    that file, embeds it with the shipped mini-CLIP (the weights the app names) and gets them again. The same
    float32 computation on the same pixels agrees to ~1e-6; the float image before its rounding to 8 bits is
    ~7e-4 off in cosine and ~0.03 dB in PSNR here, outside the 1e-4 and 0.01 dB allowed."""
    outputs = client.predict(source=handle_file(CAT), target=handle_file(STAR), model=MINI, mode="fast", steps=10,
                             budget=8 / 255, api_name="/match")
    summary, matched, source = outputs[-1], _pixels(outputs[0]), _pixels(CAT)
    assert summary["weights"] == mini_clip.describe()["weights"]
    with torch.no_grad():
        after, target = mini_clip(matched[None]), mini_clip(_pixels(STAR)[None])
    cosine = torch.nn.functional.cosine_similarity(after, target).item()
    psnr = 10 * np.log10(1 / (matched - source).pow(2).mean().item())
    assert summary["cos_to_target_png"] == pytest.approx(cosine, abs=1e-4)
    assert summary["psnr_db_png"] == pytest.approx(psnr, abs=0.01)
    assert summary["linf_pixel_png"] == pytest.approx((matched - source).abs().max().item(), abs=1e-6)


def test_survive_option_through_the_api_and_the_caption(client):
    outputs = client.predict(source=handle_file(CAT), target=handle_file(STAR), model=MINI, steps=10, survive=True,
                             api_name="/match")
    summary = outputs[-1]
    assert summary["settings"]["survive"] == ["jpeg", "resize"] and summary["settings"]["keeps"] == "last iterate"
    jpeg75 = summary["survival"]["jpeg75"]
    assert jpeg75["read_as"] and -1 <= jpeg75["cos_to_target"] <= 1
    assert f"After JPEG 75: read as {jpeg75['read_as']}, cosine {jpeg75['cos_to_target']:.3f}" in caption_of(summary)
    with pytest.raises(Exception, match="survive is an option of the fast mode"):
        client.predict(source=handle_file(CAT), target=handle_file(STAR), model=MINI, mode="paper", steps=2,
                       survive=True, api_name="/match")


def test_paper_mode_returns_the_models_resolution(client):
    outputs = client.predict(source=handle_file(COFFEE), target=handle_file(STAR), model="tiny", mode="paper",
                             steps=3, budget=0, api_name="/match")
    with Image.open(outputs[0]) as picture:
        assert picture.size == (224, 224)
    summary = outputs[-1]
    assert summary["settings"]["mode"] == "paper" and summary["start"].startswith("open_clip's preprocess")


@pytest.mark.slow
def test_model_by_allowlisted_spec_and_other_views(client):
    spectrum, lipschitz, directions, summary = client.predict(image=handle_file(CAT), model="mini-clip",
                                                              method="auto", k=3, api_name="/inspect")
    assert summary["method_used"] == "exact" and summary["numerical_rank"] == 62 and len(directions) == 3
    assert Path(spectrum).is_file() and Path(lipschitz).is_file()
    gallery, matrix, cosines, archive, record = client.predict(
        sources=[handle_file(CAT), handle_file(COFFEE)], target=handle_file(STAR), model=MINI, steps=80,
        budget=8 / 255, api_name="/equivalence")
    assert len(gallery) == 2 and record["predicted_after"] == ["blue star", "blue star"]
    gallery, matrix, cosines, archive, record = client.predict(
        source=handle_file(CAT), targets=[handle_file(STAR), handle_file(CIRCLE)], model=MINI, steps=80,
        budget=8 / 255, api_name="/one_to_many")
    assert record["layout"] == "one source -> many targets" and record["cosine_between_matched"][0][1] < 0.8
    plot, probabilities = client.predict(images=[handle_file(CAT), handle_file(STAR)],
                                         labels="blue star, orange circle, red square", model=MINI,
                                         api_name="/classify")
    assert probabilities["predictions"] == ["orange circle", "blue star"]


def _truncated(tmp_path) -> str:
    data = Path(CAT).read_bytes()
    path = tmp_path / "truncated.png"
    path.write_bytes(data[: len(data) // 3])
    return str(path)


def _huge(tmp_path) -> str:
    path = tmp_path / "huge.png"
    Image.new("L", (2500, 2000)).save(path)   # 5 MP, over the test server's 4 MP limit, tiny file
    return str(path)


@pytest.mark.parametrize("change,fragment", [
    ({"source": "README.md"}, "not an image"),
    ({"source": "truncated"}, "damaged or truncated"),
    ({"source": "empty"}, "empty"),
    ({"source": "huge"}, "more than the 4,000,000 allowed"),
    ({"steps": 0}, "steps must be in [1, 400]"),
    ({"steps": 10**6}, "steps must be in [1, 400]"),
    ({"budget": 2.0}, "budget must be in (0, 0.25]"),
    ({"budget": 0.0}, "budget must be in (0, 0.25]"),
    ({"mode": "bogus"}, "bogus"),
    ({"model": "openclip:ViT-L-14@openai"}, "is not offered here"),
])
def test_bad_input_gets_a_clear_error_and_the_app_goes_on(client, tmp_path, change, fragment):
    files = {"README.md": str(ROOT / "README.md"), "truncated": _truncated(tmp_path), "huge": _huge(tmp_path)}
    (tmp_path / "empty.png").write_bytes(b"")
    files["empty"] = str(tmp_path / "empty.png")
    request = {"source": CAT, "target": STAR, "model": MINI, "mode": "fast", "steps": 5, "budget": 8 / 255} | change
    for key in ("source", "target"):
        request[key] = handle_file(files.get(request[key], request[key]))
    with pytest.raises(Exception) as error:
        client.predict(**request, api_name="/match")
    assert fragment in str(error.value), str(error.value)
    assert "/tmp/" not in str(error.value)   # the upload is named, not the server's copy of it
    outputs = client.predict(source=handle_file(CAT), target=handle_file(STAR), model=MINI, steps=2,
                             api_name="/match")
    assert outputs[-1]["steps_run"] == 2


def test_animated_image_uses_its_first_frame(client, tmp_path):
    frames = [Image.new("RGB", (64, 64), colour) for colour in ("red", "blue")]
    path = tmp_path / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    outputs = client.predict(source=handle_file(str(path)), target=handle_file(STAR), model=MINI, steps=2,
                             api_name="/match")
    assert any("animated" in note for note in outputs[-1]["notes"])


def test_requests_past_the_time_cap_stop_and_say_so(tmp_path):
    demo, url, _ = launch(config_file(tmp_path, time_cap_seconds=2, max_steps=100000))
    try:
        outputs = Client(url, verbose=False).predict(source=handle_file(CAT), target=handle_file(STAR), model=MINI,
                                                     steps=100000, api_name="/match")
        summary = outputs[-1]
        assert summary["cancelled"] and summary["steps_run"] < 100000
        assert any(note.startswith("stopped at the time cap (2 s)") for note in summary["notes"])
        assert Path(outputs[0]).is_file()   # the partial result is still returned
    finally:
        demo.close()


@pytest.mark.slow
def test_eight_clients_at_once_all_get_results(server):
    url, _ = server
    results, errors = [], []

    def one():
        try:
            out = Client(url, verbose=False).predict(source=handle_file(CAT), target=handle_file(STAR), model=MINI,
                                                     steps=15, api_name="/match")
            results.append(out[-1]["steps_run"])
        except Exception as err:  # collected and reported below
            errors.append(repr(err))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors and results == [15] * 8, errors


def test_cancel_frees_the_slot_at_once(tmp_path):
    demo, url, _ = launch(config_file(tmp_path, concurrent_jobs=1, time_cap_seconds=120, max_steps=100000))
    try:
        client = Client(url, verbose=False)
        long = client.submit(source=handle_file(CAT), target=handle_file(STAR), model=MINI, steps=100000,
                             api_name="/match")
        deadline = time.time() + 60
        while not long.outputs() and time.time() < deadline:   # running: its first curves arrived
            time.sleep(0.2)
        assert long.outputs()
        long.cancel()
        start = time.perf_counter()
        quick = client.predict(source=handle_file(CAT), target=handle_file(STAR), model=MINI, steps=3,
                               api_name="/match")
        assert quick[-1]["steps_run"] == 3 and time.perf_counter() - start < 30
        deadline = time.time() + 10   # the cancelled computation itself stopped, not only its stream
        while any(t.name == WORKER_NAME for t in threading.enumerate()) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(t.name == WORKER_NAME for t in threading.enumerate())
    finally:
        demo.close()


@pytest.mark.slow
def test_precomputed_example_was_made_by_the_shipped_weights():
    from probe import experiments
    from probe.matching import settings_from_dict
    from probe.toy import MINI_CLIP_DIR

    folder = ROOT / "examples" / "precomputed" / "match"
    summary = json.loads((folder / "summary.json").read_text())
    shipped = hashlib.sha256((MINI_CLIP_DIR / "open_clip_model.safetensors").read_bytes()).hexdigest()
    assert summary["weights_sha256"] == shipped, "rerun examples/precompute.py after changing the weights"
    run = experiments.match("mini-clip", ROOT / summary["source"], ROOT / summary["target"],
                            settings_from_dict(summary["settings"]))
    for key in ("cos_to_target_initial", "cos_to_target_png", "psnr_db_png"):
        assert run.values[key] == pytest.approx(summary[key], abs=2e-3), key
    for tab in ("inspect", "equivalence"):   # the other tabs' examples were made by the same weights
        record = json.loads((folder.parent / tab / "summary.json").read_text())
        assert record["weights_sha256"] == shipped and record["weights"] == summary["weights"], tab
    initial = precomputed(ROOT / "examples" / "precomputed")
    assert initial["match"]["summary"] == summary and initial["match"]["after"]["blue star"] > 0.9
    assert len(initial["inspect"][2]) == 4 and all(Path(p).is_file() for p, _ in initial["equivalence"][0])


def test_config_refuses_a_default_outside_the_allowlist(tmp_path):
    from probe.errors import ProbeError

    raw = yaml.safe_load((ROOT / "space_config.yml").read_text())
    raw["default_model"] = {"cpu": "some model", "gpu": "some model"}
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ProbeError, match="'some model' is not in the models allowlist"):
        load_config(path, hardware="cpu")


def test_one_match_through_the_api_the_cli_and_the_app_is_the_same(client, server, tmp_path):
    """Fast mode, 20 steps, L-inf 8/255, seed 0, the source's resolution, the app's pixel cap: the library call, the
    command line and the app's endpoint give the same cosines and the same PNG bytes."""
    from probe import experiments
    from probe.cli import main
    from probe.matching import settings_for
    from probe.results import save

    _, app = server
    cap = app.config.limits.max_pixels
    library = experiments.match("mini-clip", CAT, STAR, settings_for("fast", steps=20, budget=8 / 255, max_pixels=cap),
                                seed=0)
    (tmp_path / "api").mkdir()
    save(library, tmp_path / "api")
    assert main(["match", "--model", "mini-clip", "--source", CAT, "--target", STAR, "--steps", "20", "--budget",
                 str(8 / 255), "--max-pixels", str(cap), "--seed", "0", "--quiet", "--out", str(tmp_path / "cli")]) == 0
    outputs = client.predict(source=handle_file(CAT), target=handle_file(STAR), model=MINI, mode="fast", steps=20,
                             budget=8 / 255, api_name="/match")
    served = outputs[-1]
    cli = json.loads((tmp_path / "cli" / "summary.json").read_text())
    for key in ("cos_to_target_initial", "cos_to_target_final", "cos_to_target_png", "cos_to_target_png_reference",
                "psnr_db_png", "steps_run"):
        assert library.values[key] == cli[key] == served[key], key
    png = (tmp_path / "api" / "matched.png").read_bytes()
    assert png == (tmp_path / "cli" / "matched.png").read_bytes() == Path(outputs[0]).read_bytes()
    assert served["settings"] == cli["settings"] == json.loads((tmp_path / "api" / "summary.json").read_text())["settings"]
    assert {c: v["cos_to_target"] for c, v in served["survival"].items()} == {
        c: v["cos_to_target"] for c, v in cli["survival"].items()}
