"""repro: every figure's recipe at smoke settings writes its PNG and JSON with the documented keys; the
manifest and report; `check` verdicts; resume (skip finished, redo corrupt or changed); a sweep killed
mid-run resumes to the same numbers; clear one-line errors."""
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from repro import check, runner
from repro.context import Context
from repro.profiles import get, smoke
from repro.catalog import all_figures, parse_selection

ROOT = Path(__file__).resolve().parents[1]
RECORD_KEYS = {"figure", "title", "kind", "label", "tests", "claim", "design", "profile", "fingerprint", "settings",
               "seed", "threads", "device", "dtype", "models", "images", "substitutions", "notes", "metrics", "data",
               "seconds", "created", "png_sha256", "complete"}


def run(profile, out, ids, **kwargs):
    figures = all_figures()
    return runner.make_figures(Context(profile, out), [figures[i] for i in ids], **kwargs)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """All 21 figures of the quick profile at smoke settings (one run shared by the tests below)."""
    out = tmp_path_factory.mktemp("repro") / "quick"
    statuses = run(smoke(get("quick")), out, list(all_figures()))
    return out, statuses


def test_every_recipe_writes_png_json_manifest_and_report(smoke_run):
    out, statuses = smoke_run
    assert set(statuses.values()) == {"done"} and len(statuses) == 21
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["figures"]) == {str(i) for i in range(1, 22)}
    assert manifest["models"]["main"]["spec"] == "mini-clip" and len(manifest["models"]["main"]["sha256"]) == 64
    assert manifest["images"]["sweep"]["source"].startswith("toy:shapes") and manifest["git"]["commit"]
    assert {"versions", "device", "dtype", "seed", "threads", "engine", "profile"} <= set(manifest)
    page = (out / "index.html").read_text()
    for fid, figure in all_figures().items():
        png, record_path = runner.paths(out, fid)
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width > 500
        record = json.loads(record_path.read_text())
        assert RECORD_KEYS <= set(record), RECORD_KEYS - set(record)
        assert set(figure.metrics) <= set(record["metrics"]), (fid, set(figure.metrics) - set(record["metrics"]))
        assert record["kind"] == ("faithful" if fid <= 5 else "reconstruction" if fid <= 20 else "beyond the paper")
        assert record["substitutions"], f"fig{fid} does not say what the quick profile substituted"
        assert record["data"] and record["profile"] == "quick-smoke"
        assert f"src='fig{fid}.png'" in page
    assert "mini-CLIP (64 px, trained on generated shapes) stands in for OpenCLIP ViT-H-14" in json.loads(
        (out / "fig1.json").read_text())["substitutions"]


def test_check_reports_regressed_on_off_numbers(smoke_run, capsys):
    out, _ = smoke_run
    from repro.cli import main

    assert main(["check", str(out)]) == 1      # 3 matching steps: the quick expectations fail
    printed = capsys.readouterr().out
    assert "fig10  regressed (against the project)" in printed and "success_rate" in printed
    verdicts = {v.figure: v for v in check.verdicts(out)}
    assert verdicts[10].status == "regressed" and verdicts[10].against == "project"


def test_check_verdicts_on_hand_made_records():
    pinned = check.Reference(10, "matched_accuracy", "<=", 0.0, 0.05, ("quick",), "test", "project",
                             {"main": "mini-clip"}, {"main": "e8b3d7265d24"})
    relative = check.Reference(10, "ranks", ">=", 62, 0, ("quick",), "test", "project", reduce="min")
    claim = check.Reference(10, "matched_accuracy", "<=", 0.0, 0.05, ("paper",), "test", "paper")
    record = {"profile": "quick", "models": {"main": {"spec": "mini-clip", "sha256": "e8b3d7265d24" + "0" * 52}},
              "metrics": {"matched_accuracy": 0.04, "ranks": [62, 63]}}
    references = [pinned, relative, claim]
    assert check.judge(10, record, references).status == "as expected"
    record["metrics"]["matched_accuracy"] = 0.2
    verdict = check.judge(10, record, references)
    assert (verdict.status, verdict.against) == ("regressed", "project") and "matched_accuracy" in verdict.reason
    paper = {**record, "profile": "paper"}
    assert (check.judge(10, paper, references).status, check.judge(10, paper, references).against) == (
        "not reproduced", "paper")
    paper["metrics"] = {"matched_accuracy": 0.0}
    assert check.judge(10, paper, references).status == "reproduced"
    record["models"]["main"]["sha256"] = "f" * 64                # other weights: the pinned reference stands aside
    verdict = check.judge(10, record, references)
    assert verdict.status == "as expected" and "other weights" in verdict.reason and len(verdict.rows) == 1
    verdict = check.judge(10, record, [pinned])
    assert verdict.status == "not comparable" and verdict.reason.startswith("other weights")
    record["models"]["main"]["spec"] = "clip-b32"
    verdict = check.judge(10, record, [pinned])
    assert verdict.status == "not comparable" and "clip-b32" in verdict.reason
    assert check.judge(10, None, references).status == "failed"
    assert check.judge(10, None, references, requested=False).status == "not run"
    assert check.judge(10, None, references, failure="ValueError: boom").reason == "ValueError: boom"
    assert check.exit_status([check.Verdict(1, "as expected", "project", ""),
                              check.Verdict(2, "not comparable", None, "")]) == 0
    assert check.exit_status([check.Verdict(1, "regressed", "project", ""),
                              check.Verdict(2, "not run", None, "")]) == 1
    assert check.exit_status([check.Verdict(1, "not reproduced", "paper", ""),
                              check.Verdict(2, "failed", None, "")]) == 2


