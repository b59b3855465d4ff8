"""Shipped files never name the machine that made them: no tracked file outside tests/ (zip archives opened, text
and JSON read) holds the path of a checkout, a home folder, a virtualenv or a test's run folder."""
import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MACHINE_PATH = re.compile(r"(?<![\w./-])(?:/home/[\w.-]+|/Users/[\w.-]+|/root|/work|/tmp/pytest-of-[\w.-]+|"
                          r"/var/folders|/private/var|[A-Za-z]:\\\\?Users)(?=[/\\\"'\s]|$)")
TEXT = (".py", ".json", ".md", ".txt", ".yml", ".yaml", ".toml", ".csv", ".html", ".cfg", ".ini", "")


def tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        return [ROOT / p for p in listed.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):   # not a git checkout: every file but the usual clutter
        skip = {".git", ".venv", "__pycache__", ".pytest_cache", "probe.egg-info"}
        return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


def texts(path: Path):
    """(name, text) of a file, or of each text member of a zip archive."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
            for member in archive.namelist():
                if Path(member).suffix in TEXT:
                    yield f"{path.name}:{member}", archive.read(member).decode("utf-8", "replace")
    elif path.suffix in TEXT:
        yield path.name, path.read_text("utf-8", "replace")


def machine_paths(text: str) -> list[str]:
    """Absolute paths of the usual machine folders, and this machine's checkout, home and environment."""
    here = "|".join(re.escape(p) for p in {str(ROOT), str(Path.home()), sys.prefix} if len(p) > 1)
    this_machine = re.compile(rf"(?<![\w./-])(?:{here})(?=[/\\\"'\s]|$)")
    return [m.group(0) for pattern in (MACHINE_PATH, this_machine) for m in pattern.finditer(text)]


def test_no_tracked_file_names_a_machine_path():
    found = {}
    for path in tracked_files():
        relative = path.relative_to(ROOT)
        if relative.parts[0] == "tests" or not path.is_file():
            continue
        for name, text in texts(path):
            hits = machine_paths(text)
            if hits:
                found[f"{relative.parent / name}"] = sorted(set(hits))[:3]
    assert not found, found


def test_the_scan_finds_the_paths_it_is_for():
    assert machine_paths('"weights": "local:/home/alice/probe/toy/mini_clip"') == ["/home/alice"]
    assert machine_paths(f'"model": "{ROOT}/probe/toy/mini_clip"')
    assert machine_paths("out: /tmp/pytest-of-root/pytest-3/x") and machine_paths("C:\\Users\\bob\\x")
    assert machine_paths("/work/main/examples")
    assert not machine_paths(".venv/bin/python -m repro all --out /tmp/smoke; local:probe/toy/mini_clip; "
                             "https://huggingface.co/root/x; mini-clip@sha256:e8b3d7265d24")
