"""`python -m repro check DIR`: a verdict per figure of a run, from `references.json`.

Two kinds of reference, never mixed up in the words used:

* against the **paper** (what arXiv:2401.15568 and its sister papers state): "reproduced" / "not reproduced";
* against this **project**'s own expectations (numbers measured here, with margins): "as expected" /
  "regressed".

A figure the run requested (its manifest says so) that raised, or has no complete figN.json, is "failed"; a
figure never requested is "not run" and changes nothing. A figure with nothing to compare with in its profile is
"not comparable", with the reason.

A reference applies when the figure was made with its profile (a PROFILE-smoke run is judged as PROFILE), with
the model specs it names in those roles, and, where it is pinned to weights (`weights`: role -> sha256 prefix),
with those very weights: any other weights give "not comparable (other weights)". References that are not pinned
compare numbers measured in the same run (e.g. the trained model against its random-init control) and hold for
any weights. Its metric (a key of figN.json's `metrics`, `a/b` for nested keys, `reduce` min/max for lists)
passes when `value op reference` holds within the tolerance: `>=`: value >= reference - tolerance; `<=`: value
<= reference + tolerance; `==`: |value - reference| <= tolerance.

Exit status (`exit_status`): 0 when every requested comparable figure is reproduced or as expected, 1 when any
is not reproduced or regressed, 2 when any failed. The verdicts go to DIR/verdicts.json (`write`) and
DIR/index.html (`repro.report`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from probe.errors import ProbeError
from probe.files import write_json
from repro.catalog import all_figures
from repro.records import read_failure, read_manifest, read_record

REFERENCES = Path(__file__).with_name("references.json")
AGAINST = ("paper", "project")
PASSED = {"paper": "reproduced", "project": "as expected"}
MISSED = {"paper": "not reproduced", "project": "regressed"}
STATUSES = ("reproduced", "not reproduced", "as expected", "regressed", "not comparable", "failed", "not run")
LEGEND = {
    "reproduced": "every reference taken from the paper (or its sister papers) holds",
    "not reproduced": "a reference taken from the paper fails",
    "as expected": "every reference of this project's own expectations (measured here, with margins) holds",
    "regressed": "a reference of this project's own expectations fails",
    "not comparable": "nothing to compare with in this profile (the reason is given)",
    "failed": "the run requested the figure but it raised or left no complete figN.json",
    "not run": "the run never requested the figure",
}


@dataclass(frozen=True)
class Reference:
    figure: int
    metric: str
    op: str
    value: float
    tolerance: float
    profiles: tuple[str, ...]
    source: str
    against: str                                    # "paper" or "project"
    models: dict = field(default_factory=dict)      # role -> spec the reference was measured or reported with
    weights: dict = field(default_factory=dict)     # role -> sha256 (prefix) of the weights it was measured with
    reduce: str | None = None

    def mismatch(self, record: dict) -> str | None:
        """Why this reference does not apply to a figure record (None: it applies)."""
        profile = str(record.get("profile")).removesuffix("-smoke")
        if profile not in self.profiles:
            return f"references are for the {'/'.join(self.profiles)} profile, this is {record.get('profile')}"
        used = record.get("models", {})
        for role, spec in self.models.items():
            if used.get(role, {}).get("spec") != spec:
                return f"references are for {role} model {spec}, this run used {used.get(role, {}).get('spec')}"
        for role, digest in self.weights.items():
            found = str(used.get(role, {}).get("sha256", ""))
            if not found.startswith(digest):
                return (f"other weights: the references were measured with {role} weights sha256 {digest[:12]}, "
                        f"this run used {found[:12] or 'unknown'}")
        return None

    def read(self, metrics: dict):
        value = metrics
        for part in self.metric.split("/"):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, list) and self.reduce:
            value = None if None in value or not value else (min(value) if self.reduce == "min" else max(value))
        return value

    def passes(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:   # missing or NaN
            return False
        if self.op == ">=":
            return value >= self.value - self.tolerance
        if self.op == "<=":
            return value <= self.value + self.tolerance
        return abs(value - self.value) <= self.tolerance

    def describe(self) -> str:
        target = f"{self.op} {self.value:g}" + (f" (tolerance {self.tolerance:g})" if self.tolerance else "")
        return f"{self.reduce + ' of ' if self.reduce else ''}{self.metric} {target}"


@dataclass(frozen=True)
class NotComparable:
    """Why a figure (or, with `metrics`, some of its references) has nothing to compare with in a profile."""

    figure: int
    profiles: tuple[str, ...]
    reason: str
    metrics: tuple[str, ...] = ()    # empty: the whole figure


@dataclass
class Verdict:
    figure: int
    status: str
    against: str | None     # "paper" or "project" for a comparison, None when there was none
    reason: str
    rows: list[tuple[Reference, object, bool]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"figure": self.figure, "status": self.status, "against": self.against, "reason": self.reason,
                "references": [{"reference": r.describe(), "against": r.against, "value": value, "ok": ok,
                                "source": r.source} for r, value, ok in self.rows]}


def load_references(path: Path = REFERENCES) -> tuple[list[Reference], list[NotComparable]]:
    try:
        document = json.loads(Path(path).read_text())
        references = [Reference(e["figure"], e["metric"], e["op"], e["value"], e.get("tolerance", 0.0),
                                tuple(e["profiles"]), e["source"], e["against"], e.get("models", {}),
                                e.get("weights", {}), e.get("reduce"))
                      for e in document["references"]]
        notes = [NotComparable(e["figure"], tuple(e["profiles"]), e["reason"], tuple(e.get("metrics", ())))
                 for e in document["not_comparable"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ProbeError(f"references file {path} is not readable: {err}") from err
    for r in references:
        if r.op not in (">=", "<=", "=="):
            raise ProbeError(f"references file {path}: unknown op {r.op!r} (use >=, <= or ==)")
        if r.against not in AGAINST:
            raise ProbeError(f"references file {path}: fig{r.figure} {r.metric}: 'against' must be paper or "
                             f"project, got {r.against!r}")
    return references, notes


def judge(figure_id: int, record: dict | None, references: list[Reference], notes: list[NotComparable] = (),
          requested: bool = True, failure: str | None = None) -> Verdict:
    """The verdict on one figure: `record` is its complete figN.json (None when there is none), `failure` what
    it raised, `requested` whether the run asked for it."""
    if record is None:
        if not requested:
            return Verdict(figure_id, "not run", None, "the run did not request this figure")
        return Verdict(figure_id, "failed", None, failure or "requested, but there is no complete figN.json/figN.png "
                                                            "(it crashed, was interrupted, or the file was removed)")
    profile = str(record.get("profile")).removesuffix("-smoke")
    mine = [n for n in notes if n.figure == figure_id and profile in n.profiles]
    whole = next((n for n in mine if not n.metrics), None)
    if whole is not None:
        return Verdict(figure_id, "not comparable", None, whole.reason)
    excluded = {metric: n.reason for n in mine for metric in n.metrics}
    candidates = [r for r in references
                  if r.figure == figure_id and profile in r.profiles and r.metric not in excluded]
    if not candidates:
        return Verdict(figure_id, "not comparable", None, "no reference numbers for this figure in this profile")
    applicable = [r for r in candidates if r.mismatch(record) is None]
    if not applicable:
        reasons = [r.mismatch(record) for r in candidates]
        reason = next((x for x in reasons if x.startswith("other weights")), reasons[0])
        return Verdict(figure_id, "not comparable", None, reason)
    rows = [(r, r.read(record.get("metrics", {}))) for r in applicable]
    rows = [(r, value, r.passes(value)) for r, value in rows]
    skipped = sorted(set(excluded.values())) + sorted({m for r in candidates if (m := r.mismatch(record))})
    suffix = "".join(f"; not compared: {s}" for s in skipped)
    for against in AGAINST:   # a failed paper reference decides first
        failed = [r for r, _, ok in rows if not ok and r.against == against]
        if failed:
            return Verdict(figure_id, MISSED[against], against,
                           "; ".join(f"{r.describe()} fails" for r in failed) + suffix, rows)
    against = "paper" if any(r.against == "paper" for r, _, _ in rows) else "project"
    return Verdict(figure_id, PASSED[against], against, f"{len(rows)} reference(s) hold" + suffix, rows)


def verdicts(out: Path) -> list[Verdict]:
    out = Path(out)
    if not out.is_dir():
        raise ProbeError(f"{out}: no such folder (give the --out folder of a repro run)")
    manifest = read_manifest(out)
    if not manifest:
        raise ProbeError(f"{out}: no manifest.json, so not the folder of a repro run (or it never started)")
    requested = {int(i) for i in manifest.get("requested", manifest.get("figures", {}))}
    references, notes = load_references()
    return [judge(fid, read_record(out, fid), references, notes, fid in requested, read_failure(out, fid))
            for fid in all_figures()]


def exit_status(results: list[Verdict]) -> int:
    statuses = {v.status for v in results}
    if "failed" in statuses:
        return 2
    return 1 if statuses & {"not reproduced", "regressed"} else 0


def _value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_table(results: list[Verdict]) -> None:
    figures = all_figures()
    for v in results:
        if v.status == "not run":
            continue
        against = f" (against the {v.against})" if v.against else ""
        print(f"fig{v.figure:<3d} {v.status + against:34s} {figures[v.figure].title[:60]}")
        if v.status in ("not comparable", "failed") or "not compared" in v.reason:
            print(f"        why: {v.reason}")
        for ref, value, ok in v.rows:
            print(f"        {'ok  ' if ok else 'FAIL'} {ref.describe()}: got {_value(value)}  [{ref.against}: "
                  f"{ref.source}]")
    counts = {s: sum(v.status == s for v in results) for s in STATUSES}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n))


def write(out: Path, results: list[Verdict]) -> Path:
    """DIR/verdicts.json: every verdict, the legend and the exit status."""
    return write_json(Path(out) / "verdicts.json", {"legend": LEGEND, "exit_status": exit_status(results),
                                                    "verdicts": [v.to_dict() for v in results]})
