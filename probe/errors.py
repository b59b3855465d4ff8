"""Errors a user can act on. The CLI prints their message on one line; everything else is a bug."""


class ProbeError(ValueError):
    """Bad input or an unavailable resource, with a message that names the problem."""


class ImageError(ProbeError):
    """A file that is not a usable image."""


class ModelError(ProbeError):
    """A model spec that cannot be resolved or loaded."""


class DivergenceError(ProbeError):
    """An optimisation produced NaN or inf."""
