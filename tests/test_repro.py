"""repro: every figure's recipe at smoke settings writes its PNG and JSON with the documented keys; the
manifest and report; `check` verdicts; resume (skip finished, redo corrupt or changed); a sweep killed
mid-run resumes to the same numbers; clear one-line errors."""
import hashlib
import html
import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from probe.readback import READ_BACK, SURVIVAL
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


def quick_smoke():
    """The quick profile at smoke settings, with at most two of the images or texts a figure takes as a list
    (Figs 1, 2, 5-9, 17, 19-21) and one spectrum for Fig 12: every recipe still runs and every list the tests
    recompute a number from keeps two entries, for ~15% less CPU than the plain smoke profile."""
    profile = smoke(get("quick"))
    knobs = {fid: {**k, **{key: k[key][:2] for key in ("sources", "targets", "images", "texts")
                           if isinstance(k.get(key), list)}} for fid, k in profile.knobs.items()}
    knobs[12] = {**knobs[12], "images": knobs[12]["images"][:1]}
    return replace(profile, knobs=knobs)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """All 21 figures of the quick profile at reduced smoke settings (one run shared by the tests below)."""
    out = tmp_path_factory.mktemp("repro") / "quick"
    statuses = run(quick_smoke(), out, list(all_figures()))
    return out, statuses


@pytest.mark.slow
def test_every_recipe_writes_png_json_manifest_and_report(smoke_run):
    """Each figure's PNG is a whole picture (decodes, banner width, not blank) whose sha256 its JSON names; the
    JSON has the documented keys and metrics; the manifest holds each figure's fingerprint as its JSON does."""
    out, statuses = smoke_run
    assert set(statuses.values()) == {"done"} and len(statuses) == 21
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["figures"]) == {str(i) for i in range(1, 22)}
    assert manifest["models"]["main"]["spec"] == "mini-clip" and len(manifest["models"]["main"]["sha256"]) == 64
    assert manifest["images"]["sweep"]["source"].startswith("toy:shapes") and manifest["git"]["commit"]
    assert {"versions", "device", "dtype", "seed", "threads", "engine", "profile"} <= set(manifest)
    for fid, figure in all_figures().items():
        png, record_path = runner.paths(out, fid)
        record = json.loads(record_path.read_text())
        with Image.open(png) as image:
            image.load()                                            # every row decodes, not only the header
            assert image.format == "PNG" and image.mode == "RGB" and image.width >= 900 and image.height > 300
            low, high = image.convert("L").getextrema()
            assert high - low > 128, f"fig{fid}.png is blank"
        assert hashlib.sha256(png.read_bytes()).hexdigest() == record["png_sha256"]
        assert RECORD_KEYS <= set(record), RECORD_KEYS - set(record)
        assert set(figure.metrics) <= set(record["metrics"]), (fid, set(figure.metrics) - set(record["metrics"]))
        assert record["kind"] == ("faithful" if fid <= 5 else "reconstruction" if fid <= 20 else "beyond the paper")
        assert record["label"] == figure.label and record["complete"] is True
        assert record["substitutions"], f"fig{fid} does not say what the quick profile substituted"
        assert record["data"] and record["profile"] == "quick-smoke"
        assert manifest["figures"][str(fid)]["fingerprint"] == record["fingerprint"]
    assert "mini-CLIP (64 px, trained on generated shapes) stands in for OpenCLIP ViT-H-14" in json.loads(
        (out / "fig1.json").read_text())["substitutions"]


def _mean(values) -> float:
    return sum(values) / len(values)


