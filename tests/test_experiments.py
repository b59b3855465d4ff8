"""The experiment calls: the authors' start tensor against open_clip's own code, results that save and
serialise, and progress/cancel on every long call."""
import csv
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from probe import experiments
from probe.data import ImageSet
from probe.images import ImageError, load_image
from probe.matching import FastSettings, PaperSettings
from probe.models import Encoder, Preprocess, load_encoder
from probe.results import save

ROOT = Path(__file__).resolve().parents[1]
CAT, ROCKET, COFFEE = (ROOT / "examples" / name for name in ("cat.png", "rocket.png", "coffee.png"))


def _chelsea() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / "chelsea.png"   # 451 x 300: non-square, larger than 224


@pytest.mark.parametrize("spec,arch", [("mini-clip", None), ("openclip:ViT-B-32@random", "ViT-B-32")])
@pytest.mark.slow
def test_paper_mode_first_steps_equal_open_clips_own_pipeline(spec, arch):
    """An independent re-implementation of the authors' code: open_clip's preprocess on the PIL image,
    encode_image, MSE to the target's embedding, one plain gradient step, clamp to the global [min, max]."""
    import open_clip
    from PIL import Image

    encoder = load_encoder(spec)
    name = arch or f"local-dir:{ROOT / 'probe' / 'toy' / 'mini_clip'}"
    if arch:
        torch.manual_seed(0)
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
    else:
        model, _, preprocess = open_clip.create_model_and_transforms(name)
    model.eval()
    source, target = _chelsea(), COFFEE
    x = preprocess(Image.open(source)).unsqueeze(0)
    with torch.no_grad():
        t = model.encode_image(preprocess(Image.open(target)).unsqueeze(0))
    lo, hi = x.min(), x.max()
    x.requires_grad_(True)
    loss = torch.nn.functional.mse_loss(model.encode_image(x), t)
    loss.backward()
    loss0 = loss.detach()
    x1 = (x - 0.09 * x.grad).clamp(lo, hi).detach()
    with torch.no_grad():
        loss1 = torch.nn.functional.mse_loss(model.encode_image(x1), t)

    run = experiments.match(encoder, source, target, PaperSettings(steps=1, l2sq_below=0.0, cos_above=2.0))
    assert run.trace["loss"][0] == pytest.approx(float(loss0), rel=1e-5)
    assert run.trace["loss"][1] == pytest.approx(float(loss1), rel=1e-5)
    assert run.values["start"].startswith("open_clip's preprocess (PIL)")
    expected = encoder.denormalize(x1).clamp(0, 1)[0]
    torch.testing.assert_close(run.matched, expected, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_paper_mode_tensor_sources_go_through_an_8_bit_image(mini_clip):
    """A source that arrives as a tensor is made an 8-bit image first, as the authors' files were."""
    from PIL import Image

    from probe.images import load_image, to_pil

    pixels = load_image(COFFEE) + 0.3 / 255   # off the 8-bit grid
    run = experiments.match(mini_clip, pixels.clamp(0, 1), ROCKET, PaperSettings(steps=1, l2sq_below=0, cos_above=2))
    via_file = experiments.match(mini_clip, to_pil(pixels.clamp(0, 1)), Image.open(ROCKET),
                                 PaperSettings(steps=1, l2sq_below=0, cos_above=2))
    assert run.trace["loss"] == via_file.trace["loss"]


def test_match_result_saves_everything_summary_last(mini_clip, tmp_path):
    """Every file saved, summary.json last; its numbers are those of the saved files, recomputed here: matched.png
    re-embedded (probe's preprocessing and open_clip's own) against the rocket's embedding, its PSNR against
    source.png (the cat's own pixels) within the 8/255 budget, and the kept best iterate's row of trace.csv."""
    run = experiments.match(mini_clip, CAT, ROCKET, FastSettings(steps=15))
    summary = save(run, tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"source.png", "matched.png", "diff_x50.png", "trace.csv", "curves.png", "curves.json",
                     "summary.json"}
    last = max(p.stat().st_mtime_ns for p in tmp_path.iterdir() if p.name != "summary.json")
    assert summary.stat().st_mtime_ns >= last
    record = json.loads(summary.read_text())
    assert record["experiment"] == "match" and record["weights"].startswith("mini-clip@sha256:")
    assert record["settings"]["resolution"] == "source" and record["resolution"] == [213, 320]

    matched, source = load_image(tmp_path / "matched.png"), load_image(tmp_path / "source.png")
    assert torch.equal(source, load_image(CAT)) and 0 < (matched - source).abs().max() <= 8 / 255 + 1e-6
    with torch.no_grad():
        target = mini_clip(load_image(ROCKET)[None])
        opened = mini_clip.reference_transform(Image.open(tmp_path / "matched.png"))[None]   # open_clip's own
        read_back = mini_clip.model.encode_image(opened)
        cos = {name: float(F.cosine_similarity(emb, target)[0]) for name, emb in
               [("source", mini_clip(source[None])), ("png", mini_clip(matched[None])), ("reference", read_back)]}
    assert record["cos_to_target_initial"] == pytest.approx(cos["source"], abs=1e-6)
    assert record["cos_to_target_png"] == pytest.approx(cos["png"], abs=1e-6)
    assert record["cos_to_target_png_reference"] == pytest.approx(cos["reference"], abs=1e-6)
    assert cos["png"] > cos["source"] + 0.1
    assert record["psnr_db_png"] == pytest.approx(-10 * math.log10(float((matched - source).square().mean())),
                                                  abs=1e-3)
    with open(tmp_path / "trace.csv", newline="") as trace:
        rows = list(csv.DictReader(trace))
    assert len(rows) == record["steps_run"] + 1 == 16
    assert float(rows[0]["cos_to_target"]) == pytest.approx(cos["source"], abs=1e-6)
    best = min(rows, key=lambda row: float(row["loss"]))
    assert record["l2_to_target_final"] == pytest.approx(float(best["l2_to_target"]), rel=1e-5)


@pytest.mark.slow
def test_equivalence_many_to_one_reads_as_the_target(mini_clip, tmp_path):
    """Three photos matched to one drawn shape: the 8-bit look-alikes are all classified as its class."""
    from probe.toy.data import class_names, draw_plain_shape

    target = draw_plain_shape("blue", "star", image_size=64)
    run = experiments.equivalence(mini_clip, [CAT, ROCKET, COFFEE], [target],
                                  FastSettings(steps=100, resolution="model"), classes=class_names())
    record = run.to_dict()
    assert record["layout"] == "many sources -> one target"
    assert record["predicted_after"] == ["blue star"] * 3
    before = [class_names()[i] for i in run.probabilities_before.argmax(1)]
    assert "blue star" not in before
    assert all(p["psnr_db_png"] > 30 for p in record["pairs"])
    save(run, tmp_path)
    assert (tmp_path / "vision_text_after.png").is_file() and (tmp_path / "matched_3.png").is_file()


@pytest.mark.slow
def test_equivalence_one_to_many_gives_look_alikes_with_different_embeddings(mini_clip):
    from probe.toy.data import draw_plain_shape

    targets = [draw_plain_shape(c, s, image_size=64) for c, s in (("red", "circle"), ("green", "square"),
                                                                 ("yellow", "triangle"))]
    run = experiments.equivalence(mini_clip, [CAT], targets, FastSettings(steps=150, resolution="model"))
    off_diagonal = ~torch.eye(3, dtype=torch.bool)
    pixels = torch.stack([p.matched for p in run.pairs])
    assert (pixels[0] - pixels[1]).abs().max() <= 2 * 8 / 255 + 1e-6      # they look alike ...
    assert run.cosine_matched[off_diagonal].max() < 0.9                   # ... but embed apart
    assert run.cosine_sources[off_diagonal].min() > 0.999                 # (the same source three times)


def _stop_after(calls: int):
    seen = []

    def progress(stage, done, total, metrics):
        seen.append(stage)
        return len(seen) < calls
    return progress, seen


@pytest.mark.parametrize("call", ["match", "spectrum", "topk", "lipschitz", "inspect", "equivalence",
                                  "systematic", "effect"])
def test_every_long_call_reports_progress_and_cancels(call, mini_clip, tmp_path):
    progress, seen = _stop_after(3)
    if call == "match":
        run = experiments.match(mini_clip, CAT, ROCKET, FastSettings(steps=50), progress=progress)
        assert run.values["steps_run"] == 2
    elif call == "spectrum":
        run = experiments.spectrum(mini_clip, CAT, progress=progress)
    elif call == "topk":
        run = experiments.spectrum(mini_clip, CAT, method="topk", k=8, tol=1e-9, progress=progress)
    elif call == "lipschitz":
        run = experiments.lipschitz(mini_clip, CAT, samples=2, progress=_stop_after(8)[0])
    elif call == "inspect":
        run = experiments.inspect(mini_clip, CAT, progress=progress)
    elif call == "equivalence":
        run = experiments.equivalence(mini_clip, [CAT, COFFEE], [ROCKET], FastSettings(steps=20),
                                      progress=_stop_after(25)[0])
        assert len(run.pairs) == 1
    elif call == "systematic":
        run = experiments.systematic(mini_clip, _shapes_set(), FastSettings(steps=5), batch_size=2,
                                     progress=_stop_after(9)[0])
        assert 0 < len(run.outcome.pairs) < 12
    else:
        from probe.toy.data import class_names
        from probe.toy.effect import shape_pairs

        run = experiments.effect(mini_clip, [shape_pairs(mini_clip, n=2)], class_names(), [35.0, 30.0], steps=5,
                                 progress=_stop_after(8)[0])
        assert len(run.results["shapes"]) == 1
    assert run.cancelled
    if call in ("match", "spectrum", "topk", "inspect"):
        assert len(seen) == 3
    record = json.loads(save(run, tmp_path).read_text())
    assert record["cancelled"] is True


def _shapes_set() -> ImageSet:
    """Four held-out generated shapes of different classes (the mini-CLIP reads them right)."""
    from torchvision.transforms.functional import to_tensor

    from probe.toy.data import EVAL_SEED, class_names, generate_samples

    names, picks = class_names(), [0, 7, 13, 16]
    samples = generate_samples(len(names), EVAL_SEED, balanced=True)
    images = [to_tensor(samples[i].image) for i in picks]
    classes = [names[i] for i in picks]
    return ImageSet(images, list(range(4)), classes, classes, "held-out generated shapes")


@pytest.mark.slow
def test_systematic_on_mini_clip_turns_accuracy_around(mini_clip, tmp_path):
    """The sister paper's effect on the mini-CLIP's own classes: clean shapes classified right, matched ones
    as their targets."""
    run = experiments.systematic(mini_clip, _shapes_set(), FastSettings(steps=60, resolution="model"), batch_size=12)
    r = run.outcome
    assert r.clean_accuracy == 1.0 and r.success_rate >= 0.9 and r.matched_accuracy <= 0.1
    save(run, tmp_path)
    record = json.loads((tmp_path / "summary.json").read_text())
    assert record["pairs_run"] == 12 and (tmp_path / "success_matrix.png").is_file()
    assert (tmp_path / "pixel_change.png").is_file()


def test_spectrum_directions_are_images_and_inspect_estimates_match_sigma(mini_clip, tmp_path):
    run = experiments.inspect(mini_clip, CAT, k=3, eps=[1e-3, 1.0])
    sigma = run.spectrum.singular_values[:3]
    along = run.estimates["singular"].estimates[:, 0]
    torch.testing.assert_close(along, sigma.to(along), rtol=0.05, atol=0)   # eps -> 0: L(v_i) -> sigma_i
    save(run, tmp_path)
    for i in (1, 2, 3):
        assert (tmp_path / f"direction_{i}.png").is_file()
    assert {"spectrum.png", "lipschitz_eps.png", "summary.json"} <= {p.name for p in tmp_path.iterdir()}


def test_a_matched_png_that_cannot_be_decoded_is_named(monkeypatch):
    """The PNG round trip names the picture it decodes: a matched image over the decoder's pixel cap is refused as
    `matched.png` (before any model runs)."""
    monkeypatch.setattr("probe.images.MAX_PIXELS", 16 * 16 // 4)
    with pytest.raises(ImageError, match=r"^matched\.png: refused, more than 64 pixels"):
        experiments.png_round_trip(None, torch.rand(3, 16, 16), torch.zeros(4), torch.rand(3, 16, 16))


def test_png_round_trip_reports_the_saved_picture_by_hand(device):
    """On any device, the PNG round trip's numbers are those of the 8-bit picture, recomputed by hand in float64 on
    the CPU for a linear encoder f(p) = W normalise(p): cosine and L2 to the target (also through the model's own
    reading), and PSNR, L-inf and mean absolute change from the source."""
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    model = torch.nn.Linear(3 * 8 * 8, 5, bias=False)
    model.weight.data = torch.randn(5, 3 * 8 * 8, generator=torch.Generator().manual_seed(0)) / 8
    encoder = Encoder(model, lambda net, x: net(x.flatten(1)), Preprocess(size=(8, 8), resize_shorter=None,
                      mean=mean, std=std), spec="test:linear", weights="random:0").to(device)
    image, source = (torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(s)) for s in (1, 2))
    target = torch.randn(5, generator=torch.Generator().manual_seed(3))
    out = experiments.png_round_trip(encoder, image, target, source)

    saved = image.double().mul(255).round().div(255)
    normalised = (saved - torch.tensor(mean).view(3, 1, 1).double()) / torch.tensor(std).view(3, 1, 1).double()
    emb, t = model.weight.detach().double() @ normalised.flatten(), target.double()
    cos = float(emb @ t / (emb.norm() * t.norm()))
    change = saved - source.double()
    assert out["cos_to_target_png"] == pytest.approx(cos, rel=1e-5)
    assert out["cos_to_target_png_reference"] == pytest.approx(cos, rel=1e-5)
    assert out["l2_to_target_png"] == pytest.approx(float((emb - t).norm()), rel=1e-5)
    assert out["psnr_db_png"] == pytest.approx(float(10 * torch.log10(1 / change.pow(2).mean())), rel=1e-5)
    assert out["linf_pixel_png"] == pytest.approx(float(change.abs().max()), rel=1e-5)
    assert out["mean_abs_pixel_png"] == pytest.approx(float(change.abs().mean()), rel=1e-5)
