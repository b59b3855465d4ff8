"""Run figures: skip the finished ones, write DIR/figN.png then DIR/figN.json (last, so its presence means the
figure is complete), keep DIR/manifest.json up to date after every figure, and write DIR/index.html.

The manifest records which figures were requested before any of them runs, so a figure that crashes (or a run
that is killed) leaves a requested figure without a complete record: `repro check` calls it failed. A recipe
that raises is recorded as failed in its figN.json (the error and traceback, `complete: false`) and the run
goes on with the next figure.

A figure is finished when figN.json parses, says it is complete, names the sha256 of figN.png as it is on
disk, and its fingerprint equals the one its settings, weights, images and recipe give now."""
from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
import time
import traceback
from pathlib import Path

from probe.files import write_bytes, write_json
from probe.results import package_versions
from repro import report
from repro.records import MANIFEST, paths, read_manifest, read_record
from repro.compose import compose
from repro.context import Context, Interrupted
from repro.engines import torch_threads
from repro.registry import Figure

def write_failure(ctx: Context, figure: Figure, error: BaseException) -> str:
    """Record that a figure raised: figN.json says so (never complete), and a stale figN.png goes."""
    png, record_path = paths(ctx.out, figure.id)
    png.unlink(missing_ok=True)
    message = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:500]}"
    write_json(record_path, {"figure": figure.id, "title": figure.title, "profile": ctx.profile.name,
                             "complete": False, "failed": True, "error": message,
                             "traceback": "".join(traceback.format_exception(error)),
                             "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return message


def is_finished(ctx: Context, figure: Figure) -> bool:
    record = read_record(ctx.out, figure.id)
    if record is None or record.get("profile") != ctx.profile.name:
        return False
    used = {"models": record.get("models", {}), "images": record.get("images", {})}
    return record.get("fingerprint") == ctx.fingerprint(figure, used)


def substitutions(ctx: Context) -> list[str]:
    """The profile's substitutions that apply to the figure being made: those of the roles it used, and of the
    authors' procedure (`paper_mode`) when it ran it."""
    keys = list(ctx.used["models"]) + list(ctx.used["images"])
    if ctx.knobs.get("settings", {}).get("mode") == "paper":
        keys.append("paper_mode")
    return [ctx.profile.substitutions[k] for k in keys if k in ctx.profile.substitutions]


def footer(ctx: Context, figure: Figure, output) -> list[str]:
    models = "; ".join(f"{role}: {m['spec']} ({m['weights']}, sha256 {m['sha256'][:12]})"
                       for role, m in ctx.used["models"].items())
    images = "; ".join(f"{role}: {i['source']}" for role, i in ctx.used["images"].items())
    lines = [f"profile {ctx.profile.name} | seed {ctx.profile.seed} | {ctx.device} {ctx.dtype}, "
             f"{ctx.profile.threads} torch thread(s) | models {models}",
             f"images {images}"]
    settings = ctx.knobs.get("settings")
    if settings:
        lines.append("matching: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                              for k, v in settings.items()))
    subs = substitutions(ctx)
    if subs:
        lines.append("SUBSTITUTIONS: " + "; ".join(subs) + ".")
    lines += output.notes
    lines.append(f"Tests {figure.claim_text()}. {figure.design}")
    return lines


def write_figure(ctx: Context, figure: Figure, output, seconds: float) -> dict:
    png, record_path = paths(ctx.out, figure.id)
    record_path.unlink(missing_ok=True)       # a stale record must never describe the new PNG
    write_bytes(png, compose(output.rows, f"Fig {figure.id}. {figure.title}", figure.label, figure.faithful,
                             footer(ctx, figure, output)))
    record = {
        "figure": figure.id, "title": figure.title, "kind": figure.kind, "label": figure.label,
        "tests": list(figure.tests), "claim": figure.claim_text(), "design": figure.design,
        "profile": ctx.profile.name, "fingerprint": ctx.fingerprint(figure, ctx.used),
        "settings": ctx.knobs, "seed": ctx.profile.seed, "threads": ctx.profile.threads,
        "device": ctx.device, "dtype": ctx.dtype, "models": ctx.used["models"], "images": ctx.used["images"],
        "substitutions": substitutions(ctx),
        "notes": output.notes, "metrics": output.metrics, "data": output.data(), "seconds": seconds,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "png_sha256": hashlib.sha256(png.read_bytes()).hexdigest(), "complete": True,
    }
    write_json(record_path, record)
    return record


def git_state() -> dict:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}
    return {"commit": commit.stdout.strip() or None, "dirty": bool(dirty.stdout.strip())}


def note_run(ctx: Context, statuses: dict[int, str], seconds: float, command: list[str]) -> None:
    """Append a run (command, figure statuses, wall time, load average) to the manifest's `runs`."""
    manifest = read_manifest(ctx.out)
    if not manifest:
        return
    run = {"command": " ".join(shlex.quote(a) for a in command), "statuses": {str(k): v for k, v in statuses.items()},
           "seconds": round(seconds, 1), "load_average": list(os.getloadavg()), "engine": ctx.engine.describe(),
           "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    manifest["runs"] = (manifest.get("runs", []) + [run])[-20:]
    write_json(ctx.out / MANIFEST, manifest)


def update_manifest(ctx: Context, entries: dict[int, dict], requested: list[int] = ()) -> dict:
    """Merge this run's figure entries (and the figures it requested) into DIR/manifest.json (atomically) with
    the run's provenance."""
    path = ctx.out / MANIFEST
    manifest = read_manifest(ctx.out)
    figures = {**manifest.get("figures", {}), **{str(k): v for k, v in entries.items()}}
    models, images = dict(manifest.get("models", {})), dict(manifest.get("images", {}))
    for entry in entries.values():
        models |= entry.get("models", {})
        images |= entry.get("images", {})
    manifest = {
        "about": "python -m repro: figures of arXiv:2401.15568 regenerated; see index.html",
        "profile": ctx.profile.to_dict(), "git": git_state(), "versions": package_versions(),
        "platform": platform.platform(), "device": ctx.device, "dtype": ctx.dtype,
        "threads": ctx.profile.threads, "seed": ctx.profile.seed, "engine": ctx.engine.describe(),
        "requested": sorted({*manifest.get("requested", []), *requested}),
        "models": models, "images": {role: ctx.dataset_record(role) for role in images},
        "figures": dict(sorted(figures.items(), key=lambda kv: int(kv[0]))), "runs": manifest.get("runs", []),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(path, manifest)
    return manifest


def make_figures(ctx: Context, figures: list[Figure], force: bool = False, announce=None) -> dict[int, str]:
    """Make each figure unless finished (or `force`); returns figure id -> "done", "skipped", "failed: <error>"
    (the run goes on) or "interrupted" (the run stops there)."""
    with torch_threads(ctx.profile.threads):
        statuses = _make(ctx, figures, force, announce)
    report.write(ctx.out)
    return statuses


def _make(ctx: Context, figures: list[Figure], force: bool, announce) -> dict[int, str]:
    statuses: dict[int, str] = {}
    ctx.out.mkdir(parents=True, exist_ok=True)
    update_manifest(ctx, {}, requested=[f.id for f in figures])
    for position, figure in enumerate(figures):
        if announce:
            announce(position, len(figures), figure)
        if not force and is_finished(ctx, figure):
            statuses[figure.id] = "skipped"
            continue
        ctx.begin(figure)
        start = time.perf_counter()
        try:
            output = figure.recipe(ctx)
        except Interrupted:
            statuses[figure.id] = "interrupted"
            break
        except Exception as error:   # one figure's crash is recorded, and the others still run
            statuses[figure.id] = f"failed: {write_failure(ctx, figure, error)}"
            continue
        seconds = time.perf_counter() - start
        record = write_figure(ctx, figure, output, seconds)
        update_manifest(ctx, {figure.id: {"title": figure.title, "kind": figure.kind, "seconds": round(seconds, 2),
                                          "fingerprint": record["fingerprint"], "models": record["models"],
                                          "images": record["images"], "created": record["created"]}})
        statuses[figure.id] = "done"
    return statuses
