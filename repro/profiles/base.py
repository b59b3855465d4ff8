"""What a profile is: which models, image sets and settings the recipes run with (the profiles themselves:
`repro.profiles.quick`, `repro.profiles.paper`; `repro.profiles.get` names them).

`paper`: the paper's setup (OpenCLIP ViT-H-14 `laion2b_s32b_b79k`, ImageBind-huge's frozen image encoder; the
authors' hyperparameters; Imagenette and the paper's ImageNet classes from the Hub) on a GPU with Hub access.
`quick`: offline on 2 CPU cores: the shipped mini-CLIP, the photos bundled with scikit-image and matplotlib,
generated shapes, and random-init controls. Every substitution is printed on the figures that use it.

Models and image sets are named by role, so one option swaps them everywhere:

    models  main (the model every figure uses), second (Figs 13, 15, 16), third (Fig 13), control (Fig 19)
    images  photos (sources of the pair figures), targets (their targets), classes (Figs 8, 9; the PCA
            reference), sweep (the systematic N x N of Figs 10, 11, 16, 18 and 15)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from probe.errors import ProbeError

MODEL_ROLES = ("main", "second", "third", "control")
IMAGE_ROLES = ("photos", "targets", "classes", "sweep")


@dataclass(frozen=True)
class Profile:
    name: str
    about: str
    models: dict[str, str]            # role -> model spec
    images: dict[str, str]            # role -> image source (see repro.data)
    knobs: dict[int, dict]            # figure id -> the settings its recipe reads
    substitutions: dict[str, str] = field(default_factory=dict)   # role (or paper_mode) -> what stands in for what
    seed: int = 0
    threads: int = 1                  # torch threads, per process and per Ray task
    shard_size: int = 16              # pairs per shard of a sweep (a multiple of the batch size)
    expected_paper_steps: int = 1000  # `repro plan`'s assumption: steps until the authors' thresholds are met
    expected_note: str = "an assumption, not measured"

    def figure(self, id: int) -> dict:
        return self.knobs.get(id, {})

    def with_models(self, **roles: str) -> "Profile":
        """The profile with some models replaced (their substitution notes go: the user chose them)."""
        _check_roles(roles, MODEL_ROLES, "model")
        return replace(self, models={**self.models, **roles},
                       substitutions={k: v for k, v in self.substitutions.items() if k not in roles})

    def with_images(self, as_named: bool = True, **roles: str) -> "Profile":
        """The profile with some image sets replaced. With `as_named`, a bare path for a role whose default is a
        named set (`named:imagenette`) loads that named set from the path (its classes found by WordNet id);
        without, every bare path is read as a set of its own (`probe.data.load_image_set`)."""
        _check_roles(roles, IMAGE_ROLES, "image")
        resolved = {}
        for role, source in roles.items():
            default = self.images[role]
            bare = not source.startswith(("named:", "toy:", "bundled:"))
            named = as_named and bare and default.startswith("named:")
            resolved[role] = f"{default.split('=')[0]}={source}" if named else source
        return replace(self, images={**self.images, **resolved},
                       substitutions={k: v for k, v in self.substitutions.items() if k not in roles})

    def to_dict(self) -> dict:
        return {"name": self.name, "about": self.about, "models": self.models, "images": self.images,
                "substitutions": self.substitutions, "seed": self.seed, "threads": self.threads,
                "shard_size": self.shard_size, "figures": {str(k): v for k, v in sorted(self.knobs.items())}}


def _check_roles(roles: dict, known: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(roles) - set(known))
    if unknown:
        raise ProbeError(f"unknown {what} role {unknown[0]!r}; roles are {', '.join(known)}")


def parse_overrides(values: list[str], roles: tuple[str, ...], main: str) -> dict[str, str]:
    """CLI overrides, one per option given: `ROLE=SPEC` for a role, a bare `SPEC` for the `main` one. A word
    before `=` that is no role is an error (specs and paths with `=` pass: they hold `:` or `/`)."""
    out = {}
    for value in values:
        role, sep, rest = value.partition("=")
        if sep and role in roles:
            out[role] = rest
        elif sep and role.isidentifier() and "/" not in role and ":" not in role:
            raise ProbeError(f"unknown role {role!r} in {value!r}; roles are {', '.join(roles)}")
        else:
            out[main] = value
    return out


def smoke(profile: Profile) -> Profile:
    """The profile at tiny settings: 3 matching steps, 2 directions per family, 3 sweep classes, 2 spectra.
    Every recipe then runs in seconds, to check a setup (models, image sets, engine) before a long run, and
    for the tests. It is named PROFILE-smoke; `check` judges it by its profile's references, which its
    numbers (meaningless) fail."""
    def steps(record: dict) -> dict:
        return {**record, "steps": 3}

    def sweep(record: dict) -> dict:
        return {**record, "settings": steps(record["settings"]), "batch_size": 2, "classes": 3}

    knobs = {}
    for fid, k in profile.knobs.items():
        k = dict(k)
        if "batch_size" in k:
            k = sweep(k)
        elif "settings" in k:
            k["settings"] = steps(k["settings"])
        if "samples" in k:
            k["samples"] = 2
        if "eps" in k:
            k |= {"eps": [1e-3, 1.0, 100.0], "optimize_steps": 2}
        if "variants" in k:
            k["variants"] = {slug: {**v, "settings": steps(v["settings"])} for slug, v in k["variants"].items()}
        if "pairs" in k:
            k |= {"pairs": {**k["pairs"], "settings": steps(k["pairs"]["settings"])}, "sweep": sweep(k["sweep"])}
        if fid == 12:
            k["images"] = k["images"][:2]
        knobs[fid] = k
    return replace(profile, name=f"{profile.name}-smoke", knobs=knobs, shard_size=4)
