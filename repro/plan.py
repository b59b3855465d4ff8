"""`python -m repro plan`: what a profile's figures will cost before running them.

Per figure: its models and images, its work (`repro.work`: pairs x steps, Jacobians, Lipschitz studies,
images embedded), the forward+backward passes that work takes (at the step cap, and at the steps expected, a
stated assumption), the peak memory and disk, and a wall time estimated from a calibration on the device:
one forward+backward step of each model's architecture with random weights (no weight files needed) at batch 1
(after one warm-up) and at the sweep's batch. Without that device here, the checked-in table
`calibration.json` is used, and the plan says so. The total, and how the sharded sweeps spread over N Ray
workers (everything else runs on the driver, one figure after the other).

The cost model, kept simple on purpose (checked against measured runs by benchmarks/bench_plan.py):
matching costs one forward+backward per pair and step at its batch (plus MATCH_OVERHEAD, the loop's own work),
an exact Jacobian m backward passes at the sweep's batch (its VJPs are batched), a Lipschitz study one Jacobian
plus its optimised directions (forward+backward at the batch of directions) and its estimates (float64 forward
passes, FLOAT64 times a float32 one), an embedded image a third of a forward+backward step.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from probe.data import NAMED_SETS
from probe.errors import ProbeError
from probe.geometry import saved_activation_bytes
from probe.models import load_encoder, needs_hub, parse_spec, resolve_device
from repro.work import Work

CALIBRATION = Path(__file__).with_name("calibration.json")
MATCH_OVERHEAD = 0.3      # the matching loop's own work per step (metrics, projection), in batch-1 steps
FLOAT64 = 2.0             # a float64 forward pass against a float32 one (Lipschitz estimates)
FIGURE_SECONDS = 1.2      # drawing and writing one figure (PNG, JSON, manifest): 0.5-2 s on the quick profile
OUTPUT_BYTES = 1.5e6      # one figure's PNG and JSON


@dataclass
class Calibration:
    """Seconds of one forward+backward step (gradient to the input) of a model's architecture, by batch."""

    spec: str
    step: dict[int, float]        # batch -> seconds
    m: int                        # embedding size
    n: int                        # input size (3 x H x W)
    parameters: int
    peak_bytes: int               # activations autograd keeps for one image (measured), besides the weights
    source: str                   # "measured on DEVICE" or the table's note

    def seconds(self, batch: int) -> float:
        """Interpolated linearly in the batch between the measured ones."""
        known = sorted(self.step)
        low = max([b for b in known if b <= batch], default=known[0])
        high = min([b for b in known if b >= batch], default=known[-1])
        if low == high:
            return self.step[low] * batch / low
        share = (batch - low) / (high - low)
        return self.step[low] + share * (self.step[high] - self.step[low])

    def to_dict(self) -> dict:
        return {"step": {str(k): v for k, v in self.step.items()}, "m": self.m, "n": self.n,
                "parameters": self.parameters, "peak_bytes": self.peak_bytes, "source": self.source}


def random_twin(spec: str) -> str:
    """The spec of the same architecture with random weights (no weight file needed)."""
    parsed = parse_spec(spec)
    if parsed.weights and parsed.weights.startswith("random"):
        return str(parsed)
    if parsed.backend == "timm":
        return f"timm:{parsed.name}@random"
    return f"{parsed.backend}:{parsed.name}@random"


def calibrate(spec: str, device: str, batch: int, threads: int) -> Calibration:
    """Time forward+backward steps of the architecture with random weights: two at batch 1 (the second counts),
    and at `batch` two where a step is quick (the first pays one-off costs), one where it is slow."""
    dev = resolve_device(device)
    with _threads(threads):
        encoder = load_encoder(random_twin(spec), device=device)
        size = encoder.input_size
        parameters = sum(p.numel() for p in encoder.model.parameters())
        steps: dict[int, float] = {}
        for b in dict.fromkeys((1, batch)):
            x = torch.rand(b, 3, *size, device=dev, requires_grad=True)
            for _ in range(2 if b == 1 or steps[1] < 0.5 else 1):
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                start = time.perf_counter()
                embedding = encoder(x)
                torch.autograd.grad(embedding.sum(), x)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                steps[b] = time.perf_counter() - start
        activations = saved_activation_bytes(lambda v: encoder(v), torch.rand(3, *size, device=dev))
    return Calibration(spec, steps, int(embedding.shape[1]), 3 * size[0] * size[1], parameters, activations,
                       f"measured on {_device_name(dev)}, {threads} thread(s)")


