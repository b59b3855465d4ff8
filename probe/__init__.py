"""probe: equivalence structures in the embedding spaces of vision transformers (arXiv:2401.15568).

The main calls, loaded on first use so that `import probe` stays cheap:

    encoder = probe.load_encoder("mini-clip")                     # any spec: see probe.models
    result = probe.match(encoder, "cat.png", "rocket.png")        # one experiment call (probe.experiments)
    probe.save(result, "out/cat2rocket")                         # images, figures, CSV, summary.json last

Experiments: match, equivalence, spectrum, lipschitz, inspect, classify, systematic, effect; settings:
FastSettings, PaperSettings.
"""
from importlib import import_module

__version__ = "0.4.0"

_EXPORTS = {
    "load_encoder": "probe.models", "default_spec": "probe.models",
    "FastSettings": "probe.matching", "PaperSettings": "probe.matching",
    "match": "probe.experiments", "equivalence": "probe.experiments", "spectrum": "probe.experiments",
    "lipschitz": "probe.experiments", "inspect": "probe.experiments", "classify": "probe.experiments",
    "systematic": "probe.experiments", "effect": "probe.experiments",
    "save": "probe.results", "load_image": "probe.images", "ProbeError": "probe.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'probe' has no attribute {name!r}")
