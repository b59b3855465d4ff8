"""Image sets for the experiments, and the (source, target) pairs that matching consumes.

Image sets come from Hugging Face `datasets` (a Hub id, optionally streamed) or from local layouts that
work offline: a folder of class subfolders (or a flat folder of images), an `imagefolder` layout,
parquet files, or a `save_to_disk` folder. Class names come from the dataset's ClassLabel feature.
Selection is deterministic: N images per class, drawn with a seeded generator per class.

Named sets for the paper (`NAMED_SETS`): Imagenette's 10 classes and the ImageNet classes the paper
shows. Their classes are matched in any source by WordNet id, by ImageNet-1k index (1000-class sources)
or by name, so a local copy (e.g. imagenette2-320/val with WordNet-id folders) works as well as the Hub.

`load_source(text)` reads every way of naming a set in one string (profiles, the CLI): `bundled:photos` (the
colour photos that ship with scikit-image and matplotlib, offline), `named:NAME[=PATH]`, a plug-in's
`PREFIX:...` (`register_image_source`; the mini-CLIP's `toy:shapes`, `toy:drawings`), or a path or Hub id.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from probe import plugins
from probe.errors import ProbeError
from probe.images import decode_image, load_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
LAYOUTS = ("auto", "folder", "imagefolder", "parquet", "disk", "hub")
STREAM_SHUFFLE_BUFFER = 1000


@dataclass
class ImageSet:
    """[0,1] RGB images (3,H,W; sizes may differ), their labels and the class names they index."""

    images: list[torch.Tensor]
    labels: list[int]
    class_names: list[str]
    names: list[str]     # each image: its file path, else its dataset row or stream position
    source: str          # what was loaded, for the record

    def __len__(self) -> int:
        return len(self.images)

    def at_model_input(self, encoder) -> torch.Tensor:
        """All images as one batch (N,3,h,w) at the model's input size, through the encoder's own resize
        and centre crop (the route every matching run takes to model resolution)."""
        with torch.no_grad():
            return torch.cat([encoder.to_model_input(img[None].to(encoder.device, torch.float32)).clamp(0, 1)
                              for img in self.images])

    def describe(self) -> dict:
        """What a result records about its images."""
        return {"source": self.source, "classes": self.class_names, "labels": self.labels, "images": self.names}


# --- named sets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassRef:
    """An ImageNet class: the name used as its zero-shot label, its WordNet id and ImageNet-1k index."""

    name: str
    wnid: str
    imagenet_index: int


@dataclass(frozen=True)
class NamedSet:
    about: str
    hub_id: str
    split: str
    classes: tuple[ClassRef, ...]
    data_dir: str | None = None
    revision: str | None = None
    gated: bool = False
    streaming: bool = False   # from the Hub, stream the few images wanted instead of preparing the whole split
    download: str = ""        # what loading it from the Hub downloads, for the README and `repro plan`


IMAGENETTE = (
    ClassRef("tench", "n01440764", 0), ClassRef("English springer", "n02102040", 217),
    ClassRef("cassette player", "n02979186", 482), ClassRef("chain saw", "n03000684", 491),
    ClassRef("church", "n03028079", 497), ClassRef("French horn", "n03394916", 566),
    ClassRef("garbage truck", "n03417042", 569), ClassRef("gas pump", "n03425413", 571),
    ClassRef("golf ball", "n03445777", 574), ClassRef("parachute", "n03888257", 701),
)

PAPER_IMAGENET = (
    ClassRef("agama", "n01687978", 42), ClassRef("black widow", "n01774384", 75),
    ClassRef("hammerhead shark", "n01494475", 4), ClassRef("leatherback turtle", "n01665541", 34),
    ClassRef("peacock", "n01806143", 84), ClassRef("wombat", "n01883070", 106),
    ClassRef("maltese dog", "n02085936", 153), ClassRef("egyptian cat", "n02124075", 285),
    ClassRef("tiger", "n02129604", 292), ClassRef("racing car", "n04037443", 751),
    ClassRef("panda", "n02510455", 388), ClassRef("zebra", "n02391049", 340),
)

NAMED_SETS: dict[str, NamedSet] = {
    # frgfm/imagenette is a loading script, which `datasets` no longer runs: read the Hub's parquet export.
    "imagenette": NamedSet("Imagenette's 10 classes (320 px validation images), the sister paper's "
                           "systematic 10 x 10 evaluation", "frgfm/imagenette", "validation", IMAGENETTE,
                           data_dir="320px", revision="refs/convert/parquet",
                           download="the 320 px validation split's parquet files (3,925 images, about 0.1 GB)"),
    # ImageNet-1k is streamed: preparing it would download every split (about 150 GB) to pick 12 images; the
    # stream stops once every class has its images.
    "imagenet-paper": NamedSet("the ImageNet classes the paper shows (agama ... zebra), from the "
                               "ImageNet-1k validation split", "ILSVRC/imagenet-1k", "validation",
                               PAPER_IMAGENET, gated=True, streaming=True,
                               download="a stream of the validation split until each of the 12 classes has its "
                                        "image: about 3,000 images on average (~0.4 GB read, nothing kept)"),
}
GATED_HUB_IDS = {named.hub_id for named in NAMED_SETS.values() if named.gated}


def load_named_set(name: str, per_class: int = 1, seed: int = 0, source: str | None = None,
                   split: str | None = None, streaming: bool = False, token: str | None = None) -> ImageSet:
    """A named set, from its Hub source or from `source` (any layout `load_image_set` reads)."""
    if name not in NAMED_SETS:
        raise ProbeError(f"unknown image set {name!r}; named sets: {', '.join(NAMED_SETS)} "
                         "(or pass a folder, parquet file, save_to_disk folder or Hub id)")
    named = NAMED_SETS[name]
    if source is not None:
        return load_image_set(source, split=split, classes=named.classes, per_class=per_class, seed=seed,
                              streaming=streaming, token=token)
    return load_image_set(named.hub_id, split=split or named.split, classes=named.classes,
                          per_class=per_class, seed=seed, layout="hub", streaming=streaming or named.streaming,
                          token=token, data_dir=named.data_dir, revision=named.revision)


# --- sources by name: bundled photos, named sets, plug-ins' sets ------------------------------------

SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
                  "motorcycle_left.png", "retina.jpg", "rocket.jpg")
MATPLOTLIB_PHOTOS = ("grace_hopper.jpg",)
IMAGE_SOURCES: dict[str, tuple[Callable[[str, int], ImageSet], str]] = {}


def bundled_photos() -> list[Path]:
    """The colour photographs that ship with scikit-image and matplotlib (offline): astronaut, chelsea (a cat),
    coffee, Hubble deep field, immunohistochemistry, motorcycle, retina, rocket, Grace Hopper."""
    import matplotlib
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    samples = Path(matplotlib.get_data_path()) / "sample_data"
    paths = [folder / name for name in SKIMAGE_PHOTOS] + [samples / name for name in MATPLOTLIB_PHOTOS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ProbeError(f"photos missing from the installed packages: {missing}")
    return paths


def reference_images(*folders: Path) -> list[Path]:
    """The PNGs in `folders` (sorted) and the bundled photos: a reference set for PCA views."""
    return [path for folder in folders for path in sorted(Path(folder).glob("*.png"))] + bundled_photos()


def register_image_source(prefix: str, loader: Callable[[str, int], ImageSet], about: str) -> None:
    """Add `PREFIX:...` sources (a plug-in's: `probe.plugins`); `loader(rest, seed)` gives the set."""
    IMAGE_SOURCES[prefix] = (loader, about)


def load_source(source: str, per_class: int = 1, seed: int = 0) -> ImageSet:
    """The image set a source string names (see the module docstring)."""
    kind, _, rest = source.partition(":")
    if kind == "bundled" and rest == "photos":
        paths = bundled_photos()
        return ImageSet([load_image(p) for p in paths], list(range(len(paths))), [p.stem for p in paths],
                        [p.name for p in paths], "bundled photos (scikit-image, matplotlib)")
    if kind == "named":
        name, _, path = rest.partition("=")
        if name not in NAMED_SETS:
            raise ProbeError(f"image source {source!r}: unknown named set; named sets: {', '.join(NAMED_SETS)}")
        return load_named_set(name, per_class=per_class, seed=seed, source=path or None)
    if kind and not Path(source).exists():
        plugins.load()
        if kind in IMAGE_SOURCES:
            return IMAGE_SOURCES[kind][0](rest, seed)
    return load_image_set(source, per_class=per_class, seed=seed)


# --- loading -------------------------------------------------------------------------------------


def load_image_set(source: str | Path, *, split: str | None = None, classes: Sequence | None = None,
                   per_class: int | None = None, seed: int = 0, layout: str = "auto",
                   streaming: bool = False, token: str | None = None, data_dir: str | None = None,
                   revision: str | None = None, image_column: str | None = None,
                   label_column: str | None = None) -> ImageSet:
    """Load images with labels from a local layout or the Hub.

    layout `auto` picks: a `.parquet` file or a folder holding parquet files -> parquet; a folder with
    `state.json` or `dataset_dict.json` -> save_to_disk; a folder of class subfolders holding images (or
    a flat folder of images, each its own class named after the file) -> folder; any other folder ->
    `imagefolder` (split folders, metadata files); a name that is no local path -> Hub id.
    `split`: on the Hub default `validation`; locally the only split, else `validation` if present.
    `classes`: names, label ids or ClassRefs to keep, in this order (default all); labels are
    renumbered to this order. `per_class`: images per class (default all), chosen with `seed`; a stream
    takes the first `per_class` of each class after a seeded shuffle buffer. Labels come from the
    ClassLabel column, else a column named `label` (its sorted values become the class names).
    """
    if layout not in LAYOUTS:
        raise ProbeError(f"layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    if per_class is not None and per_class < 1:
        raise ProbeError(f"per_class must be >= 1, got {per_class}")
    path = Path(source).expanduser()
    if layout == "auto":
        layout = _local_layout(path) if path.exists() else _hub_or_missing(str(source))
    if layout == "folder":
        return _load_folder(path, classes, per_class, seed)
    if layout == "hub":
        what = f"{source} ({split or 'validation'})"
        hub_id = str(source)
        ds = _guard(what, hub_id, lambda: _open_hub(hub_id, split or "validation", streaming, token, data_dir,
                                                    revision))
    else:
        what, hub_id = str(path), None
        ds = _guard(what, None, lambda: _pick_split(_open_local(path, layout, streaming), split, what))
    return _guard(what, hub_id, lambda: _from_dataset(ds, what, classes, per_class, seed, image_column,
                                                      label_column))


def _hub_or_missing(source: str) -> str:
    if source.startswith(("/", ".", "~")) or source.endswith(".parquet") or source.count("/") > 1:
        raise ProbeError(f"image set {source!r}: no such file or folder")
    return "hub"


def _local_layout(path: Path) -> str:
    if path.is_file():
        if path.suffix == ".parquet":
            return "parquet"
        raise ProbeError(f"{path}: a file but not a .parquet file; pass a folder of class subfolders, an "
                         "imagefolder or save_to_disk folder, or parquet files")
    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        return "disk"
    if _folder_entries(path) is not None:
        return "folder"
    if next(path.rglob("*.parquet"), None) is not None:
        return "parquet"
    return "imagefolder"


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _folder_entries(path: Path) -> list[tuple[Path, str]] | None:
    """(file, class name) for a class-per-subfolder or flat folder; None for any other layout."""
    if any((path / name).is_file() for name in ("metadata.csv", "metadata.jsonl", "metadata.parquet")):
        return None
    subdirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    by_class = {d.name: sorted(f for f in d.iterdir() if _is_image(f)) for d in subdirs}
    if subdirs and all(by_class.values()):
        return [(f, name) for name, files in by_class.items() for f in files]
    flat = sorted(f for f in path.iterdir() if _is_image(f))
    if flat and not subdirs:
        return [(f, f.stem) for f in flat]
    return None


def _load_folder(path: Path, classes, per_class: int | None, seed: int) -> ImageSet:
    if not path.is_dir():
        raise ProbeError(f"{path}: no such folder")
    entries = _folder_entries(path)
    if not entries:
        raise ProbeError(f"{path}: expected a folder of class subfolders holding images "
                         f"({', '.join(sorted(IMAGE_SUFFIXES))}) or a flat folder of images")
    names = sorted({name for _, name in entries})
    labels = [names.index(name) for _, name in entries]
    wanted, class_names = _resolve_classes(classes, names, str(path))
    rows = select_per_class(labels, wanted, per_class, seed, class_names)
    return ImageSet([load_image(entries[r][0]) for r in rows], [wanted.index(labels[r]) for r in rows],
                    class_names, [str(entries[r][0].relative_to(path)) for r in rows], str(path))


def _open_local(path: Path, layout: str, streaming: bool):
    import datasets

    if layout == "disk":
        loaded = datasets.load_from_disk(str(path))
        if not streaming:
            return loaded
        if hasattr(loaded, "keys"):
            return datasets.IterableDatasetDict({k: v.to_iterable_dataset() for k, v in loaded.items()})
        return loaded.to_iterable_dataset()
    if layout == "parquet":
        if path.is_file():
            return datasets.load_dataset("parquet", data_files={path.stem: str(path)}, streaming=streaming)
        return datasets.load_dataset(str(path), streaming=streaming)
    return datasets.load_dataset("imagefolder", data_dir=str(path), streaming=streaming)


def _open_hub(hub_id: str, split: str, streaming: bool, token, data_dir, revision):
    import datasets

    return datasets.load_dataset(hub_id, split=split, streaming=streaming, token=token, data_dir=data_dir,
                                 revision=revision)


def _pick_split(loaded, split: str | None, what: str):
    """One split of a local dataset: the one asked for, the only one, or `validation`."""
    if not hasattr(loaded, "keys"):
        return loaded
    available = list(loaded.keys())
    if split is None and len(available) == 1:
        split = available[0]
    elif split is None and "validation" in available:
        split = "validation"
    if split not in available:
        raise ProbeError(f"{what}: split {split!r} not found; it has {', '.join(available)} (pass split=)")
    return loaded[split]


def _guard(what: str, hub_id: str | None, action):
    """Run a `datasets` call; turn its failure into one line saying what to pass or download instead."""
    try:
        return action()
    except ProbeError:
        raise
    except Exception as err:  # datasets and huggingface_hub raise anything from OSError to RuntimeError
        text = str(err).strip()
        first = (text.splitlines() or [""])[0][:300]
        message = f"could not load image set {what}: {type(err).__name__}: {first}"
        hub = hub_id is not None
        if hub and (hub_id in GATED_HUB_IDS or "gated" in text.lower() or "401" in text or "403" in text):
            message += (f". It is gated: accept its terms at https://huggingface.co/datasets/{hub_id}, then "
                        "log in (`hf auth login`) or set HF_TOKEN (or pass token=)")
        if hub and "scripts are no longer supported" in text:
            message += (". The repo is a loading script, which `datasets` no longer runs; try "
                        "revision='refs/convert/parquet' (the Hub's parquet export)")
        if hub:
            message += (". Without network, download it where the Hub is reachable "
                        "(`load_dataset(...).save_to_disk(DIR)`, or its parquet files, or an image folder "
                        "per class) and pass that path instead (for a named set: source=PATH)")
        raise ProbeError(message) from err


def _columns(features, image_column: str | None, label_column: str | None, what: str) -> tuple[str, str]:
    import datasets

    if not features:
        raise ProbeError(f"{what}: the dataset does not say its columns; pass image_column= and label_column=")
    image = image_column or next((k for k, f in features.items() if isinstance(f, datasets.Image)), None)
    label = label_column or next((k for k, f in features.items() if isinstance(f, datasets.ClassLabel)),
                                 next((k for k in ("label", "labels") if k in features), None))
    for role, column in (("image", image), ("label", label)):
        if column is None or column not in features:
            kind = "an Image feature" if role == "image" else "a ClassLabel feature or one named label"
            raise ProbeError(f"{what}: no {role} column ({kind}); columns are {', '.join(features)} "
                             f"(pass {role}_column=)")
    return image, label


def _from_dataset(ds, what: str, classes, per_class: int | None, seed: int, image_column: str | None,
                  label_column: str | None) -> ImageSet:
    import datasets

    image_col, label_col = _columns(ds.features, image_column, label_column, what)
    streaming = isinstance(ds, datasets.IterableDataset)
    if not isinstance(ds.features[label_col], datasets.ClassLabel):
        if streaming:
            raise ProbeError(f"{what}: label column {label_col!r} is not a ClassLabel; load it without streaming")
        ds = ds.class_encode_column(label_col)
    wanted, class_names = _resolve_classes(classes, list(ds.features[label_col].names), what)
    ds = ds.cast_column(image_col, datasets.Image(decode=False))
    if streaming:
        rows = _first_per_class(ds.shuffle(seed=seed, buffer_size=STREAM_SHUFFLE_BUFFER), label_col,
                                wanted, per_class, what, class_names)
        tags = [f"stream item {i}" for i, _ in rows]
        rows = [row for _, row in rows]
    else:
        picked = select_per_class(list(ds[label_col]), wanted, per_class, seed, class_names)
        rows = list(ds.select(picked))
        tags = [f"row {i}" for i in picked]
    names = [row[image_col].get("path") or tag for row, tag in zip(rows, tags)]
    images = [_decode(row[image_col], f"{what} {tag}") for row, tag in zip(rows, tags)]
    return ImageSet(images, [wanted.index(row[label_col]) for row in rows], class_names, names, what)


def _first_per_class(stream, label_col: str, wanted: list[int], per_class: int | None, what: str,
                     class_names: list[str]) -> list[tuple[int, dict]]:
    """The first `per_class` items of each wanted class in (shuffled) stream order, grouped by class."""
    if per_class is None:
        raise ProbeError(f"{what}: streaming needs per_class (a stream has no end to wait for)")
    found: dict[int, list[tuple[int, dict]]] = {c: [] for c in wanted}
    for index, row in enumerate(stream):
        bucket = found.get(row[label_col])
        if bucket is not None and len(bucket) < per_class:
            bucket.append((index, row))
            if all(len(b) == per_class for b in found.values()):
                break
    short = [f"{class_names[i]} ({len(found[c])})" for i, c in enumerate(wanted) if len(found[c]) < per_class]
    if short:
        raise ProbeError(f"{what}: the stream ended with fewer than {per_class} images for {', '.join(short)}")
    return [item for c in wanted for item in found[c]]


def _decode(value: dict, tag: str) -> torch.Tensor:
    if value.get("bytes"):
        return decode_image(value["bytes"], name=tag)
    if value.get("path"):
        return load_image(value["path"])
    raise ProbeError(f"{tag}: the image has neither bytes nor a path")


def _resolve_classes(classes, names: list[str], what: str) -> tuple[list[int], list[str]]:
    """Source label ids for the wanted classes, in order, and the names the image set will use."""
    if classes is None:
        return list(range(len(names))), list(names)
    ids, out = [], []
    for wanted in classes:
        index = _class_index(wanted, names)
        if index is None:
            shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
            raise ProbeError(f"{what}: class {wanted!r} not found among its {len(names)} classes ({shown})")
        ids.append(index)
        out.append(wanted.name if isinstance(wanted, ClassRef) else names[index])
    if len(set(ids)) != len(ids):
        raise ProbeError(f"{what}: classes {list(classes)} name the same class twice")
    return ids, out


def _class_index(wanted, names: list[str]) -> int | None:
    """A class by label id; by exact name; by WordNet id or ImageNet-1k index (ClassRef); or by any of
    a name's comma-separated synonyms, ignoring case ("tench, Tinca tinca" matches "tench")."""
    if isinstance(wanted, (int, np.integer)):
        return int(wanted) if 0 <= wanted < len(names) else None
    if isinstance(wanted, ClassRef):
        if wanted.wnid in names:
            return names.index(wanted.wnid)
        if len(names) == 1000:
            return wanted.imagenet_index
        wanted = wanted.name
    if wanted in names:
        return names.index(wanted)
    key = str(wanted).strip().lower()
    for index, name in enumerate(names):
        if key in (s.strip().lower() for s in name.split(",")):
            return index
    return None


def select_per_class(labels: Sequence[int], wanted: Sequence[int], per_class: int | None, seed: int,
                     class_names: Sequence[str] | None = None) -> list[int]:
    """Row indices, grouped by class in `wanted` order: `per_class` rows of each class (all if None),
    drawn by a generator seeded with (seed, class id), so one class's draw never depends on another's.
    Within a class the rows keep their dataset order."""
    labels_arr = np.asarray(labels)
    rows = []
    for position, cls in enumerate(wanted):
        members = np.flatnonzero(labels_arr == cls)
        if per_class is None:
            rows.extend(members.tolist())
            continue
        if len(members) < per_class:
            name = class_names[position] if class_names else cls
            raise ProbeError(f"class {name!r} has {len(members)} images, fewer than per_class={per_class}")
        chosen = np.random.default_rng([seed, int(cls)]).choice(members, size=per_class, replace=False)
        rows.extend(sorted(chosen.tolist()))
    return rows


# --- pairs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pairs:
    """Ordered (source, target) index pairs for matching, and the rule that made them.

    Source indices point into the source images, target indices into the target images (or
    embeddings); for `all_pairs` both are the same set. `batches(n)` yields them n at a time.
    """

    sources: tuple[int, ...]
    targets: tuple[int, ...]
    rule: str

    def __len__(self) -> int:
        return len(self.sources)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self.sources, self.targets))

    def batches(self, batch_size: int) -> Iterator[tuple[list[int], list[int]]]:
        """(source indices, target indices) of at most `batch_size` pairs each, in order."""
        if batch_size < 1:
            raise ProbeError(f"batch_size must be >= 1, got {batch_size}")
        for start in range(0, len(self), batch_size):
            yield list(self.sources[start:start + batch_size]), list(self.targets[start:start + batch_size])


