"""What a recipe gets: the profile's models and image sets by role (loaded once per run), its own settings,
shared results (one run of an experiment read by several figures), the sharded sweeps, and progress.

Every model and image set a recipe touches is recorded (`used`), so its figure's fingerprint covers exactly
the weights and images it read."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from probe import experiments
from probe.errors import ProbeError
from probe.matching import settings_from_dict
from probe.models import ENCODERS
from probe.progress import Progress, within
from repro import data, fingerprints
from repro.engines import LocalEngine, SweepJob, run_sweep


class Interrupted(Exception):
    """The user asked to stop (Ctrl-C): the figure in progress is not written."""


class Context:
    def __init__(self, profile, out: Path, *, engine=None, device: str = "cpu", dtype: str = "float32",
                 progress: Progress | None = None):
        self.profile, self.out, self.device, self.dtype = profile, Path(out), device, dtype
        self.engine = engine or LocalEngine()
        self.progress = progress
        self._encoders: dict[str, Any] = {}
        self._weights: dict[str, str] = {}
        self._failed: dict[str, ProbeError] = {}
        self._sets: dict[str, Any] = {}
        self._memo: dict[str, Any] = {}
        self.figure = None
        self.knobs: dict = {}
        self.used: dict = {"models": {}, "images": {}}

    # --- per figure ---

    def begin(self, figure) -> None:
        self.figure, self.knobs = figure, self.profile.figure(figure.id)
        self.used = {"models": {}, "images": {}}

    def stage(self, name: str) -> Progress | None:
        return within(self.progress, name)

    def finished(self, result):
        """The result, unless it was cancelled (then the figure stops here)."""
        if result is None or getattr(result, "cancelled", False):
            raise Interrupted(f"fig{self.figure.id} interrupted")
        return result

    # --- models and images by role ---

    def spec(self, role: str) -> str:
        if role not in self.profile.models:
            raise ProbeError(f"profile {self.profile.name} has no model for role {role!r}")
        return self.profile.models[role]

    def model(self, role: str = "main"):
        encoder = self._load(role)
        self.used["models"][role] = self.model_record(role)
        return encoder

    def _load(self, role: str):
        spec = self.spec(role)
        if spec in self._failed:   # a model that did not load fails every figure at once, not after a retry each
            raise self._failed[spec]
        if spec not in self._encoders:
            try:
                self._encoders[spec] = ENCODERS.get(spec, device=self.device, dtype=self.dtype)
            except ProbeError as err:
                self._failed[spec] = err
                raise
            self._weights[spec] = self._encoders[spec].weights_sha256
        return self._encoders[spec]

    def model_record(self, role: str) -> dict:
        """Spec, weights label and sha256 of the weights of a role's model (loaded if need be)."""
        encoder = self._load(role)
        return {"spec": self.spec(role), "weights": encoder.weights,
                "sha256": self._weights[self.spec(role)], "input_size": list(encoder.input_size)}

    def images(self, role: str):
        self.used["images"][role] = self.images_record(role)
        return self._sets[self.profile.images[role]]

    def images_record(self, role: str) -> dict:
        """Source and sha256 of a role's image set (loaded if need be)."""
        source = self.profile.images.get(role)
        if source is None:
            raise ProbeError(f"profile {self.profile.name} has no image set for role {role!r}")
        if source not in self._sets:
            self._sets[source] = data.load(source, seed=self.profile.seed)
        return {"source": source, "sha256": data.fingerprint(self._sets[source])}

    def dataset_record(self, role: str) -> dict:
        """What the manifest says about a role's images: source, dataset id and revision, sha256."""
        self.images_record(role)
        source = self.profile.images[role]
        return data.describe(source, self._sets[source])

    def pick(self, role: str, indices) -> tuple[list, list[str], list[int]]:
        """Images of a role by index (wrapping around a smaller user set): pixels, names, labels."""
        image_set = self.images(role)
        rows = [i % len(image_set) for i in indices]
        return ([image_set.images[i] for i in rows], [Path(image_set.names[i]).name for i in rows],
                [image_set.labels[i] for i in rows])

    def settings(self, record: dict):
        return settings_from_dict(record)

    # --- results shared between figures ---

    def shared(self, key: str, compute: Callable[[], Any]) -> Any:
        """`compute()` once per run for this key (which must name everything the result depends on)."""
        full = f"{key}:{fingerprints.of(self.knobs)}"
        if full not in self._memo:
            self._memo[full] = compute()
        return self._memo[full]

    def sweep(self, name: str, image_set, settings_record: dict, batch_size: int, model_role: str = "main",
              head=None):
        """The systematic evaluation of `image_set` on a role's model, in shards through the engine (resumed
        from the shard files in OUT/shards): (`SystematicResult` with the matched images kept, its `SweepPlan`)."""
        encoder = self.model(model_role)
        key = "sweep:" + fingerprints.of([name, self.spec(model_role), data.fingerprint(image_set), settings_record,
                                          batch_size])
        if key in self._memo:
            return self._memo[key]
        start = time.perf_counter()
        plan = experiments.plan_systematic(encoder, image_set, self.settings(settings_record), head=head,
                                           batch_size=batch_size, seed=self.profile.seed)
        spec = self.spec(model_role)
        job = SweepJob(name, spec, self._weights[spec], self.device, self.dtype, self.profile.threads, plan.images,
                       plan.pairs, plan.head, plan.settings, batch_size, self.profile.seed, self.profile.shard_size)
        outcomes = run_sweep(job, self.out, self.engine, self.stage(f"sweep {name}"), encoder)
        if outcomes is None:
            raise Interrupted(f"sweep {name} interrupted (finished shards are kept)")
        result = experiments.systematic_from(encoder, plan, outcomes, time.perf_counter() - start)
        result.settings |= {"shard_size": job.shard_size, "shards": job.shards, "threads": job.threads,
                            "engine": self.engine.describe(), "sweep_key": job.key()}
        self._memo[key] = (result, plan)
        return self._memo[key]

    # --- fingerprints ---

    def fingerprint(self, figure, used: dict) -> str:
        """Hash of everything a figure's numbers depend on: the profile's settings for it, the weights and
        images of the roles it used (as they are now), seed, threads, device, dtype and the recipe's code."""
        return fingerprints.of({
            "profile": self.profile.name, "figure": figure.id, "knobs": self.profile.figure(figure.id),
            "seed": self.profile.seed, "threads": self.profile.threads, "shard_size": self.profile.shard_size,
            "device": self.device, "dtype": self.dtype, "recipe": figure.code,
            "models": {role: [self.spec(role), self.model_record(role)["sha256"]] for role in sorted(used["models"])},
            "images": {role: self.images_record(role) for role in sorted(used["images"])}})