def _device_name(dev: torch.device) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads max)"


class _threads:
    def __init__(self, count: int):
        self.count = count

    def __enter__(self):
        self.previous = torch.get_num_threads()
        torch.set_num_threads(self.count)

    def __exit__(self, *exc):
        torch.set_num_threads(self.previous)


def table(device_kind: str) -> dict[str, Calibration]:
    """The checked-in calibrations for a kind of device (`cpu`, `cuda`)."""
    document = json.loads(CALIBRATION.read_text())
    rows = document["devices"].get(device_kind)
    if rows is None:
        raise ProbeError(f"calibration.json has no rows for {device_kind!r} (it has {', '.join(document['devices'])})")
    return {spec: Calibration(spec, {int(k): v for k, v in row["step"].items()}, row["m"], row["n"],
                              row["parameters"], row["peak_bytes"], row["source"]) for spec, row in rows.items()}


# --- costing the work --------------------------------------------------------------------------------


@dataclass
class FigureCost:
    figure: int
    title: str
    models: dict[str, str]
    images: dict[str, str]
    work: list[Work]
    shared_with: dict[str, int] = field(default_factory=dict)   # work key -> the earlier figure that does it
    passes_cap: float = 0.0         # forward+backward passes (or equivalents)
    passes_expected: float = 0.0
    seconds_cap: float = 0.0
    seconds_expected: float = 0.0
    sweep_seconds: float = 0.0      # of seconds_expected: the sharded part
    peak_bytes: int = 0
    jacobians: int = 0


def work_seconds(work: Work, cal: Calibration, sweep_batch: int) -> tuple[float, float, float, float]:
    """(passes at the cap, passes expected, seconds at the cap, seconds expected) of one work item."""
    if work.kind == "match":
        batches = math.ceil(work.items / work.batch)
        step = cal.seconds(work.batch) + MATCH_OVERHEAD * cal.seconds(1)
        expected = work.expected or work.steps
        return (batches * work.steps * work.batch, batches * expected * work.batch, batches * work.steps * step,
                batches * expected * step)
    if work.kind == "jacobian":
        seconds = work.items * cal.m * cal.seconds(sweep_batch) / sweep_batch
        return work.items * cal.m, work.items * cal.m, seconds, seconds
    if work.kind == "lipschitz":
        jacobian = cal.m * cal.seconds(sweep_batch) / sweep_batch
        per_family = work.samples // 4 or 1
        optimize = (work.optimize_steps + 1) * cal.seconds(per_family)
        estimates = work.samples * work.eps * FLOAT64 * cal.seconds(16) / 16 / 3
        passes = cal.m + (work.optimize_steps + 1) * per_family + work.samples * work.eps / 3
        return passes, passes, jacobian + optimize + estimates, jacobian + optimize + estimates
    seconds = work.items * cal.seconds(1) / 3
    return work.items / 3, work.items / 3, seconds, seconds


def cost(figures, profile, calibrations: dict[str, Calibration]) -> list[FigureCost]:
    """Each figure's cost, work shared with an earlier figure of the list counted once (where it runs)."""
    sweep_batch = max([k.get("batch_size", 0) for k in profile.knobs.values()] + [8])
    done: dict[str, int] = {}
    out = []
    for figure in figures:
        knobs = profile.figure(figure.id)
        items = figure.work(knobs, profile) if figure.work else []
        entry = FigureCost(figure.id, figure.title, {r: profile.models[r] for r in _roles(items)},
                           {}, items)
        for work in items:
            cal = calibrations[profile.models[work.role]]
            if work.key in done:
                entry.shared_with[work.key] = done[work.key]
                continue
            done[work.key] = figure.id
            passes_cap, passes_expected, seconds_cap, seconds_expected = work_seconds(work, cal, sweep_batch)
            entry.passes_cap += passes_cap
            entry.passes_expected += passes_expected
            entry.seconds_cap += seconds_cap
            entry.seconds_expected += seconds_expected
            entry.sweep_seconds += seconds_expected if work.sweep else 0.0
            entry.jacobians += work.items if work.kind == "jacobian" else work.kind == "lipschitz"
            entry.peak_bytes = max(entry.peak_bytes, _peak(work, cal))
        entry.seconds_cap += FIGURE_SECONDS
        entry.seconds_expected += FIGURE_SECONDS
        out.append(entry)
    return out


