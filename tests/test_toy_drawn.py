"""The independently drawn shape set: its own renderer, the variety it promises, and its evaluation."""
import ast
from pathlib import Path

import numpy as np
import pytest

from probe.errors import ProbeError
from probe.toy import drawn


def test_renderer_shares_no_code_with_the_training_generator():
    tree = ast.parse(Path(drawn.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any(name.startswith("probe.toy") for name in imported), imported


def test_set_is_fixed_by_its_seed_and_covers_the_promised_range():
    a, b, c = drawn.drawn_set(2, seed=1), drawn.drawn_set(2, seed=1), drawn.drawn_set(2, seed=2)
    assert [d.image.tobytes() for d in a] == [d.image.tobytes() for d in b]
    assert [d.image.tobytes() for d in a] != [d.image.tobytes() for d in c]
    full = drawn.drawn_set(10)
    assert {d.label for d in full} == set(drawn.LABELS) and {d.resolution for d in full} == {64, 224}
    assert {d.background for d in full} == set(drawn.BACKGROUNDS) and {d.style for d in full} == set(drawn.STYLES)
    sizes = [d.size for d in full]
    assert min(sizes) < 0.2 and max(sizes) > 0.7 and all(0.15 <= s <= 0.75 for s in sizes)


@pytest.mark.parametrize("style", drawn.STYLES)
def test_the_shape_has_its_colour_and_its_size(style):
    rng = np.random.default_rng(0)
    image = drawn.draw("blue square", 0.5, "light", style, 224, rng)
    pixels = np.asarray(image).astype(int)
    blue = (pixels[..., 2] > 150) & (pixels[..., 0] < 80) & (pixels[..., 1] < 140)
    rows, cols = np.nonzero(blue)
    assert abs((cols.max() - cols.min() + 1) / 224 - 0.5) < 0.03 and abs((rows.max() - rows.min() + 1) / 224 - 0.5) < 0.03
    filled = blue.sum() / (0.5 * 224) ** 2
    assert filled > 0.9 if style == "filled" else 0.2 < filled < 0.6


def test_bad_labels_and_sizes_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ProbeError, match="unknown label"):
        drawn.draw("purple blob", 0.3, "light", "filled", 64, rng)
    with pytest.raises(ProbeError, match="size"):
        drawn.draw("red star", 0.9, "light", "filled", 64, rng)


def test_evaluation_counts_every_drawing():
    from probe.models import load_encoder
    from probe.toy.data import class_names

    drawings = drawn.drawn_set(1)
    result = drawn.evaluate(load_encoder("mini-clip"), drawings, class_names())
    assert result["overall"]["n"] == 32 and sum(map(sum, result["confusion"])) == 32
    assert sum(v["n"] for v in result["by_size"].values()) == 32
    assert all(0 <= v <= 1 for v in (result["overall"]["labels_16"], result["overall"]["all_classes"]))
