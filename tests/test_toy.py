"""Tests for the procedural data, the shipped mini-CLIP and its training loop (offline, CPU)."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import hashlib
import json
import re

import numpy as np
import open_clip
import pytest
import torch
from safetensors.torch import load_file

from probe.cli import main as cli_main
from probe.errors import ModelError, ProbeError
from probe.models import load_encoder
from probe.toy import MINI_CLIP_DIR, MINI_CLIP_DRAWN_DIR, MINI_CLIP_NAME, data, drawn, train as train_module
from probe.toy.model import CONFIG_FILE, MODEL_CFG, WEIGHTS_FILE
from probe.toy.quality import accuracy, centroid_mean_cosine, heldout_set, plain_set
from probe.toy.train import train
from probe.zeroshot import embed_images, text_head


def main(argv):
    return cli_main(["toy", *argv])

_REAL_TRAIN_STEP = train_module._train_step
REQUIRED = [f"{c} {s}" for c in ("red", "green", "blue", "yellow") for s in ("circle", "square", "triangle", "star")]


def _pixels(samples):
    return [s.image.tobytes() for s in samples]


def test_generator_is_deterministic_per_seed():
    a, b, c = (data.generate_samples(12, seed) for seed in (5, 5, 6))
    assert _pixels(a) == _pixels(b)
    assert [s.caption for s in a] == [s.caption for s in b]
    assert [s.class_index for s in a] == [s.class_index for s in b]
    assert _pixels(a) != _pixels(c)


def test_samples_are_labelled_rgb_images():
    names = data.class_names()
    for sample in data.generate_samples(40, 1, image_size=48):
        assert sample.image.size == (48, 48) and sample.image.mode == "RGB"
        colour, shape = names[sample.class_index].split()
        assert colour in sample.caption and shape in sample.caption


def test_balanced_sets_cycle_through_classes():
    samples = data.generate_samples(60, data.EVAL_SEED, balanced=True)
    assert [s.class_index for s in samples] == list(range(30)) * 2


def test_class_names_cover_required_combinations():
    names = data.class_names()
    assert set(REQUIRED) <= set(names)
    assert 24 <= len(names) <= 60 and len(set(names)) == len(names)


def test_training_seeds_never_reach_the_heldout_range():
    assert train_module.batch_seed(train_module.MAX_SEED - 1, train_module.MAX_STEPS - 1) < data.EVAL_SEED
    with pytest.raises(ProbeError, match="held-out"):
        heldout_set(1, seed=0)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ProbeError, match="unknown colour"):
        data.draw_plain_shape("mauve", "circle")
    with pytest.raises(ProbeError, match="unknown shape"):
        data.draw_plain_shape("red", "blob")
    with pytest.raises(ProbeError, match="seed"):
        data.generate_samples(3, -1)
    with pytest.raises(ProbeError, match="seed"):
        train("unused", seed=-1)


@pytest.fixture(scope="module")
def shipped():
    """Embeddings of held-out and plain images under the shipped and a random-init model."""
    encoder = load_encoder("mini-clip")
    held_images, held_labels = heldout_set(per_class=10)
    plain_images, plain_labels = plain_set()
    return {
        "head": text_head(encoder, data.class_names()),
        "held": (embed_images(encoder, held_images), held_labels),
        "plain": (embed_images(encoder, plain_images), plain_labels),
        "random_held": embed_images(load_encoder("mini-clip@random"), held_images),
    }


def test_shipped_folder_loads_through_open_clip_offline():
    model, _, preprocess = open_clip.create_model_and_transforms(MINI_CLIP_NAME)
    tokenizer = open_clip.get_tokenizer(MINI_CLIP_NAME)
    assert tokenizer(["red circle"]).shape == (1, model.context_length)
    assert preprocess.transforms[0].size in (64, [64], (64, 64))
    assert next(model.parameters()).dtype == torch.float32
    size_mb = (MINI_CLIP_DIR / WEIGHTS_FILE).stat().st_size / 2**20
    assert size_mb <= 10, f"shipped weights are {size_mb:.1f} MB"


def test_shipped_model_zero_shot_on_heldout_images(shipped):
    features, labels = shipped["held"]
    assert accuracy(shipped["head"].probabilities(features).argmax(1), labels) >= 0.9


def test_shipped_model_classifies_plain_pil_shapes(shipped):
    features, labels = shipped["plain"]
    assert accuracy(shipped["head"].probabilities(features).argmax(1), labels) >= 0.8


def test_mini_clip_drawn_reads_shapes_drawn_by_an_independent_renderer():
    """Issue 20's bar for `mini-clip-drawn`, on a slice of the drawn set's report seed (7): >= 90% over the 16
    drawn labels. `mini-clip`, trained on the narrow generator only, reads 40.3% of the full set."""
    result = drawn.evaluate(load_encoder("mini-clip-drawn"), drawn.drawn_set(2, seed=7), data.class_names())
    assert result["overall"]["n"] == 64
    assert result["overall"]["labels_16"] >= 0.9, result["overall"]


def test_mini_clip_drawn_is_named_by_its_weights_and_pinned():
    """The second shipped model gets the same stable id as the first: its name and the sha256 of its file; a pin to
    other weights is refused, naming both."""
    sha = hashlib.sha256((MINI_CLIP_DRAWN_DIR / WEIGHTS_FILE).read_bytes()).hexdigest()[:12]
    assert load_encoder("mini-clip-drawn").weights == f"mini-clip-drawn@sha256:{sha}"
    assert load_encoder(f"mini-clip-drawn@sha256:{sha}").weights_sha256.startswith(sha)
    with pytest.raises(ModelError, match=f"have sha256 {sha}, not 000000000000"):
        load_encoder("mini-clip-drawn@sha256:000000000000")


def test_shipped_model_spreads_class_centroids(shipped):
    features, labels = shipped["held"]
    trained = centroid_mean_cosine(features, labels)
    random_init = centroid_mean_cosine(shipped["random_held"], labels)
    assert trained < random_init - 0.3, (trained, random_init)


def _count_steps(monkeypatch, interrupt_at=None):
    """Count training steps; raise KeyboardInterrupt instead of running step ``interrupt_at`` (0-based)."""
    count = {"n": 0}

    def step(*args, **kwargs):
        if count["n"] == interrupt_at:
            raise KeyboardInterrupt
        count["n"] += 1
        return _REAL_TRAIN_STEP(*args, **kwargs)

    monkeypatch.setattr(train_module, "_train_step", step)
    return count


def _checkpoint(out_dir):
    return torch.load(out_dir / train_module.CHECKPOINT_FILE, weights_only=True)


def test_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    settings = dict(seed=3, steps=4, batch=8, checkpoint_every=2)
    train(tmp_path / "straight", **settings)

    _count_steps(monkeypatch, interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "resumed", **settings)
    assert _checkpoint(tmp_path / "resumed")["step"] == 2
    assert not (tmp_path / "resumed" / WEIGHTS_FILE).exists()

    with pytest.raises(ProbeError, match="--resume"):
        train(tmp_path / "resumed", **settings)
    with pytest.raises(ProbeError, match="differs"):
        train(tmp_path / "resumed", resume=True, **dict(settings, batch=4))
    count = _count_steps(monkeypatch)
    train(tmp_path / "resumed", resume=True, **settings)
    assert count["n"] == 2  # continued from step 2 instead of starting over

    straight, resumed = _checkpoint(tmp_path / "straight"), _checkpoint(tmp_path / "resumed")
    assert straight["step"] == resumed["step"] == 4
    assert all(torch.equal(straight["model"][k], resumed["model"][k]) for k in straight["model"])
    assert load_file(tmp_path / "straight" / WEIGHTS_FILE).keys() == load_file(tmp_path / "resumed" / WEIGHTS_FILE).keys()


def test_data_workers_give_the_same_weights(tmp_path, monkeypatch):
    """Six steps with one worker keep more batches pending than the pool's look-ahead (the steady state), and a
    run interrupted without workers and resumed with them ends where an uninterrupted inline run does."""
    settings = dict(seed=2, steps=6, batch=6, checkpoint_every=3)
    train(tmp_path / "inline", **settings)
    train(tmp_path / "workers", workers=1, **settings)
    _count_steps(monkeypatch, interrupt_at=4)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "resumed", **settings)
    monkeypatch.setattr(train_module, "_train_step", _REAL_TRAIN_STEP)
    train(tmp_path / "resumed", resume=True, workers=1, **settings)
    inline = _checkpoint(tmp_path / "inline")
    for other in (_checkpoint(tmp_path / "workers"), _checkpoint(tmp_path / "resumed")):
        assert all(torch.equal(inline["model"][k], other["model"][k]) for k in inline["model"])


def test_training_writes_a_loadable_hub_folder(tmp_path):
    out = tmp_path / "hub"
    assert main(["train", "--out", str(out), "--steps", "2", "--batch", "4", "--checkpoint", str(tmp_path / "c.pt"),
                 "--quiet"]) == 0
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["preprocess_cfg"]["size"] == config["model_cfg"]["vision_cfg"]["image_size"]
    name = f"local-dir:{out}"
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    tokenizer = open_clip.get_tokenizer(name)
    image = preprocess(data.draw_plain_shape("red", "circle")).unsqueeze(0)
    with torch.no_grad():
        assert model.encode_image(image).shape == model.encode_text(tokenizer(["red circle"])).shape


def _exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:   # argparse refuses values outside their declared ranges
        return exit_.code


def test_cli_reports_bad_arguments(tmp_path, capsys):
    assert _exit_code(["train", "--out", str(tmp_path), "--steps", "0"]) == 2
    assert "--steps must be in [1, 1000000]" in capsys.readouterr().err
    assert _exit_code(["train", "--out", str(tmp_path), "--workers", "-1"]) == 2
    assert "--workers must be in [0, inf]" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path), "--device", "tpu"]) == 2
    assert "device 'tpu'" in capsys.readouterr().err
    assert main(["eval", "--model-dir", str(tmp_path)]) == 2
    assert "open_clip_config.json" in capsys.readouterr().err


def test_training_progress_cancels_cleanly_and_resumes(tmp_path):
    """Returning False from the progress callback stops after a checkpoint; resuming ends where a straight run does."""
    settings = dict(seed=4, steps=4, batch=6, checkpoint_every=100)
    straight = train(tmp_path / "straight", **settings)
    seen = []

    def stop_after_two(stage, done, total, metrics):
        seen.append((stage, done, total, sorted(metrics)))
        return done < 2

    stopped = train(tmp_path / "stopped", progress=stop_after_two, **settings)
    assert stopped.cancelled and stopped.step == 2 and not (tmp_path / "stopped" / WEIGHTS_FILE).exists()
    assert seen[0] == ("train", 0, 4, []) and seen[-1] == ("train", 2, 4, ["logit_scale", "loss"])
    assert _checkpoint(tmp_path / "stopped")["step"] == 2
    resumed = train(tmp_path / "stopped", resume=True, **settings)
    assert not resumed.cancelled and resumed.step == 4
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def _shape_box_side(image, background_rgb):
    """Side of the bounding box of the pixels that differ clearly from ``background_rgb``."""
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32))
    differs = (pixels - torch.tensor(background_rgb, dtype=torch.float32)).abs().amax(-1) > 40
    rows, cols = differs.any(1).nonzero(), differs.any(0).nonzero()
    return max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1).item()


def test_wide_recipe_draws_any_size_style_and_background():
    samples = data.generate_samples(800, 11, recipe="wide")
    assert _pixels(samples[:5]) == _pixels(data.generate_samples(5, 11, recipe="wide"))
    extents = [s.details["extent"] for s in samples]
    low, high = data.WIDE_SIZES["small"][0], data.WIDE_SIZES["large"][1]
    assert low <= min(extents) < low + 0.03 and high - 0.03 < max(extents) <= high
    assert {s.details["background"] for s in samples} == set(data.WIDE_BACKGROUNDS)
    assert 0.25 < sum(s.details["outline"] for s in samples) / len(samples) < 0.55
    plain = [s for s in samples if s.details["background"] in ("light", "grey", "dark") and s.details["opacity"] > 0.9
             and not s.details["outline"] and s.details["texture"] == "solid"]
    assert len(plain) >= 5
    for s in plain:  # the drawn shape spans the stated share of the image side
        assert abs(_shape_box_side(s.image, s.image.getpixel((0, 0))) - s.details["extent"] * 64) <= 3


def test_wide_recipe_curriculum_starts_easy():
    easy = data.generate_samples(50, 5, recipe="wide", reach=0.0)
    assert all(data.EASY_EXTENT[0] <= s.details["extent"] <= data.EASY_EXTENT[1] for s in easy)
    assert all(s.details["opacity"] == 1.0 and not s.details["outline"] for s in easy)
    assert train_module.reach(0, 100, 0.5) == 0 and train_module.reach(25, 100, 0.5) == 0.5
    assert train_module.reach(50, 100, 0.5) == train_module.reach(7, 100, 0.0) == 1.0
    with pytest.raises(ProbeError, match="reach"):
        data.generate_samples(2, 0, recipe="wide", reach=1.5)
    with pytest.raises(ProbeError, match="recipe"):
        data.generate_samples(2, 0, recipe="broad")


def test_second_stage_starts_from_the_given_weights(tmp_path):
    """A second stage starts from the folder's weights with the folder's pooling (the trained model pools so);
    a model config other than the folder's is refused, though the tensors would load."""
    shipped = load_file(MINI_CLIP_DIR / WEIGHTS_FILE)
    pool = json.loads((MINI_CLIP_DIR / CONFIG_FILE).read_text())["model_cfg"]["vision_cfg"].get("pool_type", "tok")
    settings = dict(seed=1, steps=1, batch=4, lr=1e-9, recipe="wide", pool=pool)
    result = train(tmp_path / "staged", init=MINI_CLIP_DIR, **settings)
    assert result.model.visual.pool_type == pool
    staged = result.model.state_dict()
    fresh = train(tmp_path / "fresh", **settings).model.state_dict()
    with pytest.raises(ProbeError, match=r"another model config \(differs in vision_cfg.pool_type\)"):
        train(tmp_path / "other", init=MINI_CLIP_DIR, **dict(settings, pool="avg" if pool == "tok" else "tok"))
    key = "visual.conv1.weight"
    assert torch.allclose(staged[key], shipped[key].float(), atol=1e-6)
    assert not torch.allclose(fresh[key], shipped[key].float(), atol=1e-2)
    with pytest.raises(ProbeError, match="differs"):  # the starting weights are part of the resume check
        train(tmp_path / "staged", resume=True, init=tmp_path / "fresh", **settings)
    with pytest.raises(ProbeError, match="--init"):
        train(tmp_path / "none", init=tmp_path, **settings)


