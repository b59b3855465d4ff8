"""Writing outputs so that an interrupted run never leaves a half-written file that looks complete,
and recording how each result was made (versions, seed, weights, device)."""
import csv
import io
import json
import math
import os
import platform
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

PACKAGES = ("probe", "torch", "torchvision", "open_clip_torch", "timm", "transformers",
            "huggingface_hub", "numpy", "pillow", "matplotlib")


def _atomic_write(path: Path | str, write: Callable[[Path], None]) -> Path:
    """Let `write` fill a temporary file beside `path`, then move it into place in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes files only their owner can read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: Path | str, data: bytes) -> Path:
    return _atomic_write(path, lambda tmp: tmp.write_bytes(data))


def _jsonable(value: Any) -> Any:
    """Plain JSON: tensors and arrays become lists, non-finite floats become strings."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path | str, obj: Any) -> Path:
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n"
    return write_bytes(path, text.encode())


def write_csv(path: Path | str, rows: list[dict[str, Any]]) -> Path:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return write_bytes(path, buf.getvalue().encode())


def save_figure(fig, path: Path | str, data: Any | None = None, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG, and the numbers behind it as JSON beside it when given."""
    import matplotlib.pyplot as plt

    path = Path(path)
    _atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    plt.close(fig)
    if data is not None:
        write_json(path.with_suffix(".json"), data)
    return path


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance(**fields: Any) -> dict[str, Any]:
    """What every summary carries: the caller's fields plus versions, host and time."""
    return {
        **fields,
        "versions": package_versions(),
        "host": platform.node(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


SUMMARY_FILE = "summary.json"


def save(result, folder: Path | str) -> Path:
    """Write an experiment result (`probe.experiments`) to `folder`: its images as 8-bit PNG, its tables as CSV,
    its figures as PNG with their numbers as JSON beside them, and `summary.json` (`result.to_dict()`) last, so
    its presence means everything else is complete. Every file is written atomically."""
    from probe.images import save_png

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
