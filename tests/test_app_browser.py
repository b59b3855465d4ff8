"""A real browser on the app: headless Chromium (Debian's package, installed by `make test` where missing)
opens the page, runs a match on an example pair, waits for it and reads the rendered result."""
import os
import re
import shutil
import socket
import time
from pathlib import Path

import pytest
import yaml

import app as app_module
from probe.models import defaults_for, presets

pytestmark = pytest.mark.slow   # a whole module of end-to-end runs

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    """The app on 127.0.0.1 with 25 default steps: the hardware's and the mini-CLIP's own (its visitor defaults)."""
    raw = yaml.safe_load((ROOT / "space_config.yml").read_text())
    raw["default_steps"] = {"cpu": 25, "gpu": 25}
    path = tmp_path_factory.mktemp("browser") / "config.yml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(presets()["mini-clip"].defaults, "fast", {**defaults_for("mini-clip", "fast"), "steps": 25})
        demo = app_module.build(app_module.create_app(str(path), device="cpu", hardware="cpu"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        yield f"http://127.0.0.1:{port}/"
        demo.close()


def summary_of(page, source: str, target: str, seconds: float = 60) -> str:
    """The page's text once its summary names this source and target (the streamed outputs arrive in turn)."""
    deadline = time.monotonic() + seconds
    while True:
        text = page.inner_text("body")
        if re.search(rf'"source"\s*:\s*"{re.escape(source)}"', text) and \
                re.search(rf'"target"\s*:\s*"{re.escape(target)}"', text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"the summary is not of the example clicked ({source} -> {target}); "
                                 f"the page reads: {text[-600:]}")
        page.wait_for_timeout(500)


def test_a_visitor_runs_an_example_match(page_url, tmp_path):
    if CHROMIUM is None:
        pytest.fail("headless Chromium is missing: `make test` installs Debian's chromium package "
                    "(apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 1800})
        page.goto(page_url, wait_until="domcontentloaded")
        expect(page.get_by_text("Pictures that look the same to you")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Example result, precomputed with the shipped mini-CLIP")).to_be_visible(timeout=60_000)
        page.get_by_text("example pairs").scroll_into_view_if_needed()
        page.locator(".gallery-item, tr.tr-body, button.gallery").nth(1).click()   # coffee -> green square
        expect(page.locator("img[src*='coffee']").first).to_be_visible(timeout=60_000)   # the example is in place
        page.get_by_role("button", name="Match", exact=True).click()
        expect(page.get_by_text("ran 25 steps, the cap").first).to_be_visible(timeout=240_000)
        expect(page.get_by_text("x 213 pixels (the source's resolution)")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("green square").first).to_be_visible(timeout=60_000)
        text = summary_of(page, "coffee.png", "green_square.png")
        initial = float(re.search(r'"cos_to_target_initial"\s*:\s*([-0-9.]+)', text).group(1))
        saved = float(re.search(r'"cos_to_target_png"\s*:\s*([-0-9.]+)', text).group(1))
        assert saved > initial + 0.5 and saved > 0.8, (initial, saved)   # the rendered numbers of this run
        shot = tmp_path / "app-match.png"
        page.screenshot(path=str(shot), full_page=True)
        target = os.environ.get("PROBE_SCREENSHOT")
        if target:
            shutil.copy(shot, target)
        assert shot.stat().st_size > 10_000
        browser.close()
