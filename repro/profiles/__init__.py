"""The profiles by name: `quick` (offline, 2 CPU cores, the shipped mini-CLIP) and `paper` (the paper's setup on a
GPU with Hub access). What a profile holds, and the roles, are in `repro.profiles.base`."""
from __future__ import annotations

from probe.errors import ProbeError
from repro.profiles import paper, quick
from repro.profiles.base import IMAGE_ROLES, MODEL_ROLES, Profile, parse_overrides, smoke

PROFILES = {"quick": quick.PROFILE, "paper": paper.PROFILE}

__all__ = ["PROFILES", "Profile", "IMAGE_ROLES", "MODEL_ROLES", "get", "parse_overrides", "smoke"]


def get(name: str) -> Profile:
    if name not in PROFILES:
        raise ProbeError(f"unknown profile {name!r}; profiles are {', '.join(PROFILES)}")
    return PROFILES[name]
