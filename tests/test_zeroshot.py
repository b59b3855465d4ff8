"""Zero-shot heads against hand computations, templates, prototype heads, the heatmap and the classify CLI."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from probe.cli import main
from probe.errors import ProbeError
from probe.images import save_png
from probe.plots import vision_text_figure
from probe.toy.data import class_names
from probe.zeroshot import (ZeroShotHead, ensemble_templates, logit_scale_of, prototype_head, resolve_templates,
                            text_head, vision_text_matrix)

CLASSES = ["red circle", "blue star", "green square"]
SHAPES = Path(__file__).resolve().parents[1] / "examples" / "shapes"


def images(n: int, seed: int = 0, size: int = 64) -> torch.Tensor:
    """Distinct 8-bit-exact images: a flat grey, a flat light and noise."""
    g = torch.Generator().manual_seed(seed)
    out = (torch.rand(n, 3, size, size, generator=g) * 255).round() / 255
    out[0] = 0.1
    if n > 1:
        out[1] = 0.9
    return out


@pytest.fixture(scope="module")
def no_text_encoder():
    from probe.models import load_encoder

    return load_encoder("timm:test_vit.r160_in1k@random")


def test_text_head_equals_hand_computation(tiny_encoder):
    pixels = images(4)
    head = text_head(tiny_encoder, CLASSES)
    probs = vision_text_matrix(tiny_encoder, head, pixels)
    with torch.no_grad():
        img = F.normalize(tiny_encoder(pixels), dim=-1)
        txt = F.normalize(tiny_encoder.encode_text(CLASSES), dim=-1)
    expected = (tiny_encoder.logit_scale * img @ txt.T).softmax(dim=-1)
    assert probs.shape == (4, 3)
    assert torch.allclose(probs.sum(dim=1), torch.ones(4), atol=1e-6)
    assert torch.allclose(probs, expected, atol=1e-6)
    assert head.scale == pytest.approx(tiny_encoder.logit_scale) and head.scale_source == "model"
    assert torch.allclose(head.probabilities(img * 7.0), expected, atol=1e-6)  # any embedding norm


def test_template_ensemble_is_renormalised_mean_of_normalised_prompts(tiny_encoder, tmp_path):
    templates = ["a photo of a {}.", "a drawing of the {}"]
    head = text_head(tiny_encoder, CLASSES, templates=templates)
    with torch.no_grad():
        for row, name in zip(head.weights, CLASSES):
            prompts = F.normalize(tiny_encoder.encode_text([t.format(name) for t in templates]), dim=-1)
            assert torch.allclose(row, F.normalize(prompts.mean(dim=0), dim=0), atol=1e-6)
    plain = text_head(tiny_encoder, CLASSES, templates="none")
    assert not torch.allclose(plain.weights, head.weights, atol=1e-3)

    path = tmp_path / "templates.txt"
    path.write_text("# my prompts\na photo of a {}.\n\na drawing of the {}\n")
    assert resolve_templates(str(path)) == tuple(templates)
    assert torch.allclose(text_head(tiny_encoder, CLASSES, templates=str(path)).weights, head.weights)


def test_template_choices_and_errors(tmp_path):
    assert resolve_templates("none") == ("{}",)
    assert resolve_templates("ensemble") == ensemble_templates() and len(ensemble_templates()) == 80
    assert all(t.count("{}") == 1 for t in ensemble_templates())
    with pytest.raises(ProbeError, match="exactly once"):
        resolve_templates(["a photo"])
    with pytest.raises(ProbeError, match="no such file"):
        resolve_templates(str(tmp_path / "missing.txt"))
    with pytest.raises(ProbeError, match="at least 2 classes"):
        text_head(SimpleNamespace(has_text=True), ["only"])


def test_logit_scale_fallback_says_so():
    assert logit_scale_of(SimpleNamespace(logit_scale=None)) == (100.0, "fallback 100 (the model has no logit scale)")
    assert logit_scale_of(SimpleNamespace(logit_scale=50.0)) == (50.0, "model")
    assert logit_scale_of(SimpleNamespace(logit_scale=50.0), scale=10) == (10.0, "given")


def test_no_text_tower_offers_prototype_head(no_text_encoder):
    with pytest.raises(ProbeError, match="no text tower.*prototype"):
        text_head(no_text_encoder, CLASSES)
    reference = images(6, seed=1, size=48)
    labels = [0, 0, 1, 1, 2, 2]
    head = prototype_head(no_text_encoder, reference, labels, CLASSES)
    with torch.no_grad():
        emb = F.normalize(no_text_encoder(reference), dim=-1)
    protos = torch.stack([F.normalize(emb[2 * c:2 * c + 2].mean(0), dim=0) for c in range(3)])
    assert torch.allclose(head.weights, protos, atol=1e-6)
    assert head.kind == "prototype" and head.scale == 100.0
    probs = vision_text_matrix(no_text_encoder, head, reference)
    assert torch.allclose(probs, (100.0 * emb @ protos.T).softmax(-1), atol=1e-5)
    with pytest.raises(ProbeError, match="no reference images"):
        prototype_head(no_text_encoder, reference[:4], labels[:4], CLASSES)


def test_vision_text_figure_carries_its_numbers():
    """The heatmap shows the given matrix (not transposed, on a fixed 0..1 colour scale), each cell's number is
    written in it, and each row's most probable class, nowhere near the diagonal here, is the one outlined."""
    probs = torch.tensor([[0.2, 0.7, 0.1], [0.5, 0.1, 0.4]])
    fig, data = vision_text_figure(probs, ["a.png", "b.png"], CLASSES, title="t")
    ax = fig.axes[0]
    heatmap = ax.images[0]
    assert np.array_equal(heatmap.get_array(), probs.double().numpy()) and heatmap.get_clim() == (0.0, 1.0)
    cells = {(round(text.get_position()[1]), round(text.get_position()[0])): text.get_text() for text in ax.texts}
    assert cells == {(0, 0): "0.20", (0, 1): "0.70", (0, 2): "0.10", (1, 0): "0.50", (1, 1): "0.10", (1, 2): "0.40"}
    outlined = [(round(patch.get_y() + 0.5), round(patch.get_x() + 0.5)) for patch in ax.patches]
    assert outlined == [(0, 1), (1, 0)]   # (row, column): "blue star" for a.png, "red circle" for b.png
    assert [label.get_text() for label in ax.get_xticklabels()] == CLASSES
    assert [label.get_text() for label in ax.get_yticklabels()] == ["a.png", "b.png"]
    assert data["predictions"] == ["blue star", "red circle"] and data["probabilities"] == probs.tolist()
    assert ax.get_title() == "t"