def test_every_figure_has_references_or_a_reason_in_each_profile():
    references, notes = check.load_references()
    for profile in ("quick", "paper"):
        covered = {r.figure for r in references if profile in r.profiles} | {n.figure for n in notes
                                                                             if profile in n.profiles}
        assert covered == set(range(1, 22)), (profile, set(range(1, 22)) - covered)
    for r in references:
        assert r.source and r.figure in all_figures() and r.metric.split("/")[0] in all_figures()[r.figure].metrics, r
        assert (r.against == "paper") == (r.profiles == ("paper",)) or "project expectation" in r.source, r
    for n in notes:
        assert all(m in all_figures()[n.figure].metrics for m in n.metrics), n


def test_resume_skips_finished_and_redoes_corrupt_or_changed(smoke_run, tmp_path):
    from dataclasses import replace

    out = tmp_path / "copy"
    shutil.copytree(smoke_run[0], out)
    profile = smoke(get("quick"))
    assert run(profile, out, [2, 5, 12]) == {2: "skipped", 5: "skipped", 12: "skipped"}
    png5 = runner.paths(out, 5)[0]
    png5.write_bytes(png5.read_bytes()[:500])                   # a torn PNG
    runner.paths(out, 12)[1].write_text('{"figure": 12, "comp')  # a torn record
    changed = replace(profile, knobs={**profile.knobs, 2: {**profile.knobs[2], "pca_k": 5}})
    assert run(changed, out, [2, 5, 12]) == {2: "done", 5: "done", 12: "done"}
    assert run(changed, out, [2, 5, 12]) == {2: "skipped", 5: "skipped", 12: "skipped"}
    runner.paths(out, 12)[1].unlink()      # killed between writing the PNG and its record: not finished
    assert run(changed, out, [12]) == {12: "done"}


def test_changed_weights_under_the_same_spec_rerun(tmp_path):
    from safetensors.torch import load_file, save_file

    from probe.toy import MINI_CLIP_DIR

    folder = tmp_path / "model"
    shutil.copytree(MINI_CLIP_DIR, folder)
    profile = smoke(get("quick")).with_models(main=f"openclip:local-dir:{folder}")
    out = tmp_path / "out"
    assert run(profile, out, [12]) == {12: "done"}
    assert run(profile, out, [12]) == {12: "skipped"}
    weights = folder / "open_clip_model.safetensors"
    state = load_file(weights)
    name = next(k for k in state if k.startswith("visual.proj"))
    state[name] = state[name] * 1.01
    save_file(state, weights)
    assert run(profile, out, [12]) == {12: "done"}


def sweep_profile():
    """Fig 10 at smoke size with 12 steps, in 3 shards of 2 pairs."""
    from dataclasses import replace

    profile = smoke(get("quick"))
    knobs = {**profile.knobs[10], "settings": {**profile.knobs[10]["settings"], "steps": 12}}
    return replace(profile, knobs={**profile.knobs, 10: knobs}, shard_size=2)


KILLED = """
import sys
sys.path.insert(0, sys.argv[2])
from test_repro import run, sweep_profile
run(sweep_profile(), sys.argv[1], [10])
"""


