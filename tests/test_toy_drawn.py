"""The independently drawn shape set: its own renderer, the variety it promises, and its evaluation."""
import ast
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from probe.errors import ProbeError
from probe.models import load_encoder
from probe.toy import drawn
from probe.toy.data import class_names


def test_renderer_shares_no_code_with_the_training_generator():
    tree = ast.parse(Path(drawn.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any(name.startswith("probe.toy") for name in imported), imported


@pytest.mark.slow
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


def predictions(encoder, drawings, classes) -> list[str]:
    """Reference: each drawing's class by the largest cosine between its image embedding (the model called on its
    own PIL preprocessing) and the plain class names' text embeddings."""
    with torch.no_grad():
        images = F.normalize(encoder.model.encode_image(encoder.reference_input([d.image for d in drawings])), dim=1)
        texts = F.normalize(encoder.encode_text(list(classes)), dim=1)
    return [classes[i] for i in (images @ texts.T).argmax(1).tolist()]


def test_evaluation_counts_every_drawing():
    """Counts, accuracies per group and the confusion matrix equal a recount of predictions made here per
    drawing, over the 16 labels and over all the model's classes. On the mini-CLIP's architecture with random
    weights, whose answers are a mix of right and wrong (the trained model reads nearly all of them)."""
    encoder = load_encoder("mini-clip@random")
    drawings = drawn.drawn_set(1)
    classes = class_names()
    result = drawn.evaluate(encoder, drawings, classes)
    over16 = predictions(encoder, drawings, list(drawn.LABELS))
    over_all = predictions(encoder, drawings, classes)

    def share(keep):
        chosen = [i for i, d in enumerate(drawings) if keep(d)]
        return {"labels_16": pytest.approx(sum(over16[i] == drawings[i].label for i in chosen) / len(chosen)),
                "all_classes": pytest.approx(sum(over_all[i] == drawings[i].label for i in chosen) / len(chosen)),
                "n": len(chosen)}

    assert result["overall"] == share(lambda d: True) and result["overall"]["n"] == 32
    assert 0 < result["overall"]["labels_16"] < 1   # a recount of wrong and right answers, not a constant
    assert result["by_size"] == {f"{low:.2f}-{high:.2f}": share(lambda d, low=low, high=high: low <= d.size <= high)
                                 for low, high in drawn.SIZE_BINS}
    assert sum(v["n"] for v in result["by_size"].values()) == 32
    assert result["by_background"] == {b: share(lambda d, b=b: d.background == b) for b in drawn.BACKGROUNDS}
    assert result["by_style"] == {s: share(lambda d, s=s: d.style == s) for s in drawn.STYLES}
    assert result["by_resolution"] == {str(r): share(lambda d, r=r: d.resolution == r) for r in (64, 224)}
    confusion = np.zeros((16, 16), dtype=int)
    for d, predicted in zip(drawings, over16):
        confusion[drawn.LABELS.index(d.label), drawn.LABELS.index(predicted)] += 1
    assert result["confusion"] == confusion.tolist() and result["labels"] == list(drawn.LABELS)
