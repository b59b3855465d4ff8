"""The files of a run folder, read back: figN.png and figN.json (complete, or a failure record) and
manifest.json. The one place that knows their names and what makes a record complete."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"


def paths(out: Path, figure_id: int) -> tuple[Path, Path]:
    return Path(out) / f"fig{figure_id}.png", Path(out) / f"fig{figure_id}.json"


def read_record(out: Path, figure_id: int) -> dict | None:
    """figN.json if it is complete and figN.png is the file it describes; None otherwise."""
    png, record_path = paths(out, figure_id)
    try:
        record = json.loads(record_path.read_text())
        digest = hashlib.sha256(png.read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None
    ok = isinstance(record, dict) and record.get("complete") is True and record.get("png_sha256") == digest
    return record if ok else None


def read_failure(out: Path, figure_id: int) -> str | None:
    """What figure `figure_id` raised when it last ran, from its failure record (None: no such record)."""
    try:
        record = json.loads(paths(out, figure_id)[1].read_text())
    except (OSError, ValueError):
        return None
    return record.get("error") if isinstance(record, dict) and record.get("failed") else None


def read_manifest(out: Path) -> dict:
    try:
        return json.loads((Path(out) / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