def test_sweep_killed_mid_run_resumes_to_the_same_numbers(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = subprocess.Popen([sys.executable, "-W", "ignore", "-c", KILLED, str(killed), str(Path(__file__).parent)],
                            cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(killed.glob("shards/*/shard-*.pt")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    shards = list(killed.glob("shards/*/shard-*.pt"))
    assert 1 <= len(shards) < 3, "the kill should land between the first and the last of 3 shards"
    assert not (killed / "fig10.json").exists()
    first = {p.name: p.stat().st_mtime_ns for p in shards}
    assert run(sweep_profile(), killed, [10]) == {10: "done"}
    assert all(p.stat().st_mtime_ns == first[p.name] for p in shards), "finished shards must not be redone"
    assert len(list(killed.glob("shards/*/shard-*.pt"))) == 3
    assert run(sweep_profile(), whole, [10]) == {10: "done"}
    a, b = (json.loads((f / "fig10.json").read_text()) for f in (killed, whole))
    assert a["metrics"] == b["metrics"] and a["data"] == b["data"]
    torn = sorted(killed.glob("shards/*/shard-*.pt"))[0]
    torn.write_bytes(torn.read_bytes()[:100])                    # a corrupt shard is run again
    assert run(sweep_profile(), killed, [10], force=True) == {10: "done"}
    assert json.loads((killed / "fig10.json").read_text())["metrics"] == b["metrics"]


def test_ctrl_c_mid_sweep_keeps_finished_shards_and_writes_no_figure(tmp_path):
    def stop_at_second_shard(stage, done, total, metrics):
        return "shard 2/" not in stage

    ctx = Context(sweep_profile(), tmp_path, progress=stop_at_second_shard)
    assert runner.make_figures(ctx, [all_figures()[10], all_figures()[11]]) == {10: "interrupted"}
    assert len(list(tmp_path.glob("shards/*/shard-*.pt"))) == 1 and not (tmp_path / "fig10.json").exists()
    verdicts = {v.figure: v for v in check.verdicts(tmp_path)}
    assert verdicts[10].status == verdicts[11].status == "failed" and "interrupted" in verdicts[10].reason
    assert verdicts[12].status == "not run"


def test_cli_errors_are_one_line(tmp_path, capsys):
    from repro.cli import main

    never = str(tmp_path / "never")
    for args, fragment in [(["fig99"], "unknown figure 99"), (["all", "--figures", "3-1"], "runs backwards"),
                           (["all", "--figures", "1,x"], "expected ids and ranges"),
                           (["all", "--profile", "paper", "--quick"], "contradict"),
                           (["all", "--profile", "fast"], "unknown profile 'fast'"),
                           (["all", "--engine", "spark"], "unknown engine"),
                           (["frobnicate"], "unknown command"), (["check", "/nonexistent"], "no such folder"),
                           (["fig1", "--model", "nosuchrole=mini-clip"], "unknown role"),
                           (["fig1", "--model", "openclip:NoSuchNet@random", "--out", never], "NoSuchNet"),
                           (["fig1", "--model", "openclip:ViT-B-32@openai", "--out", never], "could not load")]:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        lines = err.strip().splitlines()     # progress lines may come first; the error is one line, last
        assert lines[-1].startswith("repro: error:") and fragment in lines[-1], (args, lines)
        assert "Traceback" not in err and sum(line.startswith("repro: error") for line in lines) == 1
    assert parse_selection("1,3-5") == [1, 3, 4, 5]
    no_ray = "import sys, repro.cli, repro.runner, repro.engines; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", no_ray], cwd=ROOT).returncode == 0, "the local engine imported Ray"
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("faithful") == 5 and listing.count("reconstruction") == 15


def test_command_line_overrides_by_role():
    from repro.cli import build_profile, parser

    def profile(*argv):
        return build_profile(parser().parse_args(["all", *argv]))

    paper = profile("--profile", "paper", "--images", "sweep=/data/nette", "--model", "second=mini-clip",
                    "--model", "openclip:hf-hub:org/model", "--threads", "2")
    assert paper.images["sweep"] == "named:imagenette=/data/nette" and paper.images["photos"] == "named:imagenet-paper"
    assert paper.models["main"] == "openclip:hf-hub:org/model" and paper.models["second"] == "mini-clip"
    assert paper.threads == 2 and "main" not in paper.substitutions
    mine = profile("--images", "/data/mine")
    assert set(mine.images.values()) == {"/data/mine"} and not {"photos", "sweep"} & set(mine.substitutions)
    assert profile("--smoke").name == "quick-smoke"


def test_plan_prints_per_figure_estimates_and_a_total(tmp_path, capsys):
    """`repro plan` calibrates the quick profile's models now (seconds on the CPU), and for a device that is not
    here reads the checked-in table and says so; every figure gets its work, time and memory, then the total."""
    from repro.cli import main

    assert main(["plan", "--quick", "--figures", "1,3,10", "--json", str(tmp_path / "plan.json")]) == 0
    printed = capsys.readouterr().out
    assert "calibrated now on cpu" in printed and "total:" in printed and "with --engine ray and 4 worker(s)" in printed
    record = json.loads((tmp_path / "plan.json").read_text())
    assert [f["figure"] for f in record["figures"]] == [1, 3, 10]
    sweep = record["figures"][2]
    assert sweep["work"] == ["90 pairs x 60 steps, batch 8 [sweep]"] and sweep["seconds_expected"] > 10
    assert record["ray_workers"]["4"] < record["total_seconds_expected"]
    import torch

    table = ["--table"] if torch.cuda.is_available() else []   # without a GPU here the table is what it falls to
    assert main(["plan", "--profile", "paper", "--device", "cuda", *table, "--json", str(tmp_path / "paper.json")]) == 0
    printed = capsys.readouterr().out
    assert "checked-in table" in printed and "estimated, not measured" in printed
    paper = json.loads((tmp_path / "paper.json").read_text())
    assert paper["total_seconds_cap"] > 5 * paper["total_seconds_expected"] > 0, "the 15,000-step cap dominates"
    assert any("ILSVRC/imagenet-1k" in line and "stream" in line for line in paper["downloads"])
    assert main(["plan", "--quick", "--workers", "0"]) == 2