def test_classify_cli_end_to_end(mini_clip, tmp_path, capsys):
    """The shipped mini-CLIP over its 30 classes: the saved probabilities equal a softmax of the model's own
    logit scale times the cosines of open_clip's image and text embeddings (computed here), and each shipped
    shape picture is read as its own class, in the summary, the figure's numbers and the printed line."""
    paths = sorted(SHAPES.glob("*.png"))
    classes = class_names()
    out = tmp_path / "out"
    assert main(["classify", "--model", "mini-clip", "--images", *map(str, paths), "--labels", ",".join(classes),
                 "--out", str(out)]) == 0
    record = json.loads((out / "summary.json").read_text())
    model = mini_clip.model
    with torch.no_grad():
        pictures = torch.stack([mini_clip.reference_transform(Image.open(path)) for path in paths])
        image_emb = F.normalize(model.encode_image(pictures), dim=-1)
        text_emb = F.normalize(mini_clip.encode_text(classes), dim=-1)
        scale = float(model.logit_scale.exp())
    expected = (scale * image_emb @ text_emb.T).softmax(dim=-1)
    torch.testing.assert_close(torch.tensor(record["probabilities"]), expected, rtol=1e-4, atol=1e-12)
    own = [path.stem.replace("_", " ") for path in paths]   # blue_star.png is a "blue star"
    assert record["predictions"] == own and record["labels"] == classes
    assert record["images"] == [str(p) for p in paths] and record["weights"].startswith("mini-clip@sha256:")
    assert record["head"]["logit_scale"] == pytest.approx(scale, rel=1e-6) and record["head"]["templates"] == ["{}"]
    figure = json.loads((out / "classify.json").read_text())
    assert figure["probabilities"] == record["probabilities"] and figure["predictions"] == own
    assert (out / "classify.png").stat().st_size > 0
    printed = capsys.readouterr().out.splitlines()[0].split("; ")
    best = expected.max(dim=1).values
    assert printed == [f"{path.name}: {name} ({float(p):.3f})" for path, name, p in zip(paths, own, best)]


def test_classify_cli_bad_arguments_give_one_line(tmp_path, capsys):
    image = tmp_path / "a.png"
    save_png(images(1)[0], image)
    common = ["classify", "--model", "tiny", "--images", str(image), "--out", str(tmp_path / "o")]
    assert main(common + ["--labels", "only"]) == 2
    assert main(common + ["--labels", "a,b", "--templates", str(tmp_path / "nope.txt")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "give at least 2 comma-separated class names" in errors[0] and "nope.txt" in errors[1]
    with pytest.raises(SystemExit) as exit_info:
        main(["classify", "--images", str(tmp_path / "missing.png"), "--labels", "a,b", "--out", "o"])
    assert exit_info.value.code == 2


def test_classify_cli_without_text_tower(tmp_path, capsys):
    image = tmp_path / "a.png"
    save_png(images(1)[0], image)
    save_png(images(1)[0], tmp_path / "ref" / "cat" / "1.png")
    save_png(images(3)[2], tmp_path / "ref" / "dog" / "1.png")
    common = ["classify", "--model", "timm:test_vit.r160_in1k@random", "--images", str(image),
              "--out", str(tmp_path / "o")]
    assert main(common + ["--labels", "cat,dog"]) == 2
    assert "no text tower" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # a failed run creates nothing
    assert main(common + ["--reference", str(tmp_path / "ref")]) == 0
    record = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert record["labels"] == ["cat", "dog"] and record["head"]["head"] == "prototype"
    assert record["predictions"] == ["cat"]  # the image is the cat reference itself


def test_head_probabilities_by_hand(device):
    """logits = scale * cos(embedding, class) and probabilities their softmax over the classes, per embedding, by
    hand in NumPy float64: for a batch of raw embeddings of different norms, against unit class vectors on the
    device (the embeddings given on the CPU)."""
    gen = torch.Generator().manual_seed(0)
    weights = F.normalize(torch.randn(3, 4, generator=gen, dtype=torch.float64), dim=1).float()
    head = ZeroShotHead(tuple(CLASSES), weights.to(device), 10.0, "prototype", "test")
    embeddings = torch.randn(2, 4, generator=gen) * torch.tensor([[0.5], [7.0]])
    e, w = embeddings.double().numpy(), weights.double().numpy()
    logits = 10.0 * (e / np.linalg.norm(e, axis=1, keepdims=True)) @ w.T
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(head.logits(embeddings).cpu().numpy(), logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(head.probabilities(embeddings).cpu().numpy(), probabilities, rtol=1e-5, atol=1e-7)
