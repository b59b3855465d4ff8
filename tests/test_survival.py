"""Matches that survive what the web does to a picture: the real codecs are Pillow's (checked against Pillow called
here), the differentiable stand-ins carry gradients and stay close to them, transformation-aware matching makes
the match survive real JPEG where plain matching does not, and every front end offers it."""
import io
import json

import pytest
import torch
from PIL import Image

from probe import experiments
from probe.cli import main
from probe.errors import ProbeError
from probe.experiments.effects import read_as_target
from probe.images import from_pil, load_image, to_pil
from probe.matching import FastSettings, settings_for
from probe.readback import CODECS, SURVIVAL, read_as
from probe.toy.effect import drawn_pairs, label_sets
from probe.transforms import RandomTransforms, differentiable_jpeg, random_rescale, random_shift


@pytest.fixture(scope="module")
def picture():
    return load_image("examples/cat.png")


def pillow_jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="JPEG", quality=quality)
    return from_pil(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


@pytest.mark.parametrize("quality", [95, 75, 50])
def test_jpeg_codecs_are_pillows_jpeg(picture, quality):
    assert torch.equal(from_pil(CODECS[f"jpeg{quality}"](picture)), pillow_jpeg(picture, quality))
    assert not torch.equal(from_pil(CODECS[f"jpeg{quality}"](picture)), from_pil(CODECS["png"](picture)))


def test_resize_and_screenshot_codecs(picture):
    height, width = picture.shape[-2:]
    half = CODECS["resize0.5"](picture)
    assert half.size == (width, height)
    small = to_pil(picture).resize((round(width * 0.5), round(height * 0.5)), Image.Resampling.BICUBIC)
    assert torch.equal(from_pil(half), from_pil(small.resize((width, height), Image.Resampling.BICUBIC)))
    shot = CODECS["screenshot"](picture)
    assert shot.size == (round(width * 0.75), round(height * 0.75))
    expected = to_pil(pillow_jpeg(picture, 85)).resize(shot.size, Image.Resampling.BICUBIC)
    assert torch.equal(from_pil(shot), from_pil(expected))


def test_differentiable_stand_ins_carry_gradients_and_stay_near_pillow(picture):
    x = from_pil(CODECS["png"](picture))[None]
    for transform in (lambda v: differentiable_jpeg(v, (75.0, 75.0)), lambda v: random_rescale(v, (0.5, 0.5)),
                      lambda v: random_shift(v, 0.03)):
        v = x.clone().requires_grad_(True)
        out = transform(v)
        assert out.shape == x.shape
        (grad,) = torch.autograd.grad((out * torch.rand_like(out)).sum(), v)
        assert grad.abs().sum() > 0
    stand_in = differentiable_jpeg(x, (75.0, 75.0))[0]
    real = pillow_jpeg(x[0], 75)
    rms = lambda a, b: float(((a - b) ** 2).mean().sqrt())  # noqa: E731
    assert rms(stand_in, real) < 0.5 * rms(real, x[0])    # nearer Pillow's JPEG than JPEG is to the picture


def test_random_transforms_are_seeded_and_checked(picture):
    x = picture[None]
    transform = RandomTransforms(("jpeg", "resize", "shift"))
    torch.manual_seed(3)
    first = transform(x)
    torch.manual_seed(3)
    assert torch.equal(first, transform(x))
    assert not torch.equal(first, transform(x))
    with pytest.raises(ProbeError, match="survive must name some of jpeg, resize, shift"):
        RandomTransforms(("gif",))


def test_survive_is_a_declared_fast_setting_and_paper_mode_refuses_it():
    assert FastSettings(survive="jpeg,resize").survive == ("jpeg", "resize")
    assert FastSettings().survive == () and FastSettings().to_dict()["keeps"].startswith("best")
    with pytest.raises(ProbeError, match="survive must be one of jpeg, resize, shift, got 'webp'"):
        FastSettings(survive="jpeg,webp")
    with pytest.raises(ProbeError, match="survive is an option of the fast mode"):
        settings_for("paper", survive=("jpeg",))
    assert settings_for("paper", survive=None).mode == "paper"


@pytest.fixture(scope="module")
def small_pairs():
    return [p for p in drawn_pairs(24, seed=3) if p.source.size[0] == 64][:4]


@pytest.mark.slow
def test_transformation_aware_matching_survives_real_jpeg(mini_clip, small_pairs):
    """Through Pillow's JPEG at quality 50 (never the differentiable stand-in), the matches made to survive JPEG
    keep much more of the target's embedding than plain matches of the same pairs, at the same budget, and stay
    as close on the lossless PNG."""
    labels = {"all": label_sets()["all_classes"]}
    codecs = ("png", "jpeg50")
    plain = read_as_target(mini_clip, small_pairs, labels, FastSettings(steps=100), codecs=codecs)["survival"]
    robust = read_as_target(mini_clip, small_pairs, labels, FastSettings(steps=100, survive=("jpeg",)),
                            codecs=codecs)["survival"]
    assert robust["jpeg50"]["cos_to_target_mean"] > plain["jpeg50"]["cos_to_target_mean"] + 0.2, (plain, robust)
    assert robust["png"]["cos_to_target_mean"] > plain["png"]["cos_to_target_mean"] - 0.05


def test_match_summary_reports_survival_through_the_real_codecs(mini_clip, tmp_path):
    classes = label_sets()["16_labels"]
    result = experiments.match(mini_clip, "examples/coffee.png", "examples/shapes/green_square.png",
                               FastSettings(steps=20), classes=classes)
    survival = result.to_dict()["survival"]
    assert list(survival) == list(SURVIVAL)
    # recomputed here: the saved PNG, re-encoded by Pillow at quality 75, read through the model's own pipeline
    png = to_pil(result.matched)
    again = read_as(mini_clip, None, [pillow_jpeg(from_pil(png), 75)], result.target_embedding[None],
                    codecs=("png",))["png"]["cos_to_target"][0]
    assert survival["jpeg75"]["cos_to_target"] == pytest.approx(float(again), abs=1e-5)
    assert survival["jpeg75"]["read_as"] in classes and 0 < survival["jpeg75"]["probability"] <= 1
    assert "after JPEG 75: read as" in result.headline()


def test_cli_survive_option_and_its_refusal_in_paper_mode(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["match", "--model", "mini-clip", "--source", "examples/cat.png", "--target",
                 "examples/shapes/blue_star.png", "--steps", "5", "--survive", "jpeg,resize", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["survive"] == ["jpeg", "resize"] and summary["settings"]["keeps"] == "last iterate"
    assert set(summary["survival"]) == set(SURVIVAL)
    code = main(["match", "--model", "mini-clip", "--mode", "paper", "--source", "examples/cat.png", "--target",
                 "examples/shapes/blue_star.png", "--survive", "jpeg", "--out", str(tmp_path / "paper")])
    assert code == 2 and "--survive is for --mode fast" in capsys.readouterr().err
    assert not (tmp_path / "paper").exists()
