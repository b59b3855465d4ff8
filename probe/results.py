"""Saving an experiment's result, and recording how it was made (versions, seed, weights, device).

`save(result, folder)` is the one writer of `summary.json`, and writes it last: its presence means the folder
is complete. Every summary carries `format_version` (see CHANGELOG.md) and never a path or name of the machine
that made it.
"""
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from probe.files import atomic_write, write_csv, write_json
from probe.images import save_png

PACKAGES = ("probe", "torch", "torchvision", "open_clip_torch", "timm", "transformers",
            "huggingface_hub", "numpy", "pillow", "matplotlib")
FORMAT_VERSION = 2   # of summary.json: 2 adds format_version, weights_sha256, and drops host (CHANGELOG.md)
SUMMARY_FILE = "summary.json"


def save_figure(fig, path: Path | str, data: Any | None = None, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG, and the numbers behind it as JSON beside it when given."""
    import matplotlib.pyplot as plt

    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    plt.close(fig)
    if data is not None:
        write_json(path.with_suffix(".json"), data)
    return path


def package_versions() -> dict[str, str]:
    import platform

    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance(**fields: Any) -> dict[str, Any]:
    """What every summary carries: the caller's fields plus the format version, package versions and time."""
    return {"format_version": FORMAT_VERSION, **fields, "versions": package_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def save(result, folder: Path | str) -> Path:
    """Write an experiment result (`probe.experiments`) to `folder`: its images as 8-bit PNG, its tables as CSV,
    its figures as PNG with their numbers as JSON beside them, and `summary.json` (`result.to_dict()`) last, so
    its presence means everything else is complete. Every file is written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SUMMARY_FILE).unlink(missing_ok=True)  # a rerun into the same folder is complete only at its end
    for name, image in result.images().items():
        save_png(image, folder / f"{name}.png")
    for name, rows in result.tables().items():
        write_csv(folder / f"{name}.csv", rows)
    for name, figure, data in result.figures():
        save_figure(figure, folder / f"{name}.png", data)
    return write_json(folder / SUMMARY_FILE, result.to_dict())
