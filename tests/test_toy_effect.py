"""The paper's effect on the shipped mini-CLIP: fixed pairs matched under a PSNR floor, rounded, classified."""
import csv
import json

import pytest
import torch

from probe.cli import main
from probe.experiments.effects import measure, read_as_target
from probe.images import quantize
from probe.matching import FastSettings
from probe.metrics import psnr, psnr_to_rms
from probe.models import load_encoder, presets
from probe.toy.data import class_names
from probe.toy.effect import drawn_pairs, label_sets, photo_pairs, shape_pairs, visitor_effect
from probe.zeroshot import text_head


def test_psnr_to_rms_lands_on_the_floor_after_rounding():
    gen = torch.Generator().manual_seed(0)
    image = quantize(torch.rand(4, 3, 64, 64, generator=gen) * 0.8 + 0.1)
    noise = torch.randn(image.shape, generator=gen)
    rms = psnr_to_rms(35.0)
    noise = noise / noise.flatten(1).square().mean(1).sqrt().view(-1, 1, 1, 1) * rms
    measured = psnr(quantize(image + noise), image)
    assert ((measured - 35.0).abs() < 0.1).all(), measured


def test_pair_sets_are_fixed_and_pair_different_classes(mini_clip):
    a, b = photo_pairs(mini_clip, per_photo=3), photo_pairs(mini_clip, per_photo=3)
    assert a.target_classes == b.target_classes and torch.equal(a.sources, b.sources)
    assert a.sources.shape == (27, 3, 64, 64) and len(set(a.source_names)) == 9
    shapes = shape_pairs(mini_clip, n=12)
    names = class_names()
    assert all(names.index(s) != t for s, t in zip(shapes.source_names, shapes.target_classes))


@pytest.mark.slow
def test_photos_take_on_target_classes_at_35_db(mini_clip):
    """The issue's bar on the photo set (9 photos x 5 target classes): >= 95% of pairs classified as the target
    at PSNR >= 35 dB. 100 steps give the README's 300-step rate (100%, mean target probability 0.97)."""
    pairs = photo_pairs(mini_clip, per_photo=5, seed=0)
    head = text_head(mini_clip, class_names())
    labels = torch.tensor(pairs.target_classes)
    with torch.no_grad():
        before = (head.probabilities(mini_clip(pairs.sources)).argmax(1) == labels).float().mean().item()
    (run,) = measure(mini_clip, pairs, class_names(), [psnr_to_rms(35.0)], steps=100)
    assert run["psnr_db_min"] >= 35.0
    assert before <= 0.1                 # the photos are not already their targets' classes
    assert run["target_top1"] >= 0.95, run["target_top1"]
    assert run["target_probability_mean"] >= 0.8


def test_cli_writes_the_report(tmp_path, capsys):
    out = tmp_path / "effect"
    code = main(["effect", "--out", str(out), "--sets", "shapes", "--pairs", "3", "--steps", "3",
                 "--psnr", "35,30", "--quiet"])
    assert code == 0
    record = json.loads((out / "summary.json").read_text())
    assert record["weights"].startswith("mini-clip@sha256:") and record["psnr_floors_db"] == [35.0, 30.0]
    assert [r["psnr_floor_db"] for r in record["results"]["shapes"]] == [35.0, 30.0]
    with open(out / "pairs.csv") as f:
        assert len(list(csv.DictReader(f))) == 6
    for name in ("effect_vs_psnr.png", "effect_vs_psnr.json", "examples_shapes.png"):
        assert (out / name).stat().st_size > 0


def test_cli_names_a_bad_set(tmp_path, capsys):
    assert main(["effect", "--out", str(tmp_path / "o"), "--sets", "cats", "--quiet"]) == 2
    assert "sets must be some of" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_drawn_pairs_are_seeded_and_pair_different_labels():
    pairs = drawn_pairs(7, seed=3)
    assert [p.source.size[0] for p in pairs] == [64] * 4 + [224] * 3
    assert all(p.source_label != p.target_label and p.source.size == p.target.size for p in pairs)
    again = drawn_pairs(7, seed=3)
    assert [(p.source.tobytes(), p.target.tobytes()) for p in pairs] == \
        [(p.source.tobytes(), p.target.tobytes()) for p in again]


@pytest.mark.parametrize("model", ["mini-clip", "mini-clip-drawn"])
def test_visitor_effect_reads_the_saved_png_as_the_target(model):
    """With a generous budget every 8-bit matched drawing is read as its target drawing is read, and the PNG
    stays within the budget (plus half a level of rounding); on both shipped mini-CLIPs (at 8/255 the drawn one
    keeps a drawing's colour and often its shape: benchmarks/results/visitor.md)."""
    pairs = drawn_pairs(4, seed=0)[:2]
    result = read_as_target(load_encoder(model), pairs, label_sets(), FastSettings(budget=64 / 255, steps=60))
    assert result["pairs"] == 2 and result["settings"]["budget"] == 64 / 255
    for row in result["rows"]:
        assert row["read_as_all_classes"] == row["target_read_as_all_classes"], row
        assert row["linf_255"] <= 64.5


def test_visitor_effect_uses_the_mini_clips_own_defaults(mini_clip, monkeypatch):
    """visitor_effect matches with the per-model entry the CLI and the app read (probe.models.defaults_for), not
    the library's generic defaults."""
    preset = presets()["mini-clip"]
    monkeypatch.setitem(preset.defaults, "fast", {"steps": 3, "budget": 4 / 255})
    result = visitor_effect(mini_clip, n=2, seed=1)
    assert result["pairs"] == 2
    assert [(r["source"], r["target"]) for r in result["rows"]] == \
        [(p.source_label, p.target_label) for p in drawn_pairs(2, seed=1)] != \
        [(p.source_label, p.target_label) for p in drawn_pairs(2, seed=0)]
    assert result["settings"]["steps"] == 3 and result["settings"]["budget"] == 4 / 255
    assert all(row["linf_255"] <= 4.5 for row in result["rows"])
