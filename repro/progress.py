"""Progress on the terminal: one line per figure and a bar for the stage running inside it (shard, pair,
step). The first Ctrl-C asks the running experiment to stop (the figure in progress is not written; finished
figures and shards are kept); a second one aborts at once."""
from __future__ import annotations

import signal
import sys

from tqdm.auto import tqdm


class FigureBars:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None
        self.stage = None
        self.stop_requested = False
        try:
            self._previous = signal.signal(signal.SIGINT, self._interrupt)
        except ValueError:  # not the main thread
            self._previous = None

    def _interrupt(self, signum, frame):
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True
        print("\nstopping at the next step (Ctrl-C again to abort at once)...", file=sys.stderr)

    def figure(self, position: int, count: int, figure) -> None:
        """A new figure starts: say which, and reset the stage bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar, self.stage = None, None
        print(f"[{position + 1}/{count}] fig{figure.id}: {figure.title}", file=sys.stderr, flush=True)

    def __call__(self, stage: str, done: int, total: int, metrics: dict) -> bool:
        if self.enabled:
            if self.bar is None:
                self.bar = tqdm(total=total or None, leave=False, file=sys.stderr, dynamic_ncols=True)
            if stage != self.stage:
                self.stage = stage
                self.bar.reset(total=total or None)
                self.bar.set_description(stage[-60:], refresh=False)
            self.bar.n = done
            if metrics:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
            self.bar.refresh()
        return not self.stop_requested

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
