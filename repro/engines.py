"""Running a long sweep in shards: in this process (`local`, the default) or as Ray tasks (`ray`).

A sweep (`SweepJob`) is a list of pairs cut into shards of `shard_size` pairs, a multiple of the batch size,
so both engines match the same batches with the same torch thread count and give the same numbers. Each
finished shard goes to its own file (written atomically) in a folder named after the job's key, a hash of
everything that determines its numbers (model weights, images, pairs, head, settings, batch, seed, threads,
device); a rerun loads the shards already there, runs the rest, and merges them in shard order. Killing a
run loses at most the shards in flight. Ray is imported only when the Ray engine is used.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from probe.data import Pairs
from probe.errors import ProbeError
from probe.evaluate import PairOutcomes, match_pairs
from probe.experiments import merge_outcomes
from probe.files import write_bytes
from probe.models import ENCODERS
from probe.progress import Progress, report, within
from repro import fingerprints

FIELDS = ("probabilities", "converged", "psnr_db", "linf_pixel", "rms_pixel", "cos_to_target", "matched", "sources")


@dataclass(frozen=True)
class SweepJob:
    """Everything a shard needs, picklable (it travels to Ray workers)."""

    name: str
    spec: str                 # model spec, loaded by each worker
    weights_sha256: str       # the weights the driver uses: workers must hold the same
    device: str
    dtype: str
    threads: int
    images: Any               # (N,3,h,w) batch, or a list of (3,H,W) images (paper mode)
    pairs: Pairs
    head: Any                 # probe.zeroshot.ZeroShotHead
    settings: Any             # probe.matching.PaperSettings | FastSettings
    batch_size: int
    seed: int
    shard_size: int

    def __post_init__(self):
        if self.shard_size < self.batch_size or self.shard_size % self.batch_size:
            raise ProbeError(f"shard size {self.shard_size} must be a multiple of the batch size {self.batch_size}")

    @property
    def shards(self) -> int:
        return -(-len(self.pairs) // self.shard_size)

    def shard_pairs(self, index: int) -> Pairs:
        cut = slice(index * self.shard_size, (index + 1) * self.shard_size)
        return Pairs(self.pairs.sources[cut], self.pairs.targets[cut], self.pairs.rule)

    def key(self) -> str:
        images = self.images if isinstance(self.images, list) else [self.images]
        return fingerprints.of({
            "spec": self.spec, "weights": self.weights_sha256, "device": self.device, "dtype": self.dtype,
            "threads": self.threads, "images": fingerprints.tensors(images), "pairs": [self.pairs.sources,
                                                                                     self.pairs.targets],
            "head": [self.head.describe(), fingerprints.tensors(self.head.weights)],
            "settings": self.settings.to_dict(), "batch_size": self.batch_size, "seed": self.seed,
            "shard_size": self.shard_size})


@contextlib.contextmanager
def torch_threads(count: int):
    """torch's intra-op thread count set for the duration (the numbers depend on it in the last bits)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _encoder(job: SweepJob):
    """The job's model in this process (loaded once per worker), checked against the driver's weights."""
    encoder = ENCODERS.get(job.spec, device=job.device, dtype=job.dtype)
    if encoder.weights_sha256 != job.weights_sha256:
        raise ProbeError(f"{job.spec} on this worker has weights {encoder.weights_sha256[:12]}, the driver "
                         f"{job.weights_sha256[:12]}: install the same weights on every node")
    return encoder


def run_shard(job: SweepJob, index: int, encoder=None, progress: Progress | None = None) -> dict | None:
    """Match shard `index` of the job; its outcomes as CPU tensors, or None when cancelled."""
    encoder = encoder or _encoder(job)
    with torch_threads(job.threads):
        out = match_pairs(encoder, job.head, job.images, job.shard_pairs(index), job.settings,
                          batch_size=job.batch_size, seed=job.seed, keep_images=True, progress=progress)
    if out.cancelled:
        return None
    payload = {name: getattr(out, name).cpu() for name in FIELDS}
    payload["matched"] = payload["matched"].mul(255).round().to(torch.uint8)   # 8-bit already: exact
    return {"index": index, "sources_idx": list(out.pairs.sources), "targets_idx": list(out.pairs.targets),
            **payload}


# --- shard files ---------------------------------------------------------------------------------


def shard_folder(out: Path, job: SweepJob) -> Path:
    return Path(out) / "shards" / f"{job.name}-{job.key()[:16]}"


def save_shard(folder: Path, payload: dict) -> Path:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_bytes(folder / f"shard-{payload['index']:04d}.pt", buffer.getvalue())


