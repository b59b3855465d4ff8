"""The one progress-and-cancel protocol every long call in probe takes.

A progress callback is `progress(stage, done, total, metrics) -> bool | None`:

* `stage`: what is running ("match", "jacobian", "krylov", "lipschitz", "pairs", "train", ...);
* `done` of `total` units of that stage (`total` 0 when unknown);
* `metrics`: numbers worth showing now (loss, cosine, ...), plain floats.

Returning False asks the call to stop: it stops at its next check and returns a partial result marked
`cancelled` (the experiments in `probe.experiments` do this for every call). The library never prints;
the CLI and `repro` turn callbacks into tqdm bars (`probe.terminal`), the app into a progress bar and live curves.
"""
from __future__ import annotations

from typing import Callable, Mapping

Progress = Callable[[str, int, int, Mapping[str, float]], "bool | None"]


class Cancelled(Exception):
    """Raised inside a long computation when its progress callback returned False; the experiment that
    started it catches it and returns what was finished, marked cancelled."""

    def __init__(self, stage: str, done: int, total: int):
        super().__init__(f"{stage} cancelled after {done} of {total}")
        self.stage, self.done, self.total = stage, done, total


def report(progress: Progress | None, stage: str, done: int, total: int = 0,
           metrics: Mapping[str, float] | None = None) -> bool:
    """Tell `progress` where a stage is; True to go on, False when the caller asked to stop."""
    if progress is None:
        return True
    return progress(stage, done, total, dict(metrics or {})) is not False


def check(progress: Progress | None, stage: str, done: int, total: int = 0,
          metrics: Mapping[str, float] | None = None) -> None:
    """`report`, raising Cancelled when the caller asked to stop (for loops deep inside a computation)."""
    if not report(progress, stage, done, total, metrics):
        raise Cancelled(stage, done, total)


def within(progress: Progress | None, prefix: str) -> Progress | None:
    """A callback that reports a sub-computation's stages as `prefix/stage` to `progress`."""
    if progress is None:
        return None
    return lambda stage, done, total, metrics: progress(f"{prefix}/{stage}", done, total, metrics)
