"""The experiment calls added for repro: projection, match_text, noise_sensitivity, spectra, transfer, compare,
and systematic cut into shards (plan_systematic, merge_outcomes, systematic_from)."""
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
    images = shapes.images[:2] + [shapes.images[0].clone()]
    run = experiments.projection(mini_clip, images, shapes, names=["a", "b", "a again"], k=2)
    assert run.coefficients.shape == (3, 2) and 0 < float(run.explained.sum()) <= 1
    torch.testing.assert_close(run.coefficients[0], run.coefficients[2])
    assert [name for name, _, _ in run.figures()] == ["pca_bars"]


def test_match_text_moves_towards_the_text(mini_clip, shapes):
    run = experiments.match_text(mini_clip, [shapes.images[0]], ["blue star", "green cross"], FAST)
    assert run.targets == ['text "blue star"', 'text "green cross"'] and len(run.pairs) == 2
    for pair in run.pairs:
        assert pair.values["cos_to_target_final"] > pair.values["cos_to_target_initial"] + 0.1
    assert run.classes == ["blue star", "green cross"] and run.probabilities_after.shape == (2, 2)
    with pytest.raises(Exception, match="one source, or one per text"):
        experiments.match_text(mini_clip, shapes.images[:2], ["a b", "c d", "e f"], FAST)


def test_noise_sensitivity_scores_and_cancel(mini_clip, shapes):
    clean = torch.stack(shapes.images)
    run = experiments.noise_sensitivity(mini_clip, clean, clean.flip(0), sigmas=[8 / 255, 32 / 255], samples=2)
    assert run.sigmas == [8 / 255, 32 / 255] and not run.cancelled
    assert all((run.clean[s] >= 0).all() and len(run.modified[s]) == 3 for s in run.sigmas)
    assert float(run.clean[32 / 255].mean()) > float(run.clean[8 / 255].mean())   # more noise, more change
    assert 0 <= run.numbers()["auc"][0] <= 1
    stopped = experiments.noise_sensitivity(mini_clip, clean, clean, sigmas=[0.1, 0.2], samples=1,
                                            progress=lambda stage, done, total, m: done < 1)
    assert stopped.cancelled and stopped.sigmas == [0.1]


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


def test_compare_two_settings(mini_clip, shapes):
    slow = FastSettings(steps=2, resolution="model")
    run = experiments.compare(shapes.images[:1], shapes.images[1:2], {"fast": (mini_clip, FAST),
                                                                     "slow": (mini_clip, slow)}, goal=0.5)
    numbers = run.numbers()
    fast_series, slow_series = (numbers[k]["relative_cosine_distance"][0] for k in ("fast", "slow"))
    assert fast_series[0] == 1.0 and len(fast_series) == 7 and len(slow_series) == 3
    assert numbers["fast"]["seconds_per_step"] > 0 and len(run.reached("slow")) == 1
