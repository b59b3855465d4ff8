"""The CLI contract: files and summary keys, clear one-line errors with no traceback."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probe.cli import main

ROOT = Path(__file__).resolve().parents[1]
CAT, ROCKET = ROOT / "examples" / "cat.png", ROOT / "examples" / "rocket.png"
SUMMARY_KEYS = {"model", "weights", "mode", "steps_run", "converged", "status", "start", "cos_to_target_initial",
                "cos_to_target_final", "cos_to_target_png", "cos_to_target_png_reference", "l2_to_target_initial",
                "l2_to_target_final", "linf_pixel", "l2_pixel", "mean_abs_pixel", "psnr_db", "psnr_db_png",
                "resolution", "seconds", "seed", "settings", "versions"}


@pytest.mark.parametrize("mode", ["fast", "paper"])
def test_match_writes_the_contract(tmp_path, mode):
    extra = ["--lr", "100"] if mode == "paper" else []
    code = main(["match", "--model", "tiny", "--source", str(CAT), "--target", str(ROCKET), "--out",
                 str(tmp_path), "--mode", mode, "--steps", "40", "--quiet", *extra])
    assert code == 0
    for name in ("matched.png", "source.png", "diff_x50.png", "trace.csv", "curves.png", "curves.json",
                 "summary.json"):
        assert (tmp_path / name).is_file(), name
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["weights"] == "random:0" and summary["mode"] == mode
    assert summary["l2_to_target_final"] < summary["l2_to_target_initial"]
    assert summary["cos_to_target_png"] > summary["cos_to_target_initial"]
    lines = (tmp_path / "trace.csv").read_text().splitlines()
    assert lines[0].startswith("step,loss,cos_to_target")
    assert len(lines) == summary["steps_run"] + 2  # header + step 0 + one row per update
    if mode == "paper":   # the model's resolution, started from open_clip's own preprocessing
        assert summary["resolution"] == [224, 224] and summary["start"].startswith("open_clip's preprocess")
    else:                 # the source's own resolution
        assert summary["resolution"] == [213, 320]


def test_models_lists_presets(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "vit-h-14" in out and "ViT-H-14@laion2b_s32b_b79k" in out and "random init" in out


@pytest.mark.parametrize("args,fragment", [
    (["--model", "nope:x"], "BACKEND:NAME"),
    (["--steps", "0"], "--steps must be in [1, 1000000]"),
    (["--lr", "-1"], "--lr must be in (0, inf]"),
    (["--budget", "1.5"], "--budget must be in (0, 1]"),
    (["--source", "missing.png"], "no such file: missing.png"),
    (["--device", "tpu"], "device 'tpu'"),
    (["--mode", "paper", "--optimizer", "adam"], "--optimizer is for --mode fast"),
    (["--model", "openclip:NoSuchNet@random"], "unknown OpenCLIP architecture"),
    (["--target", str(ROOT / "README.md")], "not an image"),
])
def test_bad_arguments_one_clear_line(tmp_path, capsys, args, fragment):
    options = {"--model": "tiny", "--source": str(CAT), "--target": str(ROCKET), "--out": str(tmp_path / "out"),
               "--steps": "2", **dict(zip(args[::2], args[1::2]))}
    argv = ["match", "--quiet", *[part for item in options.items() for part in item]]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()   # checked before anything was created


def test_no_traceback_from_a_real_process(tmp_path):
    result = subprocess.run([sys.executable, "-m", "probe", "match", "--model", "openclip:ViT-B-32@openai",
                             "--source", str(CAT), "--target", str(ROCKET), "--out", str(tmp_path)],
                            capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: could not load openclip:ViT-B-32@openai")


def test_cli_numbers_equal_the_library_call(tmp_path):
    """The CLI is a shell over probe.experiments.match: the same call from Python gives the same numbers."""
    from probe import experiments
    from probe.matching import FastSettings

    assert main(["match", "--model", "mini-clip", "--source", str(CAT), "--target", str(ROCKET), "--out",
                 str(tmp_path), "--steps", "20", "--quiet"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    run = experiments.match("mini-clip", CAT, ROCKET, FastSettings(steps=20)).to_dict()
    for key in ("cos_to_target_final", "cos_to_target_png", "psnr_db_png", "linf_pixel", "steps_run", "settings"):
        assert run[key] == summary[key], key


def test_status_line_says_what_was_reached(tmp_path, capsys):
    assert main(["match", "--model", "mini-clip", "--source", str(CAT), "--target", str(ROCKET), "--out",
                 str(tmp_path / "a"), "--steps", "5", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "NOT" not in out and out.startswith("ran 5 steps, the cap, without meeting the stopping rule")
    assert "kept the best iterate" in out
    assert main(["match", "--model", "mini-clip", "--mode", "paper", "--source", str(CAT), "--target", str(ROCKET),
                 "--out", str(tmp_path / "b"), "--steps", "3", "--quiet"]) == 0
    assert "kept the last iterate" in capsys.readouterr().out
    assert main(["match", "--model", "mini-clip", "--mode", "paper", "--source", str(CAT), "--target",
                 str(ROCKET), "--out", str(tmp_path / "c"), "--steps", "400", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("met the stopping rule (l2^2 < 16 and cos > 0.96) after")
