"""A recipe's output, and one PNG per figure: the panels the library's matplotlib builders drew, tiled row
by row under a banner that says what the figure is (faithful or reconstruction) and above a footer with the
model, weights, seed and every substitution of the profile (pasted as pixels: re-drawing the tiles through
matplotlib doubled the cost of every figure)."""
from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

DPI = 100


@dataclass
class Output:
    """What a recipe returns: panels as rows of (name, matplotlib figure, numbers plotted), the numbers
    `check` reads (`metrics`), and notes printed on the figure."""

    rows: list[list[tuple[str, Any, dict]]]
    metrics: dict
    notes: list[str] = field(default_factory=list)

    def data(self) -> dict:
        return {name: numbers for row in self.rows for name, _, numbers in row}


def pick(run, *names: str) -> list[tuple[str, Any, dict]]:
    """The named panels of an experiment result's figures, in the order asked; the others are closed."""
    panels = {name: (name, fig, data) for name, fig, data in run.figures()}
    for name, (_, fig, _) in panels.items():
        if name not in names:
            plt.close(fig)
    return [panels[name] for name in names if name in panels]


def _render(fig) -> Image.Image:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _tile(rows: list[list[Image.Image]], gap: int = 12) -> Image.Image:
    widths = [sum(p.width for p in row) + gap * (len(row) - 1) for row in rows]
    heights = [max(p.height for p in row) for row in rows]
    canvas = Image.new("RGB", (max(widths), sum(heights) + gap * (len(rows) - 1)), "white")
    y = 0
    for row, width, height in zip(rows, widths, heights):
        x = (canvas.width - width) // 2
        for panel in row:
            canvas.paste(panel, (x, y + (height - panel.height) // 2))
            x += panel.width + gap
        y += height + gap
    return canvas


def _text_block(lines: list[tuple[str, float, str, str]], width: int, align: str) -> Image.Image:
    """Lines of (text, font size, weight, colour) drawn by matplotlib on a white strip `width` pixels wide."""
    height = sum(size for _, size, _, _ in lines) * 1.45 / 72 + 0.15
    fig = plt.figure(figsize=(width / DPI, height), dpi=DPI)
    y = 1 - 0.08 / height
    for text, size, weight, colour in lines:
        x = 0.5 if align == "center" else 0.01
        fig.text(x, y, text, ha=align, va="top", fontsize=size, weight=weight, color=colour)
        y -= size * 1.45 / 72 / height
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    plt.close(fig)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def compose(rows: list[list[tuple[str, Any, dict]]], title: str, label: str, faithful: bool,
            footer: list[str]) -> bytes:
    """One PNG: the panels tiled, `title` and `label` above, `footer` lines below."""
    canvas = _tile([[_render(fig) for _, fig, _ in row] for row in rows if row])
    width = max(canvas.width, 900)

    def wrap(text: str, size: float) -> list[str]:   # ~0.62 em per character in DejaVu Sans
        return textwrap.wrap(text, int(width / (0.62 * size * DPI / 72)))

    header = [(line, 14, "bold", "black") for line in wrap(title, 14 * 1.1)]
    header += [(line, 11, "normal", "darkgreen" if faithful else "darkorange") for line in wrap(label, 11)]
    notes = [(w, 8.5, "normal", "#333333") for line in footer for w in wrap(line, 8.5)]
    parts = [_text_block(header, width, "center"), canvas, _text_block(notes, width, "left")]
    page = Image.new("RGB", (width, sum(p.height for p in parts) + 20), "white")
    y = 0
    for part in parts:
        page.paste(part, ((width - part.width) // 2, y))
        y += part.height + 10
    buffer = io.BytesIO()
    page.save(buffer, format="PNG")
    return buffer.getvalue()
