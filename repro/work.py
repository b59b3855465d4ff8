"""What a figure computes, counted before running it: the units `repro plan` turns into time, memory and disk.

Each recipe declares its work next to itself (`@figure(..., work=...)`), a function of its knobs and the
profile that returns `Work` items. Items with the same `key` are computed once per run (as `Context.shared`
and the sweeps do), so figures that read the same result count it once.
"""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("match", "jacobian", "lipschitz", "forward")
SURVIVE_STEP_COST = 2.5   # a transformation-aware step in plain steps (benchmarks/bench_survival.py measures it)


@dataclass(frozen=True)
class Work:
    key: str            # what the computation is; figures sharing a key share the result
    role: str           # the model role it runs on
    kind: str           # match: pairs x steps of forward+backward; jacobian: exact Jacobians; lipschitz: one
                        # Lipschitz study (its Jacobian, directions, estimates); forward: images embedded
    items: int          # pairs, Jacobians, studies or images
    steps: int = 1      # match: the step cap (every pair runs it unless it stops early)
    expected: int = 0   # match: the steps expected per pair (a stated assumption; 0: the cap)
    batch: int = 1      # pairs matched together
    samples: int = 0    # lipschitz: directions per family
    eps: int = 0        # lipschitz: steps of the eps grid
    optimize_steps: int = 0
    sweep: bool = False  # part of a sharded sweep (the Ray engine spreads it over workers)


def settings_steps(settings: dict, expected_paper_steps: int) -> tuple[int, int]:
    """(cap, expected) steps per pair: fast mode rarely meets its 1% stop under a budget, so it runs to its
    cap; the authors' procedure stops at its thresholds, after `expected_paper_steps` by assumption, unless
    its thresholds cannot be met (a cap run, as Fig 20 does)."""
    cap = int(settings.get("steps", 300 if settings.get("mode") == "fast" else 15000))
    if settings.get("survive"):   # two forward+backward passes a step, and the transformations: counted as more steps
        cap = round(cap * SURVIVE_STEP_COST)
    if settings.get("mode") == "paper" and settings.get("l2sq_below", 16.0) > 0 and settings.get("cos_above", 0.96) <= 1:
        return cap, min(cap, expected_paper_steps)
    return cap, cap


def pairs(key: str, role: str, count: int, settings: dict, profile) -> Work:
    """`count` pairs matched one at a time (`experiments.equivalence`, `compare`, `match_text`)."""
    cap, expected = settings_steps(settings, profile.expected_paper_steps)
    return Work(f"{key}:{role}:{sorted(settings.items())}", role, "match", count, cap, expected)


def sweep(key: str, role: str, images: int, settings: dict, batch: int, profile) -> Work:
    """The systematic N x N of `images` images of different classes, `batch` pairs at a time."""
    cap, expected = settings_steps(settings, profile.expected_paper_steps)
    return Work(f"sweep:{key}:{role}:{images}:{sorted(settings.items())}", role, "match", images * (images - 1), cap,
                expected, batch=batch, sweep=True)


def jacobians(key: str, role: str, count: int) -> Work:
    return Work(f"jacobian:{key}:{role}", role, "jacobian", count)


def lipschitz(key: str, role: str, knobs: dict, families: int = 4) -> Work:
    return Work(f"lipschitz:{key}:{role}", role, "lipschitz", 1, samples=knobs["samples"] * families,
                eps=len(knobs["eps"]), optimize_steps=knobs["optimize_steps"])


def forward(key: str, role: str, count: int) -> Work:
    return Work(f"forward:{key}:{role}", role, "forward", count)

