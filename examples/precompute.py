"""Make the example results the app shows before any click (examples/precomputed/{match,inspect,equivalence}/),
with the shipped mini-CLIP and the app's own calls; rerun whenever the shipped weights change. Each records the
SHA-256 of the weights file, and tests/test_app.py checks that it matches the shipped file and that the match
reproduces.

    .venv/bin/python examples/precompute.py
"""
import hashlib
import shutil
from pathlib import Path

from probe import experiments
from probe.matching import FastSettings
from probe.models import MINI_CLIP_DIR, load_encoder
from probe.results import save, write_json
from probe.serving import bundle
from probe.toy.data import class_names
from probe.toy.effect import photo_paths

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "precomputed"
SOURCE, TARGET = ROOT / "cat.png", ROOT / "shapes" / "blue_star.png"
SETTINGS = FastSettings(steps=300)
EQUIVALENCE_SOURCES = [ROOT / "cat.png", ROOT / "coffee.png", ROOT / "rocket.png"]
EQUIVALENCE_TARGET = ROOT / "shapes" / "red_circle.png"


def weights_sha256() -> str:
    return hashlib.sha256((MINI_CLIP_DIR / "open_clip_model.safetensors").read_bytes()).hexdigest()


def top(row, classes, k=5):
    best = sorted(range(len(row)), key=lambda i: float(row[i]), reverse=True)[:k]
    return {classes[i]: float(row[i]) for i in best}


def fresh(name: str) -> Path:
    folder = OUT / name
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def relative(path: Path) -> Path:
    return path.relative_to(ROOT.parent)


def match(encoder) -> None:
    run = experiments.match(encoder, relative(SOURCE), relative(TARGET), SETTINGS)
    folder = fresh("match")
    save(run, folder)
    read = experiments.classify(encoder, [folder / "source.png", folder / "matched.png"], class_names())
    reference = sorted(ROOT.glob("*.png")) + sorted((ROOT / "shapes").glob("*.png")) + photo_paths()  # app.REFERENCE
    view = experiments.projection(encoder, [folder / "source.png", TARGET, folder / "matched.png"], reference,
                                  names=["source", "target", "matched (PNG)"], k=4)
    save(view, folder / "pca")
    summary = run.to_dict() | {"weights_sha256": weights_sha256(), "pca": view.to_dict()["coefficients"],
                               "zero_shot_source": top(read.probabilities[0], read.classes),
                               "zero_shot_matched": top(read.probabilities[1], read.classes)}
    write_json(folder / "summary.json", summary)
    shutil.move(bundle(folder), folder / "results.zip")
    print(run.headline())


def inspect(encoder) -> None:
    run = experiments.inspect(encoder, relative(SOURCE), k=4)
    folder = fresh("inspect")
    save(run, folder)
    write_json(folder / "summary.json", run.to_dict() | {"weights_sha256": weights_sha256(), "method_used": "exact"})
    print(run.headline())


def equivalence(encoder) -> None:
    run = experiments.equivalence(encoder, [relative(p) for p in EQUIVALENCE_SOURCES], [relative(EQUIVALENCE_TARGET)],
                                  SETTINGS, classes=class_names())
    folder = fresh("equivalence")
    save(run, folder)
    write_json(folder / "summary.json", run.to_dict() | {"weights_sha256": weights_sha256()})
    shutil.move(bundle(folder), folder / "results.zip")
    print(run.headline())


def main() -> None:
    encoder = load_encoder("mini-clip")
    for make in (match, inspect, equivalence):
        make(encoder)


if __name__ == "__main__":
    main()
