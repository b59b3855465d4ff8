"""The experiment calls added for repro: projection, match_text, noise_sensitivity, spectra, transfer, compare,
and systematic cut into shards (plan_systematic, merge_outcomes, systematic_from)."""
import numpy as np
import pytest
import torch

from probe import experiments
from probe.data import Pairs
from probe.evaluate import match_pairs
from probe.matching import FastSettings
from repro import data

FAST = FastSettings(norm="l2", budget=0.0177, loss="cosine", optimizer="normalized", steps=6, resolution="model")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread, as repro runs (two threads on a shared 2-core machine ran 5x slower)."""
    from repro.engines import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def shapes():
    return data.load("toy:shapes:red circle,green square,blue triangle")


def test_roc_curve_and_auc():
    fpr, tpr, auc = experiments.roc_curve(torch.tensor([0.1, 0.2]), torch.tensor([0.3, 0.4]))
    assert auc == 1.0 and fpr[0] == tpr[0] == 0.0 and fpr[-1] == tpr[-1] == 1.0
    assert experiments.roc_curve(torch.tensor([0.3, 0.4]), torch.tensor([0.1, 0.2]))[2] == 0.0
    assert experiments.roc_curve(torch.tensor([0.5]), torch.tensor([0.5]))[2] == 0.5


def test_systematic_in_shards_equals_one_run(mini_clip, shapes):
    """Shards that start at multiples of the batch size, merged in order, give systematic()'s numbers."""
    whole = experiments.systematic(mini_clip, shapes, FAST, batch_size=2)
    plan = experiments.plan_systematic(mini_clip, shapes, FAST, batch_size=2)
    parts = [match_pairs(mini_clip, plan.head, plan.images, Pairs(plan.pairs.sources[i:i + 2],
                                                                  plan.pairs.targets[i:i + 2], plan.pairs.rule),
                         plan.settings, batch_size=2) for i in range(0, len(plan.pairs), 2)]
    sharded = experiments.systematic_from(mini_clip, plan, experiments.merge_outcomes(parts), 0.0)
    a, b = whole.outcome.summary(), sharded.outcome.summary()
    assert a == b and len(parts) == 3
    assert sharded.settings["exclude"] == whole.settings["exclude"]


def test_projection_bars_of_look_alikes(mini_clip, shapes):
    """Coefficients and variance shares equal a PCA done here with numpy's SVD of the reference set's
    embeddings (signs fixed by the largest loading), for pictures in and out of that set; the figure carries them."""
    outsider = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    images = shapes.images[:2] + [shapes.images[0].clone(), outsider]
    run = experiments.projection(mini_clip, images, shapes, names=["a", "b", "a again", "noise"], k=2)
    with torch.no_grad():
        reference, pictures = (mini_clip(torch.stack(x)).double().numpy() for x in (shapes.images, images))
    mean = reference.mean(axis=0)
    _, s, vt = np.linalg.svd(reference - mean, full_matrices=False)
    components = vt[:2] * np.sign(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(axis=1)])[:, None]
    expected = (pictures - mean) @ components.T
    scale = np.abs(expected).max()   # float32 embeddings: agreement to ~1e-6 of the largest coefficient
    assert np.allclose(run.coefficients.numpy(), expected, rtol=0, atol=1e-5 * scale)
    assert np.allclose(run.explained.numpy(), s[:2] ** 2 / (s ** 2).sum(), rtol=1e-5)
    torch.testing.assert_close(run.coefficients[0], run.coefficients[2])
    (name, _, data), = run.figures()
    assert name == "pca_bars" and np.allclose(data["coefficients"], expected, rtol=0, atol=1e-5 * scale)
    assert data["titles"] == ["a", "b", "a again", "noise"]


def test_match_text_moves_towards_the_text(mini_clip, shapes):
    run = experiments.match_text(mini_clip, [shapes.images[0]], ["blue star", "green cross"], FAST)
    assert run.targets == ['text "blue star"', 'text "green cross"'] and len(run.pairs) == 2
    for pair in run.pairs:
        assert pair.values["cos_to_target_final"] > pair.values["cos_to_target_initial"] + 0.1
    assert run.classes == ["blue star", "green cross"] and run.probabilities_after.shape == (2, 2)
    with pytest.raises(Exception, match="one source, or one per text"):
        experiments.match_text(mini_clip, shapes.images[:2], ["a b", "c d", "e f"], FAST)


