"""The Ray engine (a local Ray instance with 2 CPUs) gives exactly the local engine's numbers, shard for
shard, also when a task's worker is killed and Ray retries it."""
import os

import pytest
import torch

ray = pytest.importorskip("ray")

from probe import experiments  # noqa: E402
from probe.models import load_encoder  # noqa: E402
from repro import data  # noqa: E402
from repro.engines import LocalEngine, RayEngine, SweepJob, run_shard_task, run_sweep  # noqa: E402

pytestmark = pytest.mark.slow   # a whole module of end-to-end runs


@pytest.fixture(scope="module")
def local_ray():
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def job():
    """A 6-pair sweep of the mini-CLIP in 3 shards of 2 pairs (batches of 1 and 2: same in both engines)."""
    encoder = load_encoder("mini-clip")
    image_set = data.load("toy:shapes:red circle,green square,blue triangle")
    settings = experiments.FastSettings(norm="l2", budget=0.017668, loss="cosine", optimizer="normalized", steps=8,
                                        resolution="model")
    plan = experiments.plan_systematic(encoder, image_set, settings, batch_size=2)
    return encoder, SweepJob("test", "mini-clip", encoder.weights_sha256, "cpu", "float32", 1, plan.images,
                             plan.pairs, plan.head, plan.settings, 2, 0, 2)


def same(a, b):
    for name in ("probabilities", "psnr_db", "linf_pixel", "rms_pixel", "cos_to_target", "sources"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=1e-6, rtol=0)
    assert torch.equal(a.matched, b.matched), "8-bit decisions differ"
    assert torch.equal(a.converged, b.converged) and a.pairs == b.pairs


def test_ray_equals_local_also_with_a_killed_worker(local_ray, job, tmp_path):
    encoder, sweep = job
    local = run_sweep(sweep, tmp_path / "local", LocalEngine(), encoder=encoder)
    assert len(local) == 6 and local.matched.shape[0] == 6
    same(run_sweep(sweep, tmp_path / "ray", RayEngine()), local)

    marker = tmp_path / "killed-once"

    def dies_once(job, index):   # pickled by value: a closure
        if index == 1 and not marker.exists():
            marker.touch()
            os._exit(1)              # the worker process dies mid-task
        return run_shard_task(job, index)

    same(run_sweep(sweep, tmp_path / "ray-killed", RayEngine(task=dies_once)), local)
    assert marker.exists(), "the worker was never killed"
    assert len(list((tmp_path / "ray-killed").glob("shards/*/shard-*.pt"))) == 3