def load_shard(folder: Path, job: SweepJob, index: int) -> dict | None:
    """A finished shard's outcomes, or None when its file is missing, unreadable or not this shard's."""
    path = folder / f"shard-{index:04d}.pt"
    if not path.is_file():
        return None
    try:
        payload = torch.load(io.BytesIO(path.read_bytes()), weights_only=True)
    except Exception:  # a torn or foreign file: run the shard again
        return None
    pairs = job.shard_pairs(index)
    ok = (isinstance(payload, dict) and payload.get("index") == index
          and payload.get("sources_idx") == list(pairs.sources) and payload.get("targets_idx") == list(pairs.targets)
          and all(torch.is_tensor(payload.get(f)) and len(payload[f]) == len(pairs) for f in FIELDS))
    return payload if ok else None


def _outcomes(payload: dict, rule: str):
    values = {f: payload[f] for f in FIELDS}
    values["matched"] = values["matched"].float() / 255
    return PairOutcomes(Pairs(tuple(payload["sources_idx"]), tuple(payload["targets_idx"]), rule), **values)


def run_sweep(job: SweepJob, out: Path, engine, progress: Progress | None = None, encoder=None):
    """All shards of the job, from their files or run by `engine`, merged in shard order (`PairOutcomes`);
    None when the run was cancelled (the finished shards stay on disk)."""
    folder = shard_folder(out, job)
    payloads = {i: p for i in range(job.shards) if (p := load_shard(folder, job, i)) is not None}
    todo = [i for i in range(job.shards) if i not in payloads]

    def finished(index: int, payload: dict) -> None:
        save_shard(folder, payload)
        payloads[index] = payload

    if todo and not engine.run(job, todo, finished, progress, encoder):
        return None
    return merge_outcomes([_outcomes(payloads[i], job.pairs.rule) for i in range(job.shards)])


# --- engines -------------------------------------------------------------------------------------


class LocalEngine:
    """Shards one after the other in this process."""

    name = "local"

    def run(self, job: SweepJob, todo: list[int], finished: Callable, progress=None, encoder=None) -> bool:
        for index in todo:
            payload = run_shard(job, index, encoder, within(progress, f"shard {index + 1}/{job.shards}"))
            if payload is None:
                return False
            finished(index, payload)
        return True

    def describe(self) -> dict:
        return {"engine": self.name}

    def close(self) -> None:
        pass


def run_shard_task(job: SweepJob, index: int) -> dict:
    """The Ray task: one shard in a worker process (the model loaded once per worker)."""
    return run_shard(job, index)


class RayEngine:
    """Each shard a Ray task: `num_cpus` = the job's threads, `num_gpus` = `gpu_share` on CUDA (four tasks
    share a GPU at 0.25); a task whose worker dies is retried up to `max_retries` times. Finished shards come
    back to the driver, which writes their files, so nodes need no shared disk."""

    name = "ray"

    def __init__(self, address: str | None = None, gpu_share: float = 0.25, max_retries: int = 3,
                 task: Callable = run_shard_task):
        self.address, self.gpu_share, self.max_retries, self.task = address, gpu_share, max_retries, task
        self._started = False

    def _init(self):
        try:
            import ray
        except ImportError:
            raise ProbeError("the Ray engine needs Ray: pip install -e '.[scale]'") from None
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            self._started = True
        return ray

    def run(self, job: SweepJob, todo: list[int], finished: Callable, progress=None, encoder=None) -> bool:
        ray = self._init()
        gpus = self.gpu_share if job.device.startswith("cuda") else 0
        task = ray.remote(num_cpus=job.threads, num_gpus=gpus, max_retries=self.max_retries,
                          retry_exceptions=False)(self.task)
        job_ref = ray.put(job)
        pending = {task.remote(job_ref, index): index for index in todo}
        count = 0
        report(progress, "ray shards", 0, len(todo))
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index = pending.pop(ref)
                try:
                    payload = ray.get(ref)
                except Exception as err:  # RayTaskError, WorkerCrashedError after the retries
                    for other in pending:
                        ray.cancel(other)
                    first = (str(err).strip().splitlines() or [""])[-1][:300]
                    raise ProbeError(f"shard {index + 1}/{job.shards} failed on Ray: {first}") from err
                finished(index, payload)
                count += 1
                if not report(progress, "ray shards", count, len(todo)):
                    for other in pending:
                        ray.cancel(other)
                    return False
        return True

    def describe(self) -> dict:
        return {"engine": self.name, "address": self.address, "gpu_share": self.gpu_share,
                "max_retries": self.max_retries}

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def make(name: str, address: str | None = None, gpu_share: float = 0.25):
    """The engine named on the command line."""
    if name == "local":
        if address:
            raise ProbeError("--address applies to --engine ray only")
        return LocalEngine()
    if name == "ray":
        if not 0 < gpu_share <= 1:
            raise ProbeError(f"--gpu-share must be in (0, 1], got {gpu_share}")
        return RayEngine(address=address, gpu_share=gpu_share)
    raise ProbeError(f"unknown engine {name!r}; engines are local, ray")