def test_cli_trains_the_wide_recipe_and_checks_its_options(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "w"), "--steps", "2", "--batch", "4", "--recipe", "wide",
                 "--ramp", "0.5", "--pool", "avg", "--quiet"]) == 0
    settings = _checkpoint(tmp_path / "w")["settings"]
    assert settings["recipe"] == "wide" and settings["model_cfg"]["vision_cfg"]["pool_type"] == "avg"
    assert json.loads((tmp_path / "w" / CONFIG_FILE).read_text())["model_cfg"]["vision_cfg"]["pool_type"] == "avg"
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'w'}")
    assert model.visual.pool_type == "avg"
    assert "pool_type" not in MODEL_CFG["vision_cfg"]    # the default config is left as it was
    assert _exit_code(["train", "--out", str(tmp_path / "p"), "--pool", "max"]) == 2
    assert "--pool" in capsys.readouterr().err
    assert _exit_code(["train", "--out", str(tmp_path / "r"), "--recipe", "wide", "--ramp", "1.5"]) == 2
    assert "--ramp must be in [0, 1)" in capsys.readouterr().err


def test_eval_reports_the_independently_drawn_set(capsys):
    """`toy eval` names the weights by their stable id (no folder path), reports the drawn set of the seed asked
    for as `probe.toy.drawn.evaluate` computes it here, and prints a 16 x 16 confusion matrix over every drawing
    whose diagonal is that accuracy."""
    assert main(["eval", "--per-class", "1", "--per-drawn", "1", "--drawn-seed", "3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^weights: mini-clip@sha256:[0-9a-f]{12}$", out, re.M), out
    shares = drawn.evaluate(load_encoder("mini-clip"), drawn.drawn_set(1, seed=3), data.class_names())
    assert (f"independently drawn shapes (32, probe.toy.drawn, seed 3): {shares['overall']['labels_16']:.1%} over "
            f"its 16 labels, {shares['overall']['all_classes']:.1%} over all classes") in out
    assert f"by size: 0.15-0.30 {shares['by_size']['0.15-0.30']['labels_16']:.0%}" in out
    assert f"by background: light {shares['by_background']['light']['labels_16']:.0%}" in out
    rows = [line for line in out.splitlines() if re.match(r"\| (red|green|blue|yellow) ", line)]
    counts = [[0 if cell.strip() == "." else int(cell) for cell in row.split("|")[2:-1]] for row in rows]
    assert counts == shares["confusion"] and all(sum(row) == 2 for row in counts)
    assert sum(counts[i][i] for i in range(16)) / 32 == pytest.approx(shares["overall"]["labels_16"])


def test_weight_average_and_label_smoothing_resume_exactly(tmp_path, monkeypatch):
    """With an EMA of the weights (the saved model) and label smoothing, a run cut at step 2 and resumed writes
    the weights an uninterrupted run writes; the saved model is the average, not the last iterate."""
    settings = dict(seed=4, steps=4, batch=8, checkpoint_every=2, ema=0.5, label_smoothing=0.1)
    train(tmp_path / "straight", **settings)
    _count_steps(monkeypatch, interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "resumed", **settings)
    monkeypatch.setattr(train_module, "_train_step", _REAL_TRAIN_STEP)
    train(tmp_path / "resumed", resume=True, **settings)
    straight, resumed = (load_file(tmp_path / name / WEIGHTS_FILE) for name in ("straight", "resumed"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    last = _checkpoint(tmp_path / "straight")
    assert "ema" in last and any(not torch.equal(straight[k], last["model"][k].half()) for k in straight)
    with pytest.raises(ProbeError, match="differs"):   # the average is part of the resume check
        train(tmp_path / "resumed", resume=True, **dict(settings, ema=0.9))


def test_contrastive_loss_is_open_clips_without_smoothing():
    import open_clip

    from probe.toy.train import ContrastiveLoss

    gen = torch.Generator().manual_seed(0)
    image, text = (torch.nn.functional.normalize(torch.randn(16, 8, generator=gen), dim=1) for _ in range(2))
    scale = torch.tensor(12.0)
    assert ContrastiveLoss()(image, text, scale).item() == open_clip.ClipLoss()(image, text, scale).item()
    assert ContrastiveLoss(0.2)(image, text, scale).item() != open_clip.ClipLoss()(image, text, scale).item()


def test_jpeg_share_reencodes_some_wide_samples(monkeypatch):
    from probe.toy import data

    plain = data.generate_samples(8, 11, recipe="wide")
    assert [s.image.tobytes() for s in plain] == [s.image.tobytes() for s in data.generate_samples(8, 11, recipe="wide")]
    monkeypatch.setattr(data, "JPEG_SHARE", 1.0)
    jpeg = data.generate_samples(8, 11, recipe="wide")
    assert sum(a.image.tobytes() != b.image.tobytes() for a, b in zip(plain, jpeg)) >= 4