def _lower_median(values) -> float:
    """torch's median: the lower of the two middle values for an even count."""
    return sorted(values)[(len(values) - 1) // 2]


def _read_as_target(data: dict) -> dict:
    """Figs 1, 6-9 and 17: the matched images' zero-shot probabilities, each row against the target (class or
    text) its name gives."""
    after = data["vision_text_after"]
    targets = [name.split(" -> ")[1].removesuffix(" (drawing)").removeprefix('text "').removesuffix('"')
               for name in after["images"]]
    rows = [dict(zip(after["classes"], p)) for p in after["probabilities"]]
    chance = [row[t] for row, t in zip(rows, targets)]
    return {"target_top1_rate": _mean([max(row, key=row.get) == t for row, t in zip(rows, targets)]),
            "target_probability_min": min(chance), "target_probability_mean": _mean(chance),
            "share_target_p99": _mean([p >= 0.99 for p in chance])}


def _read_as_text(data: dict) -> dict:
    reading = _read_as_target(data)
    return {"text_success_rate": reading["target_top1_rate"],
            "target_probability_min": reading["target_probability_min"]}


def _singular(data: dict) -> dict:
    panel = data["lipschitz_singular"]
    sigma = panel["singular_values"]
    return {"sigma_1": sigma[0], "m": len(sigma), "reference_eps": panel["eps"],
            "max_relative_error_singular": max(abs(e - s) / s for e, s in zip(panel["estimates"], sigma))}


def _curves(data: dict) -> dict:
    curves = data["curves"]
    loss, cos = curves["loss"][0], curves["cos_to_target"][0]
    return {"steps": curves["steps"][-1], "loss_initial": loss[0], "loss_final": loss[-1],
            "loss_reduction": loss[0] / loss[-1], "cos_initial": cos[0], "cos_final": cos[-1],
            "mean_abs_255_final": 255 * curves["mean_abs_pixel"][0][-1]}


def _success(data: dict) -> dict:
    cells = [c for row in data["success_matrix"]["success_matrix"] for c in row if c is not None]
    rates = list(data["rates"]["rates"].values())
    return {"images": len(data["success_matrix"]["sources"]), "pairs": len(cells), "success_rate": _mean(cells),
            "clean_accuracy": rates[0], "matched_accuracy": rates[1]}


def _pixel_change(data: dict) -> dict:
    change = data["pixel_change"]["distributions"]
    return {"pairs": len(change["PSNR (dB)"]), "psnr_db_min": min(change["PSNR (dB)"]),
            "psnr_db_median": _lower_median(change["PSNR (dB)"]), "linf_255_max": max(change["L-inf (1/255)"]),
            "linf_255_median": _lower_median(change["L-inf (1/255)"]),
            "rms_255_median": _lower_median(change["RMS (1/255)"])}


def _spectra(data: dict) -> dict:
    curves = list(data["spectra"]["curves"].values())
    assert all(c[0] == 1 for c in curves)                              # divided by sigma_1
    return {"m": [len(c) for c in curves], "decay_half": [c[len(c) // 2] for c in curves]}


def _mann_whitney(negatives, positives) -> float:
    pairs = [(p > n) + 0.5 * (p == n) for p in positives for n in negatives]
    return sum(pairs) / len(pairs)


def _trapezoid(fpr, tpr) -> float:
    return sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in zip(fpr, fpr[1:], tpr, tpr[1:]))


def _noise(data: dict) -> dict:
    panel = data["noise_roc"]
    auc = [_trapezoid(curve["fpr"], curve["tpr"]) for curve in panel["roc"].values()]
    shown = list(panel["roc"]).index(panel["shown"])
    assert auc[shown] == pytest.approx(_mann_whitney(panel["clean_scores"], panel["modified_scores"]), abs=1e-12)
    return {"clean": len(panel["clean_scores"]), "matched": len(panel["modified_scores"]), "auc": auc,
            "auc_max": max(auc), "sigmas_255": [float(k.split()[1].split("/")[0]) for k in panel["roc"]]}


def _closeness(data: dict) -> dict:
    panel = data["closeness"]
    series = {label.replace(" ", "_"): runs for label, runs in panel["relative_cosine_distance"].items()}
    return {"reached_rate": {k: _mean([min(run) <= panel["goal"] for run in runs]) for k, runs in series.items()},
            "final_median": {k: sorted(run[-1] for run in runs)[len(runs) // 2] for k, runs in series.items()}}


def _survival(data: dict) -> dict:
    shares = data["survival"]["shares"]
    plain, survive = shares["plain"], shares["survive (jpeg+resize)"]
    return {"pairs": int(data["survival"]["title"].split()[0]),
            **{f"plain_{c}": v for c, v in zip(READ_BACK + SURVIVAL, plain)},
            **{f"survive_{c}": v for c, v in zip(READ_BACK + SURVIVAL, survive)},
            "gain_jpeg75": survive[3] - plain[3]}


RECOMPUTED = {1: _read_as_target, 3: _singular, 5: _curves, 6: _read_as_target, 7: _read_as_target,
              8: _read_as_target, 9: _read_as_target, 10: _success, 11: _pixel_change, 13: _spectra, 17: _read_as_text,
              18: _noise, 19: _closeness, 20: _closeness, 21: _survival}
SAME_NUMBERS = [((1, 2), ("psnr_db_min", "mean_abs_255_max", "cos_to_target_png_min", "target_top1_rate")),
                ((3, 4), ("sigma_1",)), ((3, 4, 14), ("decay_half", "decay_half_over_control")),
                ((10, 11), ("success_rate", "psnr_db_min", "mean_abs_255_max", "pairs"))]


@pytest.mark.slow
def test_figure_numbers_are_those_of_the_data_plotted_beside_them(smoke_run):
    """The numbers `check` judges (figN.json's metrics) recomputed by the test from the data each figure plotted
    (probabilities, spectra, curves, success matrix, pixel changes, ROC scores, survival shares) for 15 of the 21
    figures; the same quantity shown by several figures has one value. float32 values went through JSON, so
    1e-6 relative is allowed."""
    out, _ = smoke_run
    records = {fid: json.loads(runner.paths(out, fid)[1].read_text()) for fid in all_figures()}
    for fid, recompute in RECOMPUTED.items():
        for key, value in recompute(records[fid]["data"]).items():
            assert records[fid]["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), (fid, key)
    for fids, keys in SAME_NUMBERS:
        for key in keys:
            values = [records[fid]["metrics"][key] for fid in fids]
            assert values == [values[0]] * len(fids), (fids, key, values)
    assert records[18]["metrics"]["matched"] == records[10]["metrics"]["pairs"]      # Fig 10's matched images
    sigma_1 = [records[13]["metrics"]["sigma_1"][0], records[19]["metrics"]["sigma_1"][0]]
    assert sigma_1 == [records[3]["metrics"]["sigma_1"]] * 2           # Fig 1 (a) on the main model, three times


def _reference_value(metrics: dict, reference):
    value = metrics
    for part in reference.metric.split("/"):
        value = value[part]
    return {"min": min, "max": max}[reference.reduce](value) if reference.reduce else value


def _holds(value, reference) -> bool:
    low, high = reference.value - reference.tolerance, reference.value + reference.tolerance
    return {">=": value >= low, "<=": value <= high, "==": low <= value <= high}[reference.op]


@pytest.mark.slow
def test_verdicts_follow_the_numbers_and_the_report_shows_them(smoke_run):
    """Every quick reference of a figure is read from its JSON and compared by the test itself: a figure is
    "regressed" exactly when one of its numbers is outside its reference and "as expected" when all hold (the
    smoke run has both), a figure the references leave out is "not comparable"; index.html names each figure with
    its verdict, its label and the weights of every model it used."""
    out, _ = smoke_run
    references, notes = check.load_references()
    verdicts = {v.figure: v for v in check.verdicts(out)}
    page = (out / "index.html").read_text()
    for fid, figure in all_figures().items():
        record = json.loads(runner.paths(out, fid)[1].read_text())
        verdict = verdicts[fid]
        quick = [n for n in notes if n.figure == fid and "quick" in n.profiles]
        left_out = {m for n in quick for m in n.metrics}
        mine = [r for r in references if r.figure == fid and "quick" in r.profiles and r.metric not in left_out]
        if any(not n.metrics for n in quick):
            assert verdict.status == "not comparable" and not verdict.rows, fid
        else:
            holds = [_holds(_reference_value(record["metrics"], r), r) for r in mine]
            assert verdict.rows == [(r, _reference_value(record["metrics"], r), ok) for r, ok in zip(mine, holds)], fid
            assert (verdict.status, verdict.against) == ("as expected" if all(holds) else "regressed", "project"), fid
        section = page[page.index(f"<section id='fig{fid}'>"):]
        section = section[:section.index("</section>")]
        badge = f"<span class='badge v-{verdict.status.replace(' ', '-')}'>{verdict.status}</span>"
        assert f"Verdict: {badge}" in section and html.escape(figure.label) in section, fid
        assert f"<img src='fig{fid}.png'" in section, fid
        assert (f"<a href='#fig{fid}'>Fig {fid}</a></td><td>{html.escape(figure.title)}</td><td class='{figure.kind}'>"
                f"{figure.kind}</td><td>{badge}</td>") in page, fid          # the summary table's row
        for model in record["models"].values():
            assert html.escape(json.dumps(model["weights"]), quote=True) in section, (fid, model["weights"])
    assert {v.status for v in verdicts.values()} == {"regressed", "as expected", "not comparable"}


@pytest.mark.slow
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


@pytest.mark.slow
def test_resume_skips_finished_and_redoes_corrupt_or_changed(smoke_run, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(smoke_run[0], out)
    profile = quick_smoke()
    assert run(profile, out, [2, 5, 12]) == {2: "skipped", 5: "skipped", 12: "skipped"}
    png5 = runner.paths(out, 5)[0]
    png5.write_bytes(png5.read_bytes()[:500])                   # a torn PNG
    runner.paths(out, 12)[1].write_text('{"figure": 12, "comp')  # a torn record
    changed = replace(profile, knobs={**profile.knobs, 2: {**profile.knobs[2], "pca_k": 5}})
    assert run(changed, out, [2, 5, 12]) == {2: "done", 5: "done", 12: "done"}
    assert run(changed, out, [2, 5, 12]) == {2: "skipped", 5: "skipped", 12: "skipped"}
    runner.paths(out, 12)[1].unlink()      # killed between writing the PNG and its record: not finished
    assert run(changed, out, [12]) == {12: "done"}


@pytest.mark.slow
def test_changed_weights_under_the_same_spec_rerun(tmp_path):
    from safetensors.torch import load_file, save_file

    from probe.toy import MINI_CLIP_DIR

    folder = tmp_path / "model"
    shutil.copytree(MINI_CLIP_DIR, folder)
    profile = quick_smoke().with_models(main=f"openclip:local-dir:{folder}")
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
    profile = smoke(get("quick"))
    knobs = {**profile.knobs[10], "settings": {**profile.knobs[10]["settings"], "steps": 12}}
    return replace(profile, knobs={**profile.knobs, 10: knobs}, shard_size=2)


KILLED = """
import sys
sys.path.insert(0, sys.argv[2])
from test_repro import run, sweep_profile
run(sweep_profile(), sys.argv[1], [10])
"""


@pytest.mark.slow
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
