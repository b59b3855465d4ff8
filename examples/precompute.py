"""Make the example results the app shows before any click (examples/precomputed/{match,inspect,equivalence}/),
with the shipped mini-CLIP and the very calls the app makes (one experiment call each, saved by
`probe.results.save`); rerun whenever the shipped weights change. Each summary names the weights by their stable
id and sha256, and tests/test_app.py checks that they are the shipped file's and that the match reproduces.

    .venv/bin/python examples/precompute.py
"""
import shutil
from pathlib import Path

from probe import experiments
from probe.data import reference_images
from probe.matching import settings_for
from probe.models import ENCODERS, defaults_for
from probe.results import save
from probe.serving import bundle
from probe.toy.data import class_names

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "precomputed"
SOURCE, TARGET = ROOT / "cat.png", ROOT / "shapes" / "blue_star.png"
EQUIVALENCE_SOURCES = [ROOT / "cat.png", ROOT / "coffee.png", ROOT / "rocket.png"]
EQUIVALENCE_TARGET = ROOT / "shapes" / "red_circle.png"


def written(result, name: str, zipped: bool = True) -> None:
    """`result` saved to OUT/name (a fresh folder), with the zip the app offers."""
    folder = OUT / name
    if folder.exists():
        shutil.rmtree(folder)
    save(result, folder)
    if zipped:
        shutil.move(bundle(folder), folder / "results.zip")
    print(result.headline())


def relative(path: Path) -> Path:
    return path.relative_to(ROOT.parent)


def main() -> None:
    encoder = ENCODERS.get("mini-clip")
    settings = settings_for("fast", defaults_for("mini-clip", "fast"))
    written(experiments.match(encoder, relative(SOURCE), relative(TARGET), settings, classes=class_names(),
                              reference=reference_images(ROOT, ROOT / "shapes")), "match")   # the app's reference
    written(experiments.inspect(encoder, relative(SOURCE), k=4), "inspect", zipped=False)
    written(experiments.equivalence(encoder, [relative(p) for p in EQUIVALENCE_SOURCES], [relative(EQUIVALENCE_TARGET)],
                                    settings, classes=class_names()), "equivalence")


if __name__ == "__main__":
    main()
