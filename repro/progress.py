"""Progress on the terminal: one line per figure and a bar for the stage running inside it (shard, pair,
step), from probe's CLI bars. The first Ctrl-C asks the running experiment to stop (the figure in progress is
not written; finished figures and shards are kept); a second one aborts at once."""
from __future__ import annotations

import sys

from probe.cli.progress import Bars


class FigureBars(Bars):
    def figure(self, position: int, count: int, figure) -> None:
        """A new figure starts: say which, and close the last stage's bar."""
        self._close_bar()
        self.stage = None
        print(f"[{position + 1}/{count}] fig{figure.id}: {figure.title}", file=sys.stderr, flush=True)
