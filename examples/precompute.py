"""Make the example result the app shows before any click (examples/precomputed/match/), with the shipped
mini-CLIP and the app's own calls; rerun whenever the shipped weights change. It records the SHA-256 of the
weights file, and tests/test_app.py checks that it matches the shipped file and that the numbers reproduce.

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
SOURCE, TARGET = ROOT / "cat.png", ROOT / "shapes" / "blue_star.png"
SETTINGS = FastSettings(steps=300)


def weights_sha256() -> str:
    return hashlib.sha256((MINI_CLIP_DIR / "open_clip_model.safetensors").read_bytes()).hexdigest()


def top(row, classes, k=5):
    best = sorted(range(len(row)), key=lambda i: float(row[i]), reverse=True)[:k]
    return {classes[i]: float(row[i]) for i in best}


def main() -> None:
    encoder = load_encoder("mini-clip")
    run = experiments.match(encoder, SOURCE.relative_to(ROOT.parent), TARGET.relative_to(ROOT.parent), SETTINGS)
    folder = ROOT / "precomputed" / "match"
    if folder.exists():
        shutil.rmtree(folder)
    save(run, folder)
    read = experiments.classify(encoder, [folder / "source.png", folder / "matched.png"], class_names())
    reference = sorted(ROOT.glob("*.png")) + sorted((ROOT / "shapes").glob("*.png")) + photo_paths()  # app.REFERENCE
    save(experiments.projection(encoder, [folder / "source.png", TARGET, folder / "matched.png"], reference,
                                names=["source", "target", "matched (PNG)"], k=4), folder / "pca")
    summary = run.to_dict() | {"weights_sha256": weights_sha256(),
                               "zero_shot_source": top(read.probabilities[0], read.classes),
                               "zero_shot_matched": top(read.probabilities[1], read.classes)}
    write_json(folder / "summary.json", summary)
    shutil.move(bundle(folder), folder / "results.zip")
    print(run.headline())


if __name__ == "__main__":
    main()
