"""Progress on the terminal: tqdm bars for the library's progress callbacks (`probe.progress`), the only place
probe draws bars; the CLI and `repro` both use them (`repro` also announces each figure).

The first Ctrl-C asks the running call to stop (the callback returns False), so the command can save the
partial result it gets back; a second Ctrl-C interrupts at once."""
from __future__ import annotations

import signal
import sys

from tqdm.auto import tqdm


class Bars:
    """A progress callback: one bar per stage on stderr (a new stage closes the last one), and a stop request
    after the first Ctrl-C."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.stage: str | None = None
        self.bar = None
        self.stop_requested = False
        try:
            self._previous = signal.signal(signal.SIGINT, self._interrupt)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            self._previous = None

    def _interrupt(self, signum, frame):
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True
        print("\nstopping at the next step (Ctrl-C again to abort at once)...", file=sys.stderr)

    def __call__(self, stage: str, done: int, total: int, metrics: dict) -> bool:
        if self.enabled:
            if stage != self.stage:
                self._close_bar()
                self.stage = stage
                self.bar = tqdm(total=total or None, desc=stage[-60:], leave=False, file=sys.stderr, dynamic_ncols=True)
            self.bar.n = done
            if metrics:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
            self.bar.refresh()
        return not self.stop_requested

    def announce(self, position: int, count: int, figure) -> None:
        """A new figure of a `repro` run starts: say which, and close the last stage's bar."""
        self._close_bar()
        self.stage = None
        print(f"[{position + 1}/{count}] fig{figure.id}: {figure.title}", file=sys.stderr, flush=True)

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        """Close the bar and give Ctrl-C back to Python."""
        self._close_bar()
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
