"""The systematic evaluation counts correctly, on stand-in matchers whose answers are known."""
import math
from types import SimpleNamespace

import pytest
import torch

from probe.data import ImageSet
from probe.errors import ProbeError
from probe.evaluate import systematic_evaluation
from probe.zeroshot import prototype_head, text_head

CLASSES = ["tench", "church", "golf ball", "parachute"]


def image_set(per_class: int = 1) -> ImageSet:
    """Distinct 8-bit-exact images at the tiny model's input size, `per_class` of each class."""
    g = torch.Generator().manual_seed(0)
    n = len(CLASSES) * per_class
    images = list((torch.rand(n, 3, 224, 224, generator=g) * 255).round() / 255)
    images[0] = torch.full((3, 224, 224), 0.2)
    labels = [c for c in range(len(CLASSES)) for _ in range(per_class)]
    return ImageSet(images, labels, list(CLASSES), [f"img{i}" for i in range(n)], "test")


def returns_targets(encoder, sources, targets):
    """A perfect matcher: the matched image is the target itself."""
    return SimpleNamespace(images=targets.clone(), converged=torch.ones(len(targets), dtype=torch.bool))


def returns_sources(encoder, sources, targets):
    """A matcher that changes nothing."""
    return SimpleNamespace(images=sources.clone(), converged=torch.zeros(len(sources), dtype=torch.bool))


@pytest.fixture(scope="module")
def own_class_head(tiny_encoder):
    """Prototypes = the images themselves, so each clean image is classified as its own class."""
    images = image_set()
    return prototype_head(tiny_encoder, images.at_model_input(tiny_encoder), images.labels, CLASSES)


def test_perfect_matcher_gives_99_to_0(tiny_encoder, own_class_head):
    result = systematic_evaluation(tiny_encoder, own_class_head, image_set(), match_fn=returns_targets,
                                   batch_size=5)
    assert result.clean_accuracy == 1.0
    assert result.success_rate == 1.0 and result.matched_accuracy == 0.0
    matrix = result.success_matrix
    assert torch.isnan(matrix.diagonal()).all()
    off_diagonal = ~torch.eye(4, dtype=torch.bool)
    assert (matrix[off_diagonal] == 1).all()
    summary = result.summary()
    assert summary["pairs_run"] == 12 and summary["converged"] == 12
    assert summary["success_matrix"][0] == [None, 1.0, 1.0, 1.0]
    first = {k: summary["pairs"][0][k] for k in ("source", "target", "predicted", "target_probability", "converged")}
    assert first == {"source": 0, "target": 1, "predicted": "church",
                     "target_probability": pytest.approx(result.matched_probabilities[0, 1].item()), "converged": True}


@pytest.mark.slow
def test_matcher_that_fails_and_one_that_half_succeeds(tiny_encoder, own_class_head):
    result = systematic_evaluation(tiny_encoder, own_class_head, image_set(), match_fn=returns_sources)
    assert result.success_rate == 0.0 and result.matched_accuracy == 1.0 and int(result.converged.sum()) == 0

    stacked = image_set().at_model_input(tiny_encoder)

    def even_targets_only(encoder, sources, targets):
        """Succeeds (returns the target) only when the target is image 0 or 2."""
        js = [next(j for j, image in enumerate(stacked) if torch.equal(image, t)) for t in targets]
        keep = torch.tensor([j % 2 == 0 for j in js]).view(-1, 1, 1, 1)
        return SimpleNamespace(images=torch.where(keep, targets, sources), converged=keep.flatten())

    result = systematic_evaluation(tiny_encoder, own_class_head, image_set(), match_fn=even_targets_only,
                                   batch_size=5)
    expected = torch.tensor([[math.nan, 0, 1, 0], [1, math.nan, 1, 0], [1, 0, math.nan, 0], [1, 0, 1, math.nan]])
    assert torch.equal(torch.isnan(result.success_matrix), torch.isnan(expected))
    assert torch.equal(result.success_matrix.nan_to_num(-1), expected.nan_to_num(-1))
    assert result.success_rate == pytest.approx(6 / 12)


def test_text_head_success_follows_the_targets_clean_prediction(tiny_encoder):
    head = text_head(tiny_encoder, CLASSES)  # random tiny model: arbitrary, but deterministic predictions
    result = systematic_evaluation(tiny_encoder, head, image_set(), match_fn=returns_targets)
    clean_correct = (result.clean_probabilities.argmax(1) == torch.tensor(result.labels)).float()
    for (i, j), row in zip(result.pairs, result.matched_probabilities):
        assert result.success_matrix[i, j] == clean_correct[j]
        assert torch.allclose(row, result.clean_probabilities[j], atol=1e-5)


def test_same_class_pairs_are_excluded_and_classes_must_agree(tiny_encoder, own_class_head):
    images = image_set(per_class=2)
    result = systematic_evaluation(tiny_encoder, own_class_head, images, match_fn=returns_targets, batch_size=16)
    assert len(result.pairs) == 8 * 6
    assert torch.isnan(result.success_matrix[0, 1]) and not torch.isnan(result.success_matrix[0, 2])
    with pytest.raises(ProbeError, match="differ from the image set"):
        systematic_evaluation(tiny_encoder, text_head(tiny_encoder, ["a", "b"]), images, match_fn=returns_targets)


def test_success_matrix_figure_data():
    from probe.plots import success_matrix_figure

    matrix = torch.tensor([[math.nan, 1.0], [0.0, math.nan]])
    _, data = success_matrix_figure(matrix, ["a", "b"], ["a", "b"])
    assert data["success_matrix"] == [[None, 1.0], [0.0, None]] and data["success_rate"] == 0.5


def test_matched_images_are_classified_as_saved_8_bit_images(tiny_encoder, own_class_head):
    """A matcher returning each target plus less than half an 8-bit level of noise: rounding recovers the target
    exactly, so every matched row equals the clean target's row; without the rounding it would not."""
    gen = torch.Generator().manual_seed(1)

    def target_plus_noise(encoder, sources, targets):
        noise = (torch.rand(targets.shape, generator=gen) - 0.5) * (0.9 / 255)
        return SimpleNamespace(images=(targets + noise).clamp(0, 1), converged=torch.ones(len(targets), dtype=torch.bool))

    result = systematic_evaluation(tiny_encoder, own_class_head, image_set(), match_fn=target_plus_noise)
    for (i, j), row in zip(result.pairs, result.matched_probabilities):
        assert torch.equal(row, result.clean_probabilities[j])
    assert result.summary()["pairs"][0]["psnr_db"] < 60   # the pixels moved from the source (to the target)