def _indices(value: int | Sequence[int], what: str) -> tuple[int, ...]:
    out = tuple(range(value)) if isinstance(value, int) else tuple(int(v) for v in value)
    if not out:
        raise ProbeError(f"no {what} given")
    return out


def many_to_one(sources: int | Sequence[int], target: int) -> Pairs:
    """Every source matched to one target (e.g. road scenes -> "speed limit 70"). `sources`: a count
    n (meaning 0..n-1) or indices. Nothing is excluded: sources and target index separate lists."""
    src = _indices(sources, "sources")
    return Pairs(src, (int(target),) * len(src), f"many sources -> target {target}")


def one_to_many(source: int, targets: int | Sequence[int]) -> Pairs:
    """One source matched to every target (the paper's look-alikes with different embeddings)."""
    tgt = _indices(targets, "targets")
    return Pairs((int(source),) * len(tgt), tgt, f"source {source} -> many targets")


def all_pairs(labels: int | Sequence[int], exclude: str = "same_class") -> Pairs:
    """All ordered pairs (i, j) of one set, row-major (i, then j), for the systematic N x N evaluation.
    exclude `self` drops i == j; `same_class` (default) drops pairs whose labels are equal, so every
    image is matched to every image of another class. `labels`: per-image labels, or a count n meaning
    n images of n different classes."""
    if exclude not in ("self", "same_class"):
        raise ProbeError(f"exclude must be 'self' or 'same_class', got {exclude!r}")
    labels = list(range(labels)) if isinstance(labels, int) else list(labels)
    kept = [(i, j) for i in range(len(labels)) for j in range(len(labels))
            if i != j and (exclude == "self" or labels[i] != labels[j])]
    if not kept:
        raise ProbeError(f"no pairs left after excluding {exclude.replace('_', ' ')} pairs of {len(labels)} images")
    src, tgt = zip(*kept)
    return Pairs(src, tgt, f"all ordered pairs of {len(labels)} images, excluding {exclude.replace('_', ' ')}")
