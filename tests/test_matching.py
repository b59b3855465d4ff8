"""Embedding matching: the paper's update rule exactly, real distance drops, bounds, batching, seeds."""
import json
from dataclasses import FrozenInstanceError, replace

import pytest
import torch

from probe.errors import DivergenceError, ProbeError
from probe.matching import (AllOf, FastSettings, L2Ball, LinfBall, PaperSettings, PaperStop, RelativeStop,
                            budget_constraint, match, settings_for, settings_from_dict, sweep)
from probe.models import Encoder, Preprocess
from probe.params import params_of

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def linear_encoder(m: int = 5, size: int = 8, seed: int = 0) -> Encoder:
    """f(p) = A normalise(p): every gradient is known in closed form."""
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(3 * size * size, m, bias=False)
    model.weight.data = torch.randn(m, 3 * size * size, generator=gen) / size
    pre = Preprocess(size=(size, size), resize_shorter=None, mean=MEAN, std=STD)
    return Encoder(model, lambda net, x: net(x.flatten(1)), pre, spec="test:linear", weights="random:0")


def rand_images(n: int, size: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def linear_embedding(pixels: torch.Tensor) -> torch.Tensor:
    """`linear_encoder()`'s embedding of [0,1] pixels (N,3,8,8), by hand in float64."""
    mean, std = torch.tensor(MEAN).view(3, 1, 1).double(), torch.tensor(STD).view(3, 1, 1).double()
    return ((pixels.double() - mean) / std).flatten(1) @ linear_encoder().model.weight.detach().double().T


def test_paper_first_step_equals_hand_computed_gradient_step():
    enc = linear_encoder()
    src, tgt = rand_images(1, seed=1), rand_images(1, seed=2)
    lr = 0.09
    result = match(enc, src, tgt, PaperSettings(lr=lr, steps=1, l2sq_below=0.0, cos_above=2.0))

    a = enc.model.weight.detach().double()
    mean, std = torch.tensor(MEAN).view(3, 1, 1).double(), torch.tensor(STD).view(3, 1, 1).double()
    x0 = ((src[0].double().mul(255).round().div(255) - mean) / std).flatten()  # the 8-bit image, as a file
    t = a @ ((tgt[0].double().mul(255).round().div(255) - mean) / std).flatten()
    grad = (2.0 / a.shape[0]) * a.T @ (a @ x0 - t)          # d/dx mean((Ax - t)^2)
    x1 = (x0 - lr * grad).clamp(x0.min(), x0.max())        # the paper's global clamp
    expected = (x1.view(3, 8, 8) * std + mean).clamp(0, 1)
    assert int(result.steps_run[0]) == 1
    torch.testing.assert_close(result.images[0].double(), expected, atol=1e-5, rtol=0)


def test_normalized_step_equals_hand_computed_rms_normalised_gradient_step():
    enc = linear_encoder()
    src, tgt = 0.25 + 0.5 * rand_images(1, seed=1), rand_images(1, seed=2)
    lr = 0.01
    result = match(enc, src, tgt, FastSettings(norm="l2", budget=1.0, lr=lr, steps=1, rel_l2_below=0.0))
    assert result.settings["optimizer"] == "normalized"  # the default under an L2 budget

    a = enc.model.weight.detach().double()
    std = torch.tensor(STD).view(3, 1, 1).double()
    mean = torch.tensor(MEAN).view(3, 1, 1).double()
    p0, t = src[0].double(), a @ ((tgt[0].double() - mean) / std).flatten()
    residual = a @ ((p0 - mean) / std).flatten() - t
    grad = ((2.0 / a.shape[0]) * a.T @ residual).view(3, 8, 8) / std   # d/dp mean((A norm(p) - t)^2)
    expected = p0 - lr * grad / grad.square().mean().sqrt()
    torch.testing.assert_close(result.images[0].double(), expected, atol=1e-6, rtol=0)
    assert abs(float((result.images[0].double() - p0).square().mean().sqrt()) - lr) < 1e-6


def test_paper_mode_drops_distance_on_tiny_vit(tiny_encoder):
    src, tgt = rand_images(1, 224, seed=3), rand_images(1, 224, seed=4)
    result = match(tiny_encoder, src, tgt, PaperSettings(lr=100.0, steps=60, l2sq_below=1e-6, cos_above=0.9999))
    assert result.final["l2_to_target"][0] < 0.5 * result.initial["l2_to_target"][0]
    assert result.images.shape[-2:] == (224, 224)
    assert not bool(result.converged[0])  # thresholds out of reach: reported honestly


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_paper_mode_extra_budget_is_enforced(tiny_encoder, norm):
    """A budget a quarter of the change the unconstrained run makes is held, and the distance still drops."""
    src, tgt = rand_images(1, 224, seed=3), rand_images(1, 224, seed=4)
    options = dict(lr=100.0, steps=20, l2sq_below=1e-6, cos_above=0.9999)

    def size(result):
        delta = (result.images - result.sources).flatten(1)
        return float(delta.abs().amax(1) if norm == "linf" else delta.pow(2).mean(1).sqrt())

    budget = size(match(tiny_encoder, src, tgt, PaperSettings(**options))) / 4
    held = match(tiny_encoder, src, tgt, PaperSettings(budget=budget, norm=norm, **options))
    assert size(held) <= budget + 1e-6
    assert held.final["l2_to_target"][0] < held.initial["l2_to_target"][0]


@pytest.mark.parametrize("norm,budget,optimizer", [("linf", 8 / 255, "adam"), ("linf", 8 / 255, "sign"),
                                                   ("l2", 4 / 255, "normalized"), ("l2", 4 / 255, "adam")])
def test_fast_mode_cuts_distance_within_budget_and_box(tiny_encoder, norm, budget, optimizer):
    src, tgt = rand_images(2, 224, seed=5), rand_images(2, 224, seed=6)
    result = match(tiny_encoder, src, tgt, FastSettings(steps=80, norm=norm, budget=budget, optimizer=optimizer))
    drop = result.final["l2_to_target"] / result.initial["l2_to_target"]
    assert (drop < 0.1).all(), drop
    assert result.images.min() >= 0 and result.images.max() <= 1
    delta = (result.images - src).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.pow(2).mean(1).sqrt()
    assert (size <= budget + 1e-5).all()


def test_fast_mode_reaches_relative_target_and_reports_converged(tiny_encoder):
    src, tgt = rand_images(1, 224, seed=7), rand_images(1, 224, seed=8)
    result = match(tiny_encoder, src, tgt, FastSettings(steps=300, rel_l2_below=0.05))
    assert bool(result.converged[0])
    assert result.final["l2_to_target"][0] <= 0.05 * result.initial["l2_to_target"][0]
    assert int(result.steps_run[0]) < 300


def test_inputs_not_mutated(tiny_encoder):
    src, tgt = rand_images(1, 224, seed=9), rand_images(1, 224, seed=10)
    src_copy, tgt_copy = src.clone(), tgt.clone()
    match(tiny_encoder, src, tgt, FastSettings(steps=3))
    match(tiny_encoder, src, tgt, PaperSettings(steps=3, l2sq_below=0))
    assert torch.equal(src, src_copy) and torch.equal(tgt, tgt_copy)


@pytest.mark.parametrize("mode", ["fast", "paper"])
def test_batch_equals_items_one_by_one_with_freezing(mode):
    """Pair 0 starts next to its target and meets the stopping rule within a few steps; the others run on.
    Frozen samples stay put, so the batch equals its items run one by one."""
    enc = linear_encoder()
    src = 0.2 + 0.6 * rand_images(3, seed=11)
    tgt = 0.2 + 0.6 * rand_images(3, seed=12)
    tgt[0] = (src[0] + 0.01).mul(255).round().div(255)   # close to its own source: converges early
    if mode == "fast":
        settings = FastSettings(steps=40, budget=0.02, rel_l2_below=0.3)
    else:
        settings = PaperSettings(steps=40, lr=0.5, l2sq_below=2e-3, cos_above=0.5)
    batch = match(enc, src, tgt, settings)
    assert int(batch.steps_run[0]) < 40 and bool(batch.converged[0])   # pair 0 froze early ...
    assert (batch.steps_run[1:] > batch.steps_run[0]).all()            # ... while the others went on
    for i in range(3):
        single = match(enc, src[i:i + 1], tgt[i:i + 1], settings)
        assert int(single.steps_run[0]) == int(batch.steps_run[i])
        torch.testing.assert_close(batch.images[i], single.images[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(batch.final["l2_to_target"][i], single.final["l2_to_target"][0],
                                   atol=1e-4, rtol=1e-4)


def test_same_seed_same_result(tiny_encoder):
    src, tgt = rand_images(1, 224, seed=13), rand_images(1, 224, seed=14)
    first = match(tiny_encoder, src, tgt, FastSettings(steps=10), seed=3)
    second = match(tiny_encoder, src, tgt, FastSettings(steps=10), seed=3)
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.trace["loss"], second.trace["loss"])


def test_target_embedding_equals_target_image(tiny_encoder):
    src, tgt = rand_images(1, 224, seed=15), rand_images(1, 224, seed=16)
    with torch.no_grad():
        emb = tiny_encoder(tgt)
    by_image = match(tiny_encoder, src, tgt, FastSettings(steps=5))
    by_embedding = match(tiny_encoder, src, emb, FastSettings(steps=5))
    torch.testing.assert_close(by_image.images, by_embedding.images)


def test_trace_records_every_step_and_progress_cancels(tiny_encoder):
    src, tgt = rand_images(1, 224, seed=17), rand_images(1, 224, seed=18)
    seen = []

    def stop_at_three(stage, step, total, metrics):
        seen.append((stage, step, total, metrics["cos_to_target"]))
        return step < 3

    result = match(tiny_encoder, src, tgt, FastSettings(steps=50), progress=stop_at_three)
    assert result.cancelled and [s[:3] for s in seen] == [("match", i, 50) for i in range(4)]
    assert seen[0][3] == pytest.approx(float(result.trace["cos_to_target"][0, 0]))
    assert result.trace["loss"].shape == (4, 1)
    assert set(result.trace) >= {"loss", "cos_to_target", "l2_to_target", "cos_to_source", "linf_pixel",
                                 "l2_pixel", "mean_abs_pixel", "psnr_db"}
    assert result.trace["linf_pixel"][0, 0] == 0  # step 0 is the untouched source


def test_source_resolution_is_the_default_and_keeps_budget_and_box(tiny_encoder):
    src = rand_images(1, 100, seed=19)
    src = torch.nn.functional.interpolate(src, size=(120, 180)).clamp(0, 1)
    src[..., :10, :] = 1.0   # saturated rows: the box must hold where the budget alone would not
    tgt = rand_images(1, 224, seed=20)
    result = match(tiny_encoder, src, tgt, FastSettings(steps=20))
    assert result.images.shape[-2:] == (120, 180) and torch.equal(result.sources, src)
    assert result.final["l2_to_target"][0] < result.initial["l2_to_target"][0]
    assert (result.images - src).abs().max() <= 8 / 255 + 1e-6
    assert result.images.min() >= 0 and result.images.max() <= 1
    assert (result.images[..., :10, :] != 1.0).any()   # it did move those pixels (down)


def test_sources_above_the_pixel_cap_are_scaled_down(tiny_encoder):
    src, tgt = rand_images(1, 64, seed=21), rand_images(1, 64, seed=22)
    result = match(tiny_encoder, src, tgt, FastSettings(steps=2, max_pixels=32 * 32))
    assert result.images.shape[-2:] == (32, 32) and "scaled down from 64x64 to 32x32" in result.notes[0]


def test_one_call_sweeps_budgets(tiny_encoder):
    src, tgt = rand_images(1, 224, seed=23), rand_images(1, 224, seed=24)
    budgets = [1 / 255, 4 / 255, 16 / 255]
    results = sweep(tiny_encoder, src, tgt, FastSettings(steps=30, resolution="model"), budgets)
    assert [r.settings["budget"] for r in results] == budgets
    sizes = [float((r.images - r.sources).abs().max()) for r in results]
    assert all(size <= b + 1e-6 for size, b in zip(sizes, budgets))
    drops = [float(r.final["l2_to_target"][0] / r.initial["l2_to_target"][0]) for r in results]
    assert drops[0] > drops[1] > drops[2]   # a larger budget gets closer


def test_settings_are_values_that_round_trip():
    """Settings with no field at its default come back equal from their JSON record; derived values (the fast
    mode's step size and update rule) are recorded resolved and read back to the same settings."""
    fast = FastSettings(budget=4 / 255, norm="l2", lr=0.003, steps=7, rel_l2_below=0.2, loss="cosine",
                        optimizer="sign", resolution="model", max_pixels=4096, survive=("jpeg",))
    paper = PaperSettings(lr=0.5, l2sq_below=3.0, cos_above=0.5, steps=9, loss="l2", budget=0.1, norm="l2")
    for settings in (fast, paper):
        defaults = type(settings)()
        assert all(getattr(settings, name) != getattr(defaults, name) for name in params_of(type(settings)))
        assert settings_from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    derived = FastSettings(budget=4 / 255, norm="l2", steps=7)   # lr and optimizer left to their rules
    record = derived.to_dict()
    assert record["optimizer"] == "normalized" and record["lr"] == pytest.approx(1 / 255)   # budget / 4
    assert settings_from_dict(record) == replace(derived, lr=record["lr"], optimizer="normalized")
    assert settings_from_dict(record).to_dict() == record
    assert settings_for("paper", steps=9, budget=0.1) == PaperSettings(steps=9, budget=0.1)
    with pytest.raises(ProbeError, match="no setting frobnicate"):
        settings_for("fast", frobnicate=1)
    with pytest.raises(ProbeError, match=r"budget must be in \(0, 1\] \[0,1\] pixels, got 2"):
        settings_for("fast", budget=2)
    with pytest.raises(ProbeError, match="steps must be a whole number"):
        FastSettings(steps=2.5)
    assert settings_for("fast", {"steps": 500}, budget="0.1") == FastSettings(steps=500, budget=0.1)
    assert settings_for("fast", {"steps": 500}, steps=20).steps == 20   # what the caller asks beats a model default
    with pytest.raises(FrozenInstanceError):
        fast.steps = 3


def test_divergence_raises_clear_error():
    """An encoder that overflows (NaN) once pixels get bright, as fp16 can: reached after a few steps."""
    enc = linear_encoder()
    lin = enc._embed_image
    enc._embed_image = lambda net, x: torch.where(enc.denormalize(x).amax() > 0.9, torch.nan, lin(net, x))
    white = lin(enc.model, enc.normalize(torch.ones(1, 3, 8, 8))).detach()
    with pytest.raises(DivergenceError, match=r"step [1-9].*NaN/inf"):
        match(enc, rand_images(1) * 0.5, white, FastSettings(budget=1.0, lr=0.2, steps=20))


@pytest.mark.parametrize("mode,options,fragment", [
    ("nope", {}, "mode"),
    ("fast", {"lr": -1.0}, "lr"),
    ("paper", {"steps": 0}, "steps"),
    ("fast", {"budget": 0.0}, "budget"),
    ("fast", {"budget": 2.0}, "budget"),
    ("fast", {"loss": "hinge"}, "loss"),
    ("fast", {"optimizer": "sgd"}, "optimizer"),
    ("fast", {"resolution": "huge"}, "resolution"),
    ("fast", {"unknown": 1}, "unknown"),
])
def test_bad_options_name_the_problem(mode, options, fragment):
    with pytest.raises(ProbeError, match=fragment):
        settings_for(mode, **options)


def test_bad_pixels_are_refused():
    enc = linear_encoder()
    with pytest.raises(ProbeError, match=r"\[0,1\] pixels"):
        match(enc, rand_images(1) * 255, rand_images(1), FastSettings(steps=1))
    with pytest.raises(ProbeError, match="one target per source"):
        match(enc, rand_images(2), rand_images(3), FastSettings(steps=1))


def test_paper_settings_defaults_are_the_authors():
    parts = PaperSettings().parts()
    assert parts.optimizer.lr == 0.09 and parts.steps == 15000 and parts.space == "normalized"
    assert parts.stop.l2sq_below == 16 and parts.stop.cos_above == 0.96 and not parts.keep_best


def test_runs_on_device(device):
    """On any device the returned pictures stay on it, inside the budget and the box, and carry the reported
    final distance (recomputed by hand on the CPU in float64): a real drop, the same as on the CPU."""
    enc = linear_encoder().to(device)
    src, tgt = rand_images(2).to(device), rand_images(2, seed=2).to(device)
    settings = FastSettings(steps=30, budget=0.1)   # unconstrained, these pairs move pixels by 0.17 and 0.27
    result = match(enc, src, tgt, settings)
    assert result.images.device == result.sources.device == result.target_embedding.device == src.device
    change = (result.images - src).abs().amax()
    assert change <= 0.1 + 1e-6 and result.images.min() >= 0 and result.images.max() <= 1
    by_hand = (linear_embedding(result.images.cpu()) - linear_embedding(tgt.cpu())).norm(dim=1)
    torch.testing.assert_close(result.final["l2_to_target"].double(), by_hand, rtol=1e-5, atol=0)
    assert (result.final["l2_to_target"] < 0.5 * result.initial["l2_to_target"]).all()   # 0.04 and 0.24 here
    on_cpu = match(linear_encoder(), src.cpu(), tgt.cpu(), settings)
    torch.testing.assert_close(result.images.cpu(), on_cpu.images, atol=1e-4, rtol=0)


def paper_by_hand(src: torch.Tensor, tgt: torch.Tensor, lr: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' procedure on `linear_encoder()` written out in float64 (8-bit start, plain gradient steps on
    the MSE, global clamp): the squared L2 distance and the cosine to the target at steps 0..steps."""
    a = linear_encoder().model.weight.detach().double()
    mean, std = torch.tensor(MEAN).view(3, 1, 1).double(), torch.tensor(STD).view(3, 1, 1).double()
    x = ((src[0].double().mul(255).round().div(255) - mean) / std).flatten()
    t = a @ ((tgt[0].double().mul(255).round().div(255) - mean) / std).flatten()
    low, high = x.min(), x.max()
    l2sq, cos = [], []
    for _ in range(steps + 1):
        e = a @ x
        l2sq.append(float((e - t).square().sum()))
        cos.append(float(e @ t / (e.norm() * t.norm())))
        x = (x - lr * (2.0 / a.shape[0]) * a.T @ (e - t)).clamp(low, high)
    return torch.tensor(l2sq), torch.tensor(cos)


@pytest.mark.parametrize("early", ["l2", "cos"])
def test_paper_stop_needs_both_thresholds(early):
    """One threshold is met from step 3 on, the other only from step 9 on: the run stops after exactly 9 steps,
    where both hold (a rule stopping when either holds would stop after 3)."""
    src, tgt = rand_images(1, seed=1), rand_images(1, seed=2)
    l2sq, cos = paper_by_hand(src, tgt, lr=0.09, steps=12)
    assert (l2sq.diff() < 0).all() and (cos.diff() > 0).all()   # so each threshold, once met, stays met
    first = {"l2": 3 if early == "l2" else 9, "cos": 3 if early == "cos" else 9}
    l2sq_below = float(l2sq[first["l2"] - 1] + l2sq[first["l2"]]) / 2   # halfway between two steps' values
    cos_above = float(cos[first["cos"] - 1] + cos[first["cos"]]) / 2
    result = match(linear_encoder(), src, tgt, PaperSettings(lr=0.09, steps=40, l2sq_below=l2sq_below,
                                                             cos_above=cos_above))
    assert bool(result.converged[0]) and int(result.steps_run[0]) == 9
    assert result.trace["loss"].shape == (10, 1)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_paper_mode_iterates_stay_in_the_box_and_the_budget(norm):
    """A step 1000 times the authors' throws pixels far outside the budget, and, through the global clamp in
    normalised space, above 1 (the clamp alone allows up to 1.5 here). Every iterate the model is fed (recorded
    at its input, turned back into pixels by the test) stays in [0,1] and within the budget of the start."""
    enc = linear_encoder()
    fed = []
    embed = enc._embed_image
    enc._embed_image = lambda net, x: fed.append(x.detach().clone()) or embed(net, x)
    src = rand_images(1, seed=3).mul(255).round().div(255)   # 8-bit, as the paper's start is
    src[..., :2, :], src[..., -2:, :] = 0.0, 1.0   # black and white rows: the box is where the steps end
    target = linear_embedding(rand_images(1, seed=4)).float()
    options = dict(lr=90.0, steps=6, l2sq_below=0.0, cos_above=2.0)
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)

    match(enc, src, target, PaperSettings(**options))   # the paper's clamp alone
    unbudgeted = torch.stack(fed) * std + mean
    assert unbudgeted.amax() > 1.2 and (unbudgeted - src).abs().amax() > 0.5
    fed.clear()
    match(enc, src, target, PaperSettings(budget=0.05, norm=norm, **options))
    pixels = torch.stack(fed) * std + mean            # source, step 0, every step, the result
    assert len(pixels) == options["steps"] + 3
    assert pixels.amin() >= -1e-6 and pixels.amax() <= 1 + 1e-6
    delta = (pixels - src).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.square().mean(1).sqrt()
    assert (size <= 0.05 + 1e-6).all() and size[-1] > 0.04   # held, and used


def test_loose_thresholds_warn_instead_of_silently_succeeding():
    enc = linear_encoder()
    with pytest.warns(UserWarning, match="before any step"):
        result = match(enc, rand_images(1), rand_images(1, seed=2), PaperSettings(l2sq_below=1e9, cos_above=-1))
    assert bool(result.converged[0]) and int(result.steps_run[0]) == 0


def test_paper_stop_thresholds_are_strict():
    """The authors' rule wants squared L2 strictly below and cosine strictly above its thresholds: a sample exactly
    at either threshold is not done (values exact in float32: 2^2 = 4, 0.75)."""
    stop = PaperStop(l2sq_below=4.0, cos_above=0.75)
    l2 = torch.tensor([2.0, 1.0, 1.0, 1.0])
    cos = torch.tensor([0.9, 0.75, 0.8, 0.5])
    assert stop({"l2_to_target": l2, "cos_to_target": cos}, {}).tolist() == [False, False, True, False]


def test_l2_ball_projects_each_sample_onto_its_own_budget():
    """Per sample, a change with RMS above eps is scaled back to RMS eps (||delta|| = eps sqrt(n)), one within it
    is kept: in a batch of two (one over, one under), and for a change of norm below 1, by hand in float64."""
    x0 = torch.full((2, 3, 2, 2), 0.5, dtype=torch.float64)
    delta = torch.randn(2, 3, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sizes = torch.tensor([0.3, 0.1], dtype=torch.float64)
    delta *= (sizes / delta.flatten(1).norm(dim=1)).view(2, 1, 1, 1)
    eps = 0.05   # budget norm 0.05 * sqrt(12) = 0.173: the first change (0.3) is over, the second (0.1) under
    out = L2Ball(eps)(x0 + delta, x0)
    budget = eps * 12 ** 0.5
    assert torch.allclose(out[0], x0[0] + delta[0] * budget / 0.3, rtol=0, atol=1e-12)
    assert torch.allclose(out[1], x0[1] + delta[1], rtol=0, atol=1e-12)
    assert (out - x0).flatten(1).norm(dim=1).tolist() == pytest.approx([budget, 0.1], rel=1e-12)


def test_all_of_applies_each_constraint_around_the_start_in_order():
    """AllOf gives each constraint the starting point: an L2 ball then an L-inf ball around x0 equal the two
    projections applied by hand, one after the other (and differ from the reverse order)."""
    x0 = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.5 + 0.25
    x = x0 + 0.2 * torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    l2, linf = L2Ball(0.1), LinfBall(0.05)
    out = AllOf([l2, linf])(x, x0)
    assert torch.equal(out, linf(l2(x, x0), x0))
    assert (out - x0).abs().max() <= 0.05 + 1e-12
    assert not torch.equal(out, l2(linf(x, x0), x0))


def test_relative_stop_includes_its_threshold():
    """The fast rule is done once the L2 distance is at most `fraction` of the starting one: at exactly a quarter of
    4 (1.0, exact in float32) it is done, just above not."""
    stop = RelativeStop(fraction=0.25)
    now = {"l2_to_target": torch.tensor([1.0, 0.5, 1.001])}
    assert stop(now, {"l2_to_target": torch.tensor([4.0, 4.0, 4.0])}).tolist() == [True, True, False]


def test_budget_constraint_is_the_ball_of_its_norm_and_checks_its_budget():
    """`linf` gives the L-inf ball and `l2` the L2 ball of the budget; budgets outside (0, 1] (a 0 too, a 1 is
    allowed), budgets that are not numbers, and other norms are refused."""
    assert budget_constraint("linf", 0.1) == LinfBall(0.1) and budget_constraint("l2", 1) == L2Ball(1)
    for bad in (0, 0.0, -0.1, 1.0001, 2, "0.1", None):
        with pytest.raises(ProbeError, match="budget must be in"):
            budget_constraint("l2", bad)
    with pytest.raises(ProbeError, match="norm must be 'linf' or 'l2', got 'l1'"):
        budget_constraint("l1", 0.1)
