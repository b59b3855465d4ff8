"""Writing files so that an interrupted run never leaves a half-written file that looks complete: each is
filled beside its destination and moved into place in one step. And plain JSON: tensors and arrays become
lists, non-finite floats strings, paths strings."""
import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: Path | str, write: Callable[[Path], None]) -> Path:
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
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def jsonable(value: Any) -> Any:
    """Plain JSON: tensors and arrays become lists, non-finite floats become strings, paths strings."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path | str, obj: Any) -> Path:
    text = json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n"
    return write_bytes(path, text.encode())


def write_csv(path: Path | str, rows: list[dict[str, Any]]) -> Path:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return write_bytes(path, buf.getvalue().encode())
