"""The CLI contract: files and summary keys, clear one-line errors with no traceback."""
import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from probe.cli import main
from probe.images import load_image

ROOT = Path(__file__).resolve().parents[1]
CAT, ROCKET = ROOT / "examples" / "cat.png", ROOT / "examples" / "rocket.png"
SUMMARY_KEYS = {"model", "weights", "mode", "steps_run", "converged", "status", "start", "cos_to_target_initial",
                "cos_to_target_final", "cos_to_target_png", "cos_to_target_png_reference", "l2_to_target_initial",
                "l2_to_target_final", "linf_pixel", "l2_pixel", "mean_abs_pixel", "psnr_db", "psnr_db_png",
                "resolution", "seconds", "seed", "settings", "versions"}


@pytest.mark.parametrize("mode", ["fast", "paper"])
def test_match_writes_the_contract(tiny_encoder, tmp_path, mode):
    """Every file and summary key; the summary's numbers are those of the saved files, recomputed here from the
    model's embeddings: matched.png re-embedded (probe's preprocessing and open_clip's own) against the rocket,
    the start against the rocket (also trace.csv's first row), matched.png's PSNR against the start."""
    extra = ["--lr", "100"] if mode == "paper" else []
    code = main(["match", "--model", "tiny", "--source", str(CAT), "--target", str(ROCKET), "--out",
                 str(tmp_path), "--mode", mode, "--steps", "10", "--quiet", *extra])
    assert code == 0
    for name in ("matched.png", "source.png", "diff_x50.png", "trace.csv", "curves.png", "curves.json",
                 "summary.json"):
        assert (tmp_path / name).is_file(), name
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["weights"] == "random:0" and summary["mode"] == mode

    model, transform = tiny_encoder.model, tiny_encoder.reference_transform
    matched = load_image(tmp_path / "matched.png")
    with torch.no_grad():
        if mode == "paper":   # open_clip's preprocessing of both files: the authors' start and target
            start = transform(Image.open(CAT))[None]
            source = tiny_encoder.denormalize(start).clamp(0, 1)[0]
            source_emb, target = model.encode_image(start), model.encode_image(transform(Image.open(ROCKET))[None])
        else:                 # the files' own pixels through probe's preprocessing
            source = load_image(CAT)
            source_emb, target = tiny_encoder(source[None]), tiny_encoder(load_image(ROCKET)[None])
        png = tiny_encoder(matched[None])
        reference = model.encode_image(transform(Image.open(tmp_path / "matched.png"))[None])

    def cos(emb):
        return float(F.cosine_similarity(emb, target)[0])

    assert summary["cos_to_target_initial"] == pytest.approx(cos(source_emb), abs=1e-6)
    assert summary["cos_to_target_png"] == pytest.approx(cos(png), abs=1e-6)
    assert summary["cos_to_target_png_reference"] == pytest.approx(cos(reference), abs=1e-6)
    assert cos(png) > cos(source_emb) + 0.05   # 0.89 -> 0.96 (paper), 0.99 (fast)
    assert summary["l2_to_target_final"] < summary["l2_to_target_initial"]
    assert summary["psnr_db_png"] == pytest.approx(-10 * math.log10(float((matched - source).square().mean())),
                                                   abs=1e-3)
    lines = (tmp_path / "trace.csv").read_text().splitlines()
    assert lines[0].startswith("step,loss,cos_to_target")
    assert len(lines) == summary["steps_run"] + 2  # header + step 0 + one row per update
    assert float(lines[1].split(",")[2]) == pytest.approx(cos(source_emb), abs=1e-6)
    if mode == "paper":   # the model's resolution, started from open_clip's own preprocessing
        assert summary["resolution"] == [224, 224] and summary["start"].startswith("open_clip's preprocess")
    else:                 # the source's own resolution, within the default 8/255 budget
        assert summary["resolution"] == [213, 320] and (matched - source).abs().max() <= 8 / 255 + 1e-6


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


@pytest.mark.slow
def test_no_traceback_from_a_real_process(tmp_path):
    result = subprocess.run([sys.executable, "-m", "probe", "match", "--model", "openclip:ViT-B-32@openai",
                             "--source", str(CAT), "--target", str(ROCKET), "--out", str(tmp_path)],
                            capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: could not load openclip:ViT-B-32@openai")


@pytest.mark.slow
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


def run_and_read(folder: Path, capsys, *options: str) -> tuple[str, dict, list[dict]]:
    """A mini-CLIP match of the cat to the rocket: the line printed first, the summary and trace.csv's rows."""
    assert main(["match", "--model", "mini-clip", "--source", str(CAT), "--target", str(ROCKET), "--out",
                 str(folder), "--quiet", *options]) == 0
    with open(folder / "trace.csv", newline="") as trace:
        rows = [{key: float(value) for key, value in row.items()} for row in csv.DictReader(trace)]
    return capsys.readouterr().out.splitlines()[0], json.loads((folder / "summary.json").read_text()), rows


def test_status_line_says_what_was_reached(tmp_path, capsys):
    """The printed status is the summary's and matches trace.csv: the steps counted, whether the rule was met
    (checked on every row here), and the iterate kept (its distance is the best row's or the last row's)."""
    line, summary, rows = run_and_read(tmp_path / "a", capsys, "--steps", "5")
    status = ("ran 5 steps, the cap, without meeting the stopping rule (l2 <= 0.01 x initial l2); "
              "kept the best iterate")
    assert line.startswith(status + ": cos to target") and summary["status"] == status
    assert len(rows) == 6 and all(row["l2_to_target"] > 0.01 * rows[0]["l2_to_target"] for row in rows)
    best = min(rows, key=lambda row: row["loss"])
    assert summary["l2_to_target_final"] == pytest.approx(best["l2_to_target"], rel=1e-5)

    def met(row, l2sq_below, cos_above):
        return row["l2_to_target"] ** 2 < l2sq_below and row["cos_to_target"] > cos_above

    line, summary, rows = run_and_read(tmp_path / "b", capsys, "--mode", "paper", "--steps", "3")
    status = ("ran 3 steps, the cap, without meeting the stopping rule (l2^2 < 16 and cos > 0.96); "
              "kept the last iterate")
    assert line.startswith(status + ": cos to target") and summary["status"] == status
    assert len(rows) == 4 and not any(met(row, 16, 0.96) for row in rows)
    assert summary["l2_to_target_final"] == pytest.approx(rows[-1]["l2_to_target"], rel=1e-5)

    # l2^2 < 30 holds from about step 10, cos > 0.93 only from about step 20: the run stops where both first hold
    line, summary, rows = run_and_read(tmp_path / "c", capsys, "--mode", "paper", "--steps", "400",
                                       "--l2sq-below", "30", "--cos-above", "0.93")
    steps = len(rows) - 1
    status = f"met the stopping rule (l2^2 < 30 and cos > 0.93) after {steps} steps"
    assert line.startswith(status + ": cos to target") and summary["status"] == status
    assert summary["steps_run"] == steps and summary["converged"] and met(rows[-1], 30, 0.93)
    assert not any(met(row, 30, 0.93) for row in rows[:-1])
    assert any(row["l2_to_target"] ** 2 < 30 for row in rows[:-1])   # the L2 test alone would have stopped earlier
