"""Zero-shot heads against hand computations, templates, prototype heads, the heatmap and the classify CLI."""
import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from probe.errors import ProbeError
from probe.images import save_png
from probe.zeroshot import (ensemble_templates, logit_scale_of, prototype_head, resolve_templates, text_head,
                            vision_text_matrix)

CLASSES = ["red circle", "blue star", "green square"]


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
    from probe.plots import vision_text_figure

    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    fig, data = vision_text_figure(probs, ["a.png", "b.png"], CLASSES, title="t")
    assert torch.allclose(torch.tensor(data["probabilities"]), probs)
    assert data["predictions"] == ["red circle", "green square"]
    assert fig.axes[0].get_title() == "t"


def test_classify_cli_end_to_end(tmp_path, capsys):
    from probe.cli import main

    paths = [tmp_path / "grey.png", tmp_path / "noise.png"]
    for path, image in zip(paths, images(3)[[0, 2]]):
        save_png(image, path)
    out = tmp_path / "out"
    rc = main(["classify", "--model", "tiny", "--images", *map(str, paths), "--labels", "red circle, blue star,x",
               "--out", str(out)])
    assert rc == 0
    record = json.loads((out / "summary.json").read_text())
    assert record["labels"] == ["red circle", "blue star", "x"]
    assert record["images"] == [str(p) for p in paths]
    assert record["model"] == "openclip:probe-tiny-vit@random" and record["weights"] == "random:0"
    assert torch.allclose(torch.tensor(record["probabilities"]).sum(1), torch.ones(2), atol=1e-5)
    assert "versions" in record and record["head"]["templates"] == ["{}"]
    assert (out / "classify.png").stat().st_size > 0
    assert "grey.png" in capsys.readouterr().out
    from probe import experiments

    same = experiments.classify("tiny", paths, ["red circle", "blue star", "x"])  # the call the CLI makes
    assert same.probabilities.tolist() == record["probabilities"]


def test_classify_cli_bad_arguments_give_one_line(tmp_path, capsys):
    from probe.cli import main

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
    from probe.cli import main

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