def _roles(items: list[Work]) -> list[str]:
    return list(dict.fromkeys(w.role for w in items))


def _peak(work: Work, cal: Calibration) -> int:
    """Weights, the step's activations at its batch, and a float32 Jacobian (m x n) where one is held (twice the
    weights for the Lipschitz study's float64 copy)."""
    weights = 4 * cal.parameters
    if work.kind == "match":
        return weights + cal.peak_bytes * work.batch
    jacobian = 4 * cal.m * cal.n * 2
    rows = 32 if work.kind in ("jacobian", "lipschitz") else 1   # a chunk of batched VJPs
    return weights * (3 if work.kind == "lipschitz" else 1) + jacobian + cal.peak_bytes * rows


def spread(costs: list[FigureCost], workers: int) -> float:
    """Wall time with the sweeps spread over `workers` Ray workers (each loads its model once more)."""
    serial = sum(c.seconds_expected - c.sweep_seconds for c in costs)
    return serial + sum(c.sweep_seconds for c in costs) / max(1, workers)


def downloads(profile, figures) -> list[str]:
    """What the first run downloads from the Hugging Face Hub, and about how much."""
    lines = []
    roles = {w.role for f in figures if f.work for w in f.work(profile.figure(f.id), profile)}
    for role in sorted(roles):
        spec = profile.models[role]
        if needs_hub(parse_spec(spec)):
            lines.append(f"model {role}: {spec} (weights: {WEIGHT_DOWNLOADS.get(spec, 'size unknown here')})")
    sources: dict[str, list[str]] = {}
    for role, source in sorted(profile.images.items()):
        sources.setdefault(source, []).append(role)
    for source, roles_of in sources.items():
        kind, _, rest = source.partition(":")
        name, _, path = rest.partition("=")
        if kind == "named" and not path and name in NAMED_SETS:
            named = NAMED_SETS[name]
            lines.append(f"images ({', '.join(roles_of)}): {named.hub_id} ({named.split}): {named.download}"
                         + (" (gated: accept its terms on the Hub and log in)" if named.gated else ""))
    return lines


# Sizes of the pretrained weight files the presets download (the Hub's file listing, float32 weights).
WEIGHT_DOWNLOADS = {
    "vit-h-14": "open_clip_model.safetensors, 3.94 GB",
    "clip-b32": "open_clip_model.safetensors, 0.61 GB",
    "clip-l14": "open_clip_model.safetensors, 1.71 GB",
}


def _gb(value: float) -> str:
    return f"{value / 1e9:.1f} GB" if value >= 1e8 else f"{value / 1e6:.0f} MB"


