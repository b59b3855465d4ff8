"""`repro check` tells broken implementations from the working one. The quick profile's figures that each
broken variant must break are made with the working code (every one "as expected", exit 0), then with: a
matcher that never moves the image, a matcher that hands back the target picture, random weights silently in
place of the mini-CLIP's, a figure that raises, and a requested figure whose JSON is missing. Each makes
`check` say regressed or failed and exit non-zero."""
import json
import shutil
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from probe import matching
from probe.images import from_pil
from probe.models import PRESETS, Preset, presets
from probe.toy import MINI_CLIP_DIR
from repro import check, registry, runner
from repro.cli import main as repro_main
from repro.context import Context
from repro.profiles import get, smoke
from repro.catalog import all_figures

pytestmark = pytest.mark.slow   # a whole module of end-to-end runs

WORKING = [2, 3, 6, 12]   # matching in the authors' procedure and in fast mode, the spectra against the control


def make(out, ids, profile=None):
    figures = all_figures()
    return runner.make_figures(Context(profile or get("quick"), out), [figures[i] for i in ids])


def verdicts(out) -> dict[int, check.Verdict]:
    return {v.figure: v for v in check.verdicts(out)}


@pytest.fixture(scope="module")
def working(tmp_path_factory):
    out = tmp_path_factory.mktemp("working")
    assert set(make(out, WORKING).values()) == {"done"}
    return out


def test_the_working_code_is_as_expected(working, capsys):
    assert repro_main(["check", str(working)]) == 0
    found = verdicts(working)
    assert {found[i].status for i in WORKING} == {"as expected"}
    assert {found[i].against for i in WORKING} == {"project"}
    assert found[10].status == "not run" and "did not request" in found[10].reason
    written = json.loads((working / "verdicts.json").read_text())
    assert written["exit_status"] == 0 and {"figure", "status", "against", "reason"} <= set(written["verdicts"][0])
    assert "as expected" in capsys.readouterr().out and "as expected" in (working / "index.html").read_text()


def test_a_matcher_that_never_moves_the_image_regresses(tmp_path, monkeypatch):
    for rule in (matching.GradientDescent, matching.Adam, matching.SteepestDescent):
        monkeypatch.setattr(rule, "step", lambda self, x, grad, state, step, active: x)
    make(tmp_path, [2, 6])
    found = verdicts(tmp_path)
    assert found[2].status == "regressed" and "cos_to_target_png_min" in found[2].reason
    assert found[6].status == "regressed" and "target_top1_rate" in found[6].reason
    assert repro_main(["check", str(tmp_path)]) == 1


def test_a_matcher_that_returns_the_target_picture_regresses(tmp_path, monkeypatch):
    real = matching.match

    def target_instead(encoder, sources, targets, *args, **kwargs):
        result = real(encoder, sources, targets, *args, **kwargs)
        pictures = [t if torch.is_tensor(t) else from_pil(t) for t in targets] if isinstance(targets, list) else targets
        size = result.images.shape[-2:]
        result.images = torch.cat([F.interpolate(p.reshape(-1, *p.shape[-3:]).float().to(result.images), size=size,
                                                 mode="bilinear", antialias=True) for p in pictures]).clamp(0, 1)
        return result

    monkeypatch.setattr(matching, "match", target_instead)
    make(tmp_path, [2, 6])
    found = verdicts(tmp_path)
    for fid in (2, 6):
        assert found[fid].status == "regressed" and "psnr_db_min" in found[fid].reason, found[fid].reason
    assert found[6].rows and all(ok for r, _, ok in found[6].rows if r.metric == "target_top1_rate")
    assert repro_main(["check", str(tmp_path)]) == 1


def test_random_weights_in_place_of_the_trained_ones_regress(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    shutil.copytree(MINI_CLIP_DIR, folder)
    weights = folder / "open_clip_model.safetensors"
    generator = torch.Generator().manual_seed(0)
    state = {k: (torch.randn(v.shape, generator=generator) * v.float().std().clamp_min(1e-3)).to(v.dtype)
             if v.ndim >= 2 else v for k, v in load_file(weights).items()}
    save_file(state, weights)
    presets()   # the plug-ins have registered theirs: this one replaces the mini-CLIP's
    monkeypatch.setitem(PRESETS, "mini-clip", Preset(f"openclip:local-dir:{folder}", "the mini-CLIP, silently random"))
    out = tmp_path / "out"
    make(out, [3, 12])
    found = verdicts(out)
    for fid in (3, 12):
        assert found[fid].status == "regressed" and "decay_half_over_control" in found[fid].reason, found[fid]
        assert all(r.weights == {} for r, _, _ in found[fid].rows), "a reference pinned to weights was applied"
    assert "not compared: other weights" in found[3].reason   # its quick expectations were measured on others
    assert repro_main(["check", str(out)]) == 1


def test_a_figure_that_raises_is_failed(tmp_path, monkeypatch):
    def broken(ctx):
        raise RuntimeError("deliberately broken recipe")

    monkeypatch.setitem(registry.FIGURES, 12, replace(all_figures()[12], recipe=broken))
    statuses = make(tmp_path, [12, 5], smoke(get("quick")))
    assert statuses[12].startswith("failed: RuntimeError: deliberately broken recipe") and statuses[5] == "done"
    found = verdicts(tmp_path)
    assert found[12].status == "failed" and "deliberately broken recipe" in found[12].reason
    assert "Traceback" in json.loads((tmp_path / "fig12.json").read_text())["traceback"]
    assert repro_main(["check", str(tmp_path)]) == 2


def test_a_requested_figure_without_its_json_is_failed(working, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(working, out)
    (out / "fig6.json").unlink()
    found = verdicts(out)
    assert found[6].status == "failed" and "no complete" in found[6].reason
    assert found[2].status == "as expected" and found[11].status == "not run"
    assert repro_main(["check", str(out)]) == 2
