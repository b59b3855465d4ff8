"""Figure id -> recipe, title, the claim it tests, and whether it is faithful (caption known) or a
reconstruction. Recipes register themselves with `@figure(...)`, as timm registers models; the registry never
imports them (`repro.catalog` loads them all)."""
from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


CLAIMS = {
    "claim 1": "large piecewise-linear subspaces: very different inputs share one embedding",
    "claim 2": "local normal spaces: look-alike inputs have very different embeddings",
    "claim 3": "the Jacobian spectrum and directional Lipschitz estimates confirm both",
    "claim 4": "downstream classifiers follow the embedding, not the picture",
    "claim 5": "the framework is model- and dataset-agnostic",
    "imperceptibility": "the changes that move the embedding are imperceptible",
    "matching dynamics": "how matching converges",
    "beyond": "beyond the paper: a sister paper's result or a control the paper lacks",
}


@dataclass(frozen=True)
class Figure:
    id: int
    title: str
    tests: tuple[str, ...]        # keys of CLAIMS
    design: str                   # what the figure shows and why that tests the claim
    faithful: bool                # Figs 1-5: caption known; 6-20: reconstructions; 21-: beyond the paper
    metrics: tuple[str, ...]      # documented keys of figN.json["metrics"] (what `check` reads)
    recipe: Callable
    sweep: bool = False           # reads a long sharded sweep
    code: str = ""                # sha256 of the recipe's source file when it was loaded (part of the fingerprint)
    work: Callable | None = None  # (knobs, profile) -> [repro.work.Work]: what `repro plan` counts

    @property
    def kind(self) -> str:
        return "faithful" if self.faithful else "beyond the paper" if self.id > PAPER_FIGURES else "reconstruction"

    @property
    def label(self) -> str:
        """What the figure says about itself."""
        if self.id > PAPER_FIGURES:
            return f"BEYOND THE PAPER: arXiv:2401.15568 has {PAPER_FIGURES} figures; this one is designed here"
        if self.faithful:
            return f"FAITHFUL to the caption of arXiv:2401.15568 Fig {self.id} (redrawn from the caption, not a copy)"
        aim = ("to go beyond the paper" if self.tests == ("beyond",)
               else f"to test {', '.join(self.tests)} of the paper")
        return f"RECONSTRUCTION: the caption of arXiv:2401.15568 Fig {self.id} is unknown; designed here {aim}"

    def claim_text(self) -> str:
        return "; ".join(f"{t}: {CLAIMS[t]}" for t in self.tests)


FIGURES: dict[int, Figure] = {}
PAPER_FIGURES = 20   # the paper's own; figures after them go beyond it


def figure(id: int, title: str, tests: tuple[str, ...], design: str, metrics: tuple[str, ...],
           sweep: bool = False, work: Callable | None = None):
    """Register a recipe `recipe(ctx) -> repro.compose.Output` as figure `id`; `work(knobs, profile)` says what it
    computes (`repro.work`), for `repro plan`."""
    unknown = [t for t in tests if t not in CLAIMS]
    if unknown:
        raise ValueError(f"figure {id}: unknown claims {unknown}")

    def register(recipe: Callable) -> Callable:
        code = hashlib.sha256(Path(inspect.getfile(recipe)).read_bytes()).hexdigest()
        FIGURES[id] = Figure(id, title, tuple(tests), design, id <= 5, tuple(metrics), recipe, sweep, code, work)
        return recipe
    return register
