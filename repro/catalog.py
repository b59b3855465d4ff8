"""Every figure, loaded and looked up: importing the recipes registers them (`repro.registry.figure`)."""
from __future__ import annotations

import re

from probe.errors import ProbeError
from repro.figures import (fig01, fig02, fig03, fig04, fig05, fig06, fig07, fig08, fig09, fig10,  # noqa: F401
                           fig11, fig12, fig13, fig14, fig15, fig16, fig17, fig18, fig19, fig20, fig21)
from repro.registry import FIGURES, Figure


def all_figures() -> dict[int, Figure]:
    return dict(sorted(FIGURES.items()))


def get(id: int) -> Figure:
    figures = all_figures()
    if id not in figures:
        raise ProbeError(f"unknown figure {id}; figures are {min(figures)}-{max(figures)} (python -m repro list)")
    return figures[id]


def parse_selection(text: str) -> list[int]:
    """`1,3-5` -> [1, 3, 4, 5] (sorted, unique), every id a registered figure."""
    known = all_figures()
    chosen: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise ProbeError(f"--figures {text!r}: expected ids and ranges like 1,3-5")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if low > high:
            raise ProbeError(f"--figures {text!r}: range {part} runs backwards")
        missing = [i for i in range(low, high + 1) if i not in known]
        if missing:
            raise ProbeError(f"--figures {text!r}: no figure {missing[0]} (figures are {min(known)}-{max(known)})")
        chosen.update(range(low, high + 1))
    return sorted(chosen)
