"""Plug-ins add named models and image sets without the core naming them (as timm's `@register_model` does):
each is an entry point of the group `probe.plugins` (pyproject.toml) whose function calls
`probe.models.register_model` and `probe.data.register_image_source`. They load once, on the first lookup of a
name that is not built in."""
from __future__ import annotations

from importlib.metadata import entry_points

GROUP = "probe.plugins"
_loaded = False


def load() -> None:
    """Run every installed plug-in's registration, once per process."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for entry in entry_points(group=GROUP):
        entry.load()()
