"""Does `repro plan` predict what a run takes? The plan of the quick profile's figures, calibrated now on this
machine, against the same figures made right after in the same process (wall time per figure, drawing and
writing included). The goal: every figure and the total within 2x.

    python benchmarks/bench_plan.py [--figures 1-21] [--out /tmp/bench_plan]

Prints a markdown table and writes results/plan.json and results/plan.md (machine, versions, load average).
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

from probe.files import write_bytes, write_json
from probe.results import package_versions
from repro import plan, runner
from repro.context import Context
from repro.profiles import get
from repro.catalog import get as get_figure, parse_selection

RESULTS = Path(__file__).resolve().parent / "results"


def measure(profile, figures, out: Path) -> dict[int, float]:
    """Wall seconds per figure, from one figure's start to the next one's (recipe, drawing, writing)."""
    marks: list[float] = []
    runner.make_figures(Context(profile, out), figures, force=True, announce=lambda *_: marks.append(time.perf_counter()))
    marks.append(time.perf_counter())
    return {figure.id: marks[k + 1] - marks[k] for k, figure in enumerate(figures)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--figures", default="1-21")
    parser.add_argument("--out", default=None, help="folder for the figures made (default: a new temporary one; "
                                                    "it must not hold sweep shards, which would be reused)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-plan-"))
    if (out / "shards").exists():
        parser.error(f"{out} holds sweep shards from an earlier run: they would be reused, not measured")
    profile = get("quick")
    figures = [get_figure(i) for i in parse_selection(args.figures)]
    start = time.perf_counter()
    calibrations, note = plan.calibrations_for(profile, figures, "cpu", use_table=False)
    calibration_seconds = time.perf_counter() - start
    costs = plan.cost(figures, profile, calibrations)
    measured = measure(profile, figures, out)
    rows = [{"figure": c.figure, "estimated_s": c.seconds_expected, "measured_s": measured[c.figure],
             "ratio": c.seconds_expected / measured[c.figure]} for c in costs]
    total = {"estimated_s": sum(r["estimated_s"] for r in rows), "measured_s": sum(r["measured_s"] for r in rows)}
    total["ratio"] = total["estimated_s"] / total["measured_s"]
    within = all(0.5 <= r["ratio"] <= 2 for r in rows) and 0.5 <= total["ratio"] <= 2
    lines = [f"# `repro plan` against measured quick figures ({platform.machine()}, {os.cpu_count()} cores)", "",
             f"Calibration: {note}; it took {calibration_seconds:.1f} s. Load average before the run: "
             f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}. Command: `{shlex.join(['python', *sys.argv])}`", "",
             "| figure | estimated (s) | measured (s) | estimated / measured |", "|---|---|---|---|"]
    lines += [f"| {r['figure']} | {r['estimated_s']:.1f} | {r['measured_s']:.1f} | {r['ratio']:.2f} |" for r in rows]
    lines += [f"| total | {total['estimated_s']:.1f} | {total['measured_s']:.1f} | {total['ratio']:.2f} |", "",
              f"Every figure and the total within 2x: {'yes' if within else 'NO'}."]
    text = "\n".join(lines) + "\n"
    print(text)
    write_json(RESULTS / "plan.json", {"versions": package_versions(), "machine": platform.machine(),
                                       "cores": os.cpu_count(), "load_average": os.getloadavg(), "note": note,
                                       "calibration_seconds": calibration_seconds, "rows": rows, "total": total,
                                       "within_2x": within})
    write_bytes(RESULTS / "plan.md", text.encode())
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