def noise_scores(encoder, images: torch.Tensor, sigmas, samples: int, seed: int = 0) -> list[torch.Tensor]:
    """Reference: per sigma, each image's mean cosine distance to `samples` copies with N(0, sigma^2) pixel
    noise clipped to [0,1], the noise drawn from one seeded generator, sigma by sigma, copy by copy."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        base = encoder(images).double()
        out = []
        for sigma in sigmas:
            distances = [1 - torch.nn.functional.cosine_similarity(
                encoder((images + sigma * torch.randn(images.shape, generator=gen)).clamp(0, 1)).double(), base)
                for _ in range(samples)]
            out.append(torch.stack(distances).mean(0))
    return out


def test_noise_sensitivity_scores_and_cancel(mini_clip, shapes):
    """Scores equal the noisy-copy cosine distances recomputed here, the AUC the share of (modified, clean)
    pairs they order right (ties half), and a cancelled run keeps the finished level's scores."""
    clean = torch.stack(shapes.images)
    modified = 0.25 + 0.5 * torch.rand(clean.shape, generator=torch.Generator().manual_seed(1))
    sigmas = [8 / 255, 32 / 255]
    run = experiments.noise_sensitivity(mini_clip, clean, modified, sigmas=sigmas, samples=2)
    assert run.sigmas == sigmas and not run.cancelled
    expected = noise_scores(mini_clip, torch.cat([clean, modified]), sigmas, samples=2)
    numbers = run.numbers()
    for index, (sigma, scores) in enumerate(zip(sigmas, expected)):
        torch.testing.assert_close(run.clean[sigma], scores[:3], rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(run.modified[sigma], scores[3:], rtol=1e-4, atol=1e-7)
        pos, neg = scores[3:, None], scores[None, :3]
        auc = float((pos > neg).double().mean() + 0.5 * (pos == neg).double().mean())
        assert numbers["auc"][index] == pytest.approx(auc)
    assert float(run.clean[32 / 255].mean()) > 4 * float(run.clean[8 / 255].mean())   # more noise, more change
    stopped = experiments.noise_sensitivity(mini_clip, clean, clean, sigmas=[0.1, 0.2], samples=1,
                                            progress=lambda stage, done, total, m: done < 1)
    assert stopped.cancelled and stopped.sigmas == [0.1]
    first, = noise_scores(mini_clip, torch.cat([clean, clean]), [0.1], samples=1)
    torch.testing.assert_close(torch.cat([stopped.clean[0.1], stopped.modified[0.1]]), first, rtol=1e-4, atol=1e-7)


def test_spectra_normalised_across_models(mini_clip, shapes):
    run = experiments.spectra([(mini_clip, shapes.images[0]), ("mini-clip@random", shapes.images[0])],
                              labels=["trained", "random"], normalize=True)
    numbers = run.numbers()
    assert [s["numerical_rank"] for s in numbers["spectra"]] == [62, 62]
    (_, _, fig_data), = run.figures()
    assert [curve[0] for curve in fig_data["curves"].values()] == [1.0, 1.0]


def test_transfer_on_the_matcher_itself(mini_clip, shapes):
    images = torch.stack(shapes.images)
    run = experiments.transfer(mini_clip, images[[1, 2]], images[[0, 0]], images[[1, 2]], [0, 0], [1, 2],
                               shapes.class_names, matcher=mini_clip)
    numbers = run.numbers()   # the "matched" images are the targets themselves: distance ratio 0, read as target
    assert numbers["reader_target_rate"] == 1.0 and numbers["distance_ratio_reader_median"] == 0.0
    assert numbers["distance_ratio_matcher"] == numbers["distance_ratio_reader"]


def relative_cosine_distance(encoder, start: torch.Tensor, end: torch.Tensor, target: torch.Tensor) -> float:
    """(1 - cos(f(end), f(target))) / (1 - cos(f(start), f(target))), computed here from the pixels."""
    with torch.no_grad():
        start_emb, end_emb, target_emb = encoder(torch.stack([start, end, target])).double()
    cos = torch.nn.functional.cosine_similarity
    return float((1 - cos(end_emb, target_emb, dim=0)) / (1 - cos(start_emb, target_emb, dim=0)))


def test_compare_two_settings(mini_clip, shapes):
    """Each series starts at 1 and holds the relative cosine distance of the kept (best) iterate, recomputed here
    from the matched pixels: for the cosine loss the lowest value of the series, well below its start."""
    slow = FastSettings(steps=2, resolution="model")
    run = experiments.compare(shapes.images[:1], shapes.images[1:2], {"fast": (mini_clip, FAST),
                                                                     "slow": (mini_clip, slow)}, goal=0.5)
    numbers = run.numbers()
    fast_series, slow_series = (numbers[k]["relative_cosine_distance"][0] for k in ("fast", "slow"))
    assert fast_series[0] == slow_series[0] == 1.0 and len(fast_series) == 7 and len(slow_series) == 3
    fast, slow_run = run.runs["fast"][0], run.runs["slow"][0]
    kept = relative_cosine_distance(mini_clip, fast.source_pixels, fast.matched, shapes.images[1])
    assert min(fast_series) == pytest.approx(kept, rel=1e-4) and kept < 0.5   # float32 embeddings
    kept_slow = relative_cosine_distance(mini_clip, slow_run.source_pixels, slow_run.matched, shapes.images[1])
    assert min(abs(v - kept_slow) for v in slow_series) < 1e-4 * kept_slow and kept_slow < 1
    assert numbers["fast"]["steps_to_goal"] == [next(s for s, v in enumerate(fast_series) if v <= 0.5)]
    assert numbers["fast"]["seconds_per_step"] > 0 and len(run.reached("slow")) == 1
