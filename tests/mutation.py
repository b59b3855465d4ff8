"""`make mutants`: mutation testing of the guard and science functions against the fast tier.

mutmut (configured in pyproject.toml) mutates the modules named there; this script runs the mutants of the
functions below only, then prints and saves the score per module: killed / (all - equivalent), where the
equivalent survivors are listed with a one-line reason in tests/equivalent_mutants.txt. A survivor that is
neither killed nor listed is a gap: write the test that kills it (`mutmut show NAME` prints its diff).

    python tests/mutation.py            # run (resumes: mutmut keeps results in mutants/) and report
    python tests/mutation.py --report   # print the saved table (benchmarks/results/mutation.json), run nothing
    python tests/mutation.py --survivors   # rerun only the last table's gaps (after new tests), update the table
"""
import argparse
import fnmatch
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT = ROOT / "tests" / "equivalent_mutants.txt"
RESULTS = ROOT / "benchmarks" / "results" / "mutation.json"

# What each group guards -> the mutmut names of its functions (module.x_function / module.xǁClassǁmethod).
TARGETS = {
    "stopping rules": ["probe.matching.xǁPaperStopǁ*", "probe.matching.xǁRelativeStopǁ*"],
    "constraints and projection": ["probe.matching.xǁClampToRangeǁ*", "probe.matching.xǁLinfBallǁ*",
                                   "probe.matching.xǁL2Ballǁ*", "probe.matching.xǁAllOfǁ*",
                                   "probe.matching.x_budget_constraint__*", "probe.matching.x__check_budget__*",
                                   "probe.matching.x__check_norm__*"],
    "quantise and the PNG round trip": ["probe.images.x_quantize__*", "probe.images.x_encode_png__*",
                                        "probe.readback.x_png__*", "probe.readback.x_read_back__*",
                                        "probe.readback.x_pixels__*", "probe.experiments.pairs.x_png_round_trip__*"],
    "upload and number checks": ["probe.serving.x_check_image__*", "probe.serving.x_byte_size__*",
                                 "probe.params.xǁParamǁcheck__*", "probe.params.x_check_fields__*"],
    "atomic writes": ["probe.files.x_atomic_write__*"],
    "Jacobian and Lipschitz": ["probe.geometry.x_jacobian__*", "probe.geometry.x_gram__*",
                               "probe.geometry.x_exact_spectrum__*", "probe.geometry.x_directional_derivatives__*",
                               "probe.geometry.x_lipschitz_estimates__*"],
    "zero-shot probabilities": ["probe.zeroshot.xǁZeroShotHeadǁlogits__*",
                                "probe.zeroshot.xǁZeroShotHeadǁprobabilities__*"],
    "metrics": ["probe.metrics.x_cosine__*", "probe.metrics.x_l2__*", "probe.metrics.x_linf__*",
                "probe.metrics.x_psnr__*"],
}
KILLED = ("killed", "timeout", "caught by type check")
PATTERNS = [pattern for patterns in TARGETS.values() for pattern in patterns]


def mutmut(*args: str, capture: bool = False) -> str:
    done = subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=ROOT, text=True,
                          stdout=subprocess.PIPE if capture else None)
    if done.returncode:
        raise SystemExit(f"mutmut {args[0]} exited with {done.returncode}")
    return done.stdout or ""


def equivalent() -> dict[str, str]:
    """name -> reason, from the checked-in list (lines `name: reason`, # comments)."""
    listed = {}
    for line in EQUIVALENT.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, reason = line.split(":", 1)
            listed[name.strip()] = reason.strip()
    return listed


def statuses() -> dict[str, str]:
    """mutant name -> mutmut's status, for the targeted functions."""
    found = {}
    for line in mutmut("results", "--all", "true", capture=True).splitlines():
        hit = re.match(r"\s*(\S+__mutmut_\d+): (.+)$", line)
        if hit and any(fnmatch.fnmatch(hit.group(1), pattern) for pattern in PATTERNS):   # as mutmut matches
            found[hit.group(1)] = hit.group(2).strip()
    return found


def report(found: dict[str, str]) -> dict:
    listed = equivalent()
    per_module: dict[str, Counter] = defaultdict(Counter)
    gaps = []
    for name, status in found.items():
        module = name.split(".x")[0]
        if status in KILLED:
            per_module[module]["killed"] += 1
        elif status == "not checked":   # a run cut short: neither killed nor survived yet
            per_module[module]["not run"] += 1
        elif name in listed:
            per_module[module]["equivalent"] += 1
        else:
            per_module[module]["survived"] += 1
            gaps.append(f"{name}: {status}")
    rows = {}
    for module, n in sorted(per_module.items()):
        scored = n["killed"] + n["survived"]
        rows[module] = {**n, "score": round(n["killed"] / scored, 3) if scored else None}
    stale = sorted(set(listed) - set(found))
    return {"modules": rows, "gaps": sorted(gaps), "stale_equivalents": stale}


def rerun_survivors(summary: dict, found: dict[str, str]) -> dict:
    """The saved table with its gaps replaced by their statuses in ``found`` (a run of those mutants only)."""
    rows = {module: dict(row) for module, row in summary["modules"].items()}
    listed, gaps = equivalent(), []
    for line in summary["gaps"]:
        name = line.split(":")[0]
        status, row = found.get(name, "not checked"), rows[name.split(".x")[0]]
        if status == "not checked":
            raise SystemExit(f"{name} was not rerun; run the survivors again")
        outcome = "killed" if status in KILLED else "equivalent" if name in listed else None   # as report()
        if outcome:
            row["survived"] -= 1
            row[outcome] = row.get(outcome, 0) + 1
        else:
            gaps.append(f"{name}: {status}")
        scored = row.get("killed", 0) + row["survived"]
        row["score"] = round(row.get("killed", 0) / scored, 3) if scored else None
    return {"modules": rows, "gaps": sorted(gaps), "stale_equivalents": summary["stale_equivalents"],
            "survivors_rerun": len(summary["gaps"]) or summary.get("survivors_rerun", 0)}


def table(summary: dict) -> str:
    lines = ["| module | killed | equivalent (listed) | survived | not run | score |", "|---|---|---|---|---|---|"]
    for module, row in summary["modules"].items():
        score = "n/a" if row["score"] is None else f"{100 * row['score']:.0f}%"
        lines.append(f"| {module} | {row.get('killed', 0)} | {row.get('equivalent', 0)} | "
                     f"{row.get('survived', 0)} | {row.get('not run', 0)} | {score} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--report", action="store_true", help="print the saved table, run nothing")
    what.add_argument("--survivors", action="store_true",
                        help="rerun only the gaps of the saved table and update it (mutmut keeps no other results)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    args = parser.parse_args()
    if args.report:
        summary = json.loads(RESULTS.read_text())
    elif args.survivors:
        saved = json.loads(RESULTS.read_text())
        names = [line.split(":")[0] for line in saved["gaps"]]
        if names:
            mutmut("run", "--max-children", str(args.max_children), *names)
        summary = rerun_survivors(saved, statuses())
    else:
        mutmut("run", "--max-children", str(args.max_children), *PATTERNS)
        summary = report(statuses())
    if not args.report:
        RESULTS.write_text(json.dumps(summary, indent=1) + "\n")
    print(table(summary))
    for gap in summary["gaps"]:
        print("not killed and not listed as equivalent:", gap)
    for name in summary["stale_equivalents"]:
        print("listed as equivalent but no longer generated:", name)
    unfinished = any(row.get("not run") for row in summary["modules"].values())
    return 1 if summary["gaps"] or unfinished else 0


if __name__ == "__main__":
    sys.exit(main())
