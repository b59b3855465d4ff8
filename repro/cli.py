"""`python -m repro list | figN | all | plan | check DIR`: parse, run figures through the runner, print progress
and one line per figure. Bad input prints one line (`repro: error: ...`) and exits 2; an interrupted run exits
130; `check` exits 0, 1 or 2 (`repro.check`)."""
from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import replace

import torch

from probe.errors import ProbeError
from probe.files import write_json
from probe.models import resolve_device
from probe.terminal import Bars
from repro import check, engines, plan, report, runner
from repro.catalog import all_figures, get, parse_selection
from repro.context import Context
from repro.profiles import IMAGE_ROLES, MODEL_ROLES, get as get_profile, parse_overrides, smoke

USAGE = """python -m repro list
python -m repro figN|all [--quick | --profile paper|quick] [--figures 1,3-5] [--model [ROLE=]SPEC]
                         [--images [ROLE=]SOURCE] [--out DIR] [--device D] [--engine local|ray [--address A]]
python -m repro plan [--profile paper|quick] [--figures 1,3-5] [--device D] [--workers N]
python -m repro check DIR"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m repro", usage=USAGE, description=__doc__)
    p.add_argument("command", help="list, figN (e.g. fig3), all, plan, or check")
    p.add_argument("folder", nargs="?", help="check: the --out folder of a run")
    p.add_argument("--quick", action="store_true", help="the quick profile (the default): offline, 2 CPU cores")
    p.add_argument("--profile", help="quick (default) or paper (GPU + Hugging Face Hub)")
    p.add_argument("--figures", help="which figures of `all`: ids and ranges, e.g. 1,3-5")
    p.add_argument("--model", action="append", default=[], metavar="[ROLE=]SPEC",
                   help="replace the main model (or ROLE: second, third, control); repeatable")
    p.add_argument("--images", action="append", default=[], metavar="[ROLE=]SOURCE",
                   help="replace every image set (or ROLE: photos, targets, classes, sweep): a folder, parquet, "
                        "save_to_disk folder or Hub id; for a role whose default is a named set, a path is read "
                        "as that set (classes by WordNet id); repeatable")
    p.add_argument("--out", help="output folder (default out/repro-PROFILE)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 (default cpu)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--engine", default="local", help="how sweeps run: local (default) or ray")
    p.add_argument("--address", help="Ray cluster address (e.g. auto); default: a local Ray instance")
    p.add_argument("--gpu-share", type=float, default=0.25,
                   help="GPU share each Ray task declares on CUDA (default 0.25: four tasks per GPU)")
    p.add_argument("--threads", type=int, help="torch threads per process and per Ray task (profile default)")
    p.add_argument("--seed", type=int, help="seed of every recipe (profile default 0)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny settings: check a setup (models, images, engine) in seconds; numbers mean nothing")
    p.add_argument("--force", action="store_true", help="rerun figures even when finished")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--workers", type=int, default=4, help="plan: Ray workers to spread the sweeps over (default 4)")
    p.add_argument("--table", action="store_true",
                   help="plan: use the checked-in calibration table instead of measuring on the device")
    p.add_argument("--json", help="plan: also write the plan to this JSON file")
    return p


def list_figures() -> int:
    for fid, f in all_figures().items():
        print(f"fig{fid:<3d} {f.kind:14s} {f.title}")
        print(f"       tests {f.claim_text()}")
    return 0


def build_profile(args):
    if args.quick and args.profile not in (None, "quick"):
        raise ProbeError("--quick and --profile paper contradict each other")
    profile = get_profile(args.profile or "quick")
    models = parse_overrides(args.model, MODEL_ROLES, "main")
    if models:
        profile = profile.with_models(**models)
    if args.images:
        images = parse_overrides(args.images, IMAGE_ROLES, "*")
        everything = images.pop("*", None)
        if everything:   # one set for every role, read as it is
            profile = profile.with_images(as_named=False, **{r: everything for r in IMAGE_ROLES})
        profile = profile.with_images(**images)
    if args.threads is not None:
        if args.threads < 1:
            raise ProbeError(f"--threads must be >= 1, got {args.threads}")
        profile = replace(profile, threads=args.threads)
    if args.seed is not None:
        profile = replace(profile, seed=args.seed)
    return smoke(profile) if args.smoke else profile


def selection(args) -> list[int]:
    command = args.command
    if command in ("all", "plan"):
        return parse_selection(args.figures) if args.figures else list(all_figures())
    match = re.fullmatch(r"fig(\d+)", command)
    if not match:
        raise ProbeError(f"unknown command {command!r}; commands: list, figN (e.g. fig3), all, check DIR")
    if args.figures:
        raise ProbeError("--figures goes with `all`; `figN` makes one figure")
    return [get(int(match.group(1))).id]


def run_figures(args) -> int:
    figures = [get(i) for i in selection(args)]
    profile = build_profile(args)
    resolve_device(args.device)
    out = args.out or f"out/repro-{profile.name}"
    engine = engines.make(args.engine, args.address, args.gpu_share)
    bars = Bars(enabled=not args.quiet)
    ctx = Context(profile, out, engine=engine, device=args.device, dtype=args.dtype, progress=bars)
    start = time.perf_counter()
    try:
        statuses = runner.make_figures(ctx, figures, force=args.force, announce=bars.announce)
    finally:
        bars.close()
        engine.close()
    seconds = time.perf_counter() - start
    runner.note_run(ctx, statuses, seconds, ["python", "-m", "repro", *sys.argv[1:]])
    for fid, status in statuses.items():
        print(f"fig{fid}: {status}")
    print(f"{len(statuses)} figure(s) in {seconds:.1f} s; wrote {out}/ (index.html, manifest.json)")
    if "interrupted" in statuses.values():
        return 130
    failed = {fid: s.removeprefix("failed: ") for fid, s in statuses.items() if s.startswith("failed")}
    if failed:
        fid, error = next(iter(failed.items()))
        raise ProbeError(f"{len(failed)} figure(s) failed ({', '.join(f'fig{i}' for i in failed)}); fig{fid}: {error} "
                         f"(the traceback is in {out}/fig{fid}.json)")
    return 0


def plan_figures(args) -> int:
    """Print (and with --json write) what the figures will cost: `repro.plan`."""
    if args.workers < 1:
        raise ProbeError(f"--workers must be >= 1, got {args.workers}")
    figures = [get(i) for i in selection(args)]
    profile = build_profile(args)
    if not args.device.startswith("cuda") or (torch.cuda.is_available() and not args.table):
        resolve_device(args.device)   # a CUDA device that is not here falls back to the checked-in table
    calibrations, note = plan.calibrations_for(profile, figures, args.device, args.table)
    record = plan.report(profile, figures, args.device, args.workers, calibrations, note)
    if args.json:
        write_json(args.json, record)
    return 0


def check_run(folder: str) -> int:
    """The verdicts of a run: printed, written to verdicts.json and index.html; the exit status."""
    results = check.verdicts(folder)
    check.print_table(results)
    check.write(folder, results)
    report.write(folder, results)
    return check.exit_status(results)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "list":
            return list_figures()
        if args.command == "plan":
            return plan_figures(args)
        if args.command == "check":
            if not args.folder:
                raise ProbeError("check needs the folder of a run: python -m repro check DIR")
            return check_run(args.folder)
        if args.folder:
            raise ProbeError(f"unexpected argument {args.folder!r}")
        return run_figures(args)
    except ProbeError as err:
        print(f"repro: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("repro: interrupted (finished figures and sweep shards are kept; rerun to resume)", file=sys.stderr)
        return 130
