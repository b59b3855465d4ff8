"""`python -m repro check DIR`: compare a run's figures with `references.json` (what the paper and its sister
papers report, and the quick profile's own measured expectations for the mini-CLIP), each with a tolerance
and the profile and models it applies to. Per figure: reproduced, not reproduced, or not comparable (why).

A reference applies when the figure was made with its profile (a PROFILE-smoke run is judged as PROFILE) and,
where it names models, with those model specs in those roles; `not_comparable` entries say why a figure has
no numbers to compare with in a profile. Its metric (a key of figN.json's `metrics`, `a/b` for nested keys,
`reduce` min/max for lists) passes when `value op reference` holds within the tolerance:
`>=`: value >= reference - tolerance; `<=`: value <= reference + tolerance; `==`: |value - reference| <= tolerance."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from probe.errors import ProbeError

REFERENCES = Path(__file__).with_name("references.json")
STATUSES = ("reproduced", "not reproduced", "not comparable")


@dataclass(frozen=True)
class Reference:
    figure: int
    metric: str
    op: str
    value: float
    tolerance: float
    profiles: tuple[str, ...]
    source: str
    models: dict = field(default_factory=dict)   # role -> spec the reference was measured or reported with
    reduce: str | None = None

    def mismatch(self, record: dict) -> str | None:
        """Why this reference does not apply to a figure record (None: it applies)."""
        profile = str(record.get("profile")).removesuffix("-smoke")
        if profile not in self.profiles:
            return f"references are for the {'/'.join(self.profiles)} profile, this is {record.get('profile')}"
        for role, spec in self.models.items():
            used = record.get("models", {}).get(role, {}).get("spec")
            if used != spec:
                return f"references are for {role} model {spec}, this run used {used}"
        return None

    def read(self, metrics: dict):
        value = metrics
        for part in self.metric.split("/"):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, list) and self.reduce:
            value = None if None in value or not value else (min(value) if self.reduce == "min" else max(value))
        return value

    def passes(self, value) -> bool:
        if not isinstance(value, (int, float)) or value != value:   # missing, not a number, or NaN
            return False
        if self.op == ">=":
            return value >= self.value - self.tolerance
        if self.op == "<=":
            return value <= self.value + self.tolerance
        return abs(value - self.value) <= self.tolerance

    def describe(self) -> str:
        target = f"{self.op} {self.value:g}" + (f" (tolerance {self.tolerance:g})" if self.tolerance else "")
        return f"{self.reduce + ' of ' if self.reduce else ''}{self.metric} {target}"


@dataclass
class Verdict:
    figure: int
    status: str
    reason: str
    rows: list[tuple[Reference, object, bool]] = field(default_factory=list)


@dataclass(frozen=True)
class NotComparable:
    """Why a figure has no numbers to compare with in a profile (the paper gives none, or the profile cannot
    test the claim)."""

    figure: int
    profiles: tuple[str, ...]
    reason: str


def load_references(path: Path = REFERENCES) -> tuple[list[Reference], list[NotComparable]]:
    try:
        document = json.loads(Path(path).read_text())
        references = [Reference(e["figure"], e["metric"], e["op"], e["value"], e.get("tolerance", 0.0),
                                tuple(e["profiles"]), e["source"], e.get("models", {}), e.get("reduce"))
                      for e in document["references"]]
        notes = [NotComparable(e["figure"], tuple(e["profiles"]), e["reason"]) for e in document["not_comparable"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ProbeError(f"references file {path} is not readable: {err}") from err
    bad = [r for r in references if r.op not in (">=", "<=", "==")]
    if bad:
        raise ProbeError(f"references file {path}: unknown op {bad[0].op!r} (use >=, <= or ==)")
    return references, notes


def judge(figure_id: int, record: dict | None, references: list[Reference],
          notes: list[NotComparable] = ()) -> Verdict:
    mine = [r for r in references if r.figure == figure_id]
    if record is None:
        return Verdict(figure_id, "not comparable", "no complete figN.json/figN.png (not run, interrupted or corrupt)")
    profile = str(record.get("profile")).removesuffix("-smoke")
    note = next((n for n in notes if n.figure == figure_id and profile in n.profiles), None)
    if note is not None:
        return Verdict(figure_id, "not comparable", note.reason)
    if not mine:
        return Verdict(figure_id, "not comparable", "no reference numbers for this figure")
    applicable = [r for r in mine if r.mismatch(record) is None]
    if not applicable:
        return Verdict(figure_id, "not comparable", mine[0].mismatch(record))
    rows = [(r, r.read(record.get("metrics", {})), False) for r in applicable]
    rows = [(r, value, r.passes(value)) for r, value, _ in rows]
    failed = [r for r, _, ok in rows if not ok]
    if failed:
        return Verdict(figure_id, "not reproduced", "; ".join(f"{r.describe()} fails" for r in failed), rows)
    return Verdict(figure_id, "reproduced", f"{len(rows)} reference(s) hold", rows)


def verdicts(out: Path) -> list[Verdict]:
    from repro.registry import all_figures
    from repro.runner import read_record

    out = Path(out)
    if not out.is_dir():
        raise ProbeError(f"{out}: no such folder (give the --out folder of a repro run)")
    references, notes = load_references()
    return [judge(fid, read_record(out, fid), references, notes) for fid in all_figures()]


def _value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_table(results: list[Verdict]) -> None:
    from repro.registry import all_figures

    figures = all_figures()
    for v in results:
        print(f"fig{v.figure:<3d} {v.status:15s} {figures[v.figure].title[:70]}")
        if v.status == "not comparable":
            print(f"        why: {v.reason}")
        for ref, value, ok in v.rows:
            print(f"        {'ok  ' if ok else 'FAIL'} {ref.describe()}: got {_value(value)}  [{ref.source}]")
    counts = {s: sum(v.status == s for v in results) for s in STATUSES}
    print(", ".join(f"{n} {s}" for s, n in counts.items()))


def main(out: str) -> int:
    from repro import report

    results = verdicts(Path(out))
    print_table(results)
    report.write(Path(out), results)
    return 1 if any(v.status == "not reproduced" for v in results) else 0