def _time(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def describe(work: Work) -> str:
    if work.kind == "match":
        steps = f"{work.steps} steps" + (f" ({work.expected} expected)" if work.expected and
                                          work.expected != work.steps else "")
        return f"{work.items} pairs x {steps}" + (f", batch {work.batch}" if work.batch > 1 else "") + \
            (" [sweep]" if work.sweep else "")
    if work.kind == "jacobian":
        return f"{work.items} exact Jacobian(s)"
    if work.kind == "lipschitz":
        return (f"Lipschitz study: 1 Jacobian, {work.samples} directions x {work.eps} eps, "
                f"{work.optimize_steps} optimisation steps")
    return f"{work.items} images embedded"


def report(profile, figures, device: str, workers: int, calibrations, calibration_note: str) -> dict:
    """The plan as a JSON-able record, and printed."""
    costs = cost(figures, profile, calibrations)
    total_cap = sum(c.seconds_cap for c in costs)
    total = sum(c.seconds_expected for c in costs)
    print(f"repro plan: profile {profile.name}, device {device}, {len(figures)} figure(s); {calibration_note}")
    print(f"assumption: the authors' procedure meets its stopping thresholds after {profile.expected_paper_steps} "
          f"steps per pair ({profile.expected_note}); fast mode runs to its step cap")
    for c in costs:
        print(f"fig{c.figure:<3d} {_time(c.seconds_expected):>9s} expected, {_time(c.seconds_cap):>9s} at the caps, "
              f"peak {_gb(c.peak_bytes)}  {c.title[:60]}")
        for w in c.work:
            shared = f"  (computed by fig{c.shared_with[w.key]})" if w.key in c.shared_with else ""
            print(f"          {w.role} {profile.models[w.role]}: {describe(w)}{shared}")
    print(f"total: {_time(total)} expected, {_time(total_cap)} if every pair runs to its step cap; "
          f"forward+backward passes {sum(c.passes_expected for c in costs):,.0f} expected "
          f"({sum(c.passes_cap for c in costs):,.0f} at the caps); exact Jacobians {sum(c.jacobians for c in costs)}")
    for n in sorted({1, 2, 4, 8, workers}):
        print(f"  with --engine ray and {n} worker(s): {_time(spread(costs, n))} expected")
    peak = max((c.peak_bytes for c in costs), default=0)
    outputs = OUTPUT_BYTES * len(costs)
    print(f"peak memory {_gb(peak)}; disk: outputs about {_gb(outputs)} (+ sweep shards), and the downloads:")
    for line in downloads(profile, figures) or ["nothing (every model and image set is local)"]:
        print(f"  {line}")
    return {"profile": profile.name, "device": device, "calibration": calibration_note,
            "assumption": {"expected_paper_steps": profile.expected_paper_steps, "why": profile.expected_note},
            "figures": [{"figure": c.figure, "seconds_expected": c.seconds_expected, "seconds_cap": c.seconds_cap,
                         "passes_expected": c.passes_expected, "passes_cap": c.passes_cap, "jacobians": c.jacobians,
                         "peak_bytes": c.peak_bytes, "work": [describe(w) for w in c.work],
                         "shared_with": c.shared_with} for c in costs],
            "total_seconds_expected": total, "total_seconds_cap": total_cap,
            "ray_workers": {str(n): spread(costs, n) for n in sorted({1, 2, 4, 8, workers})},
            "peak_bytes": peak, "downloads": downloads(profile, figures),
            "calibrations": {spec: cal.to_dict() for spec, cal in calibrations.items()}}


def calibrations_for(profile, figures, device: str, use_table: bool) -> tuple[dict[str, Calibration], str]:
    """A calibration of every model the figures use: measured on `device` here, or from the checked-in table
    where the device is not here (or `use_table`)."""
    specs = list(dict.fromkeys(profile.models[w.role] for f in figures if f.work
                               for w in f.work(profile.figure(f.id), profile)))
    kind = torch.device(device).type
    available = kind == "cpu" or (kind == "cuda" and torch.cuda.is_available())
    if use_table or not available:
        rows = table(kind)
        missing = [s for s in specs if s not in rows]
        if missing:
            raise ProbeError(f"calibration.json has no {kind} rows for {', '.join(missing)}; run the plan where "
                             f"the device is, to measure them")
        why = "asked for" if use_table else f"no {kind} device here"
        return {s: rows[s] for s in specs}, f"from the checked-in table calibration.json ({why}): " + "; ".join(
            f"{s}: {rows[s].source}" for s in specs)
    batch = max([k.get("batch_size", 1) for k in profile.knobs.values()] + [8])
    twins: dict[str, Calibration] = {}   # one calibration per architecture (a model and its random control)
    for spec in specs:
        if random_twin(spec) not in twins:
            twins[random_twin(spec)] = calibrate(spec, device, batch, profile.threads)
    measured = {spec: replace(twins[random_twin(spec)], spec=spec) for spec in specs}
    return measured, f"calibrated now on {device} ({profile.threads} torch thread(s), batch 1 and {batch})"
