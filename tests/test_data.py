"""Image sets from every offline layout, deterministic selection, named sets, the offline Hub message, pairs."""
import time

import pytest
import torch

from probe.data import (IMAGENETTE, PAPER_IMAGENET, ImageSet, all_pairs, load_image_set, load_named_set,
                        many_to_one, one_to_many, select_per_class)
from probe.errors import ProbeError
from probe.images import encode_png, save_png

CLASSES = ["cat", "dog", "fox"]
PER_CLASS = 3


def coded(cls: int, index: int, h: int = 6, w: int = 8) -> torch.Tensor:
    """A flat image whose grey level encodes (class, index), so a loaded image tells where it came from."""
    return torch.full((3, h, w), (40 * cls + 10 * index + 5) / 255)


def code_of(image: torch.Tensor) -> tuple[int, int]:
    level = round(image.mean().item() * 255) - 5
    return level // 40, (level % 40) // 10


def check(image_set: ImageSet, classes=CLASSES, per_class=PER_CLASS):
    """Right class names, per_class images per class in class order, each image labelled as its class."""
    assert image_set.class_names == list(classes)
    assert image_set.labels == [c for c in range(len(classes)) for _ in range(per_class)]
    for image, label in zip(image_set.images, image_set.labels):
        assert image.shape == (3, 6, 8) and 0 <= image.min() and image.max() <= 1
        assert CLASSES[code_of(image)[0]] == classes[label]


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    for c, name in enumerate(CLASSES):
        for i in range(PER_CLASS):
            save_png(coded(c, i), root / name / f"{i}.png")
    return root


def hf_dataset(string_labels: bool = False):
    import datasets

    rows = [(c, i) for c in range(len(CLASSES)) for i in range(PER_CLASS)]
    images = [{"bytes": encode_png(coded(c, i)), "path": None} for c, i in rows]
    if string_labels:
        features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
        return datasets.Dataset.from_dict({"image": images, "label": [CLASSES[c] for c, _ in rows]}, features)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)})
    return datasets.Dataset.from_dict({"image": images, "label": [c for c, _ in rows]}, features)


def test_class_folder(class_folder):
    image_set = load_image_set(class_folder)
    check(image_set)
    assert image_set.names[0] == "cat/0.png" and image_set.source == str(class_folder)
    assert image_set.describe()["classes"] == CLASSES


def test_imagefolder_via_datasets(class_folder, tmp_path):
    check(load_image_set(class_folder, layout="imagefolder"))
    for split, offset in (("train", 0), ("validation", 1)):
        for c, name in enumerate(CLASSES):
            save_png(coded(c, offset), tmp_path / split / name / "a.png")
    image_set = load_image_set(tmp_path)  # split folders: auto picks imagefolder, then `validation`
    check(image_set, per_class=1)
    assert [code_of(img)[1] for img in image_set.images] == [1, 1, 1]
    with pytest.raises(ProbeError, match="split 'test' not found; it has train, validation"):
        load_image_set(tmp_path, split="test")


def test_parquet_and_save_to_disk(tmp_path):
    hf_dataset().to_parquet(str(tmp_path / "set.parquet"))
    check(load_image_set(tmp_path / "set.parquet"))
    (tmp_path / "folder").mkdir()
    hf_dataset().to_parquet(str(tmp_path / "folder" / "validation-00000.parquet"))
    check(load_image_set(tmp_path / "folder"))
    hf_dataset().save_to_disk(str(tmp_path / "disk"))
    check(load_image_set(tmp_path / "disk"))
    hf_dataset(string_labels=True).to_parquet(str(tmp_path / "strings.parquet"))
    check(load_image_set(tmp_path / "strings.parquet"))  # names from the sorted label values


def test_selection_is_seeded_per_class_and_subsets_classes(class_folder):
    a = load_image_set(class_folder, per_class=2, seed=0)
    b = load_image_set(class_folder, per_class=2, seed=0)
    assert a.names == b.names and a.labels == [0, 0, 1, 1, 2, 2]
    draws = {tuple(load_image_set(class_folder, per_class=1, seed=s).names) for s in range(8)}
    assert len(draws) > 1
    fox_cat = load_image_set(class_folder, classes=["fox", "cat"], per_class=2, seed=0)
    assert fox_cat.class_names == ["fox", "cat"] and fox_cat.labels == [0, 0, 1, 1]
    assert fox_cat.names[2:] == a.names[:2]  # a class's draw does not depend on the others
    with pytest.raises(ProbeError, match="'cat' has 3 images, fewer than per_class=4"):
        load_image_set(class_folder, per_class=4)
    with pytest.raises(ProbeError, match="class 'wolf' not found"):
        load_image_set(class_folder, classes=["wolf"])


def test_select_per_class_groups_rows_by_class():
    rows = select_per_class([1, 0, 1, 0, 1], wanted=[1, 0], per_class=None, seed=0)
    assert rows == [0, 2, 4, 1, 3]


def test_flat_folder_is_one_class_per_image(tmp_path):
    save_png(coded(0, 0), tmp_path / "stop_sign.png")
    save_png(coded(1, 0), tmp_path / "speed_limit_70.png")
    image_set = load_image_set(tmp_path)
    assert image_set.class_names == ["speed_limit_70", "stop_sign"] and image_set.labels == [0, 1]


def test_named_sets_from_local_sources(tmp_path):
    for i, ref in enumerate(IMAGENETTE):  # imagenette2-320/val style: WordNet-id folders
        save_png(coded(0, 0), tmp_path / "nette" / ref.wnid / f"{i}.png")
    nette = load_named_set("imagenette", source=str(tmp_path / "nette"))
    assert nette.class_names[:3] == ["tench", "English springer", "cassette player"]
    assert nette.labels == list(range(10))

    import datasets  # a 1000-class ImageNet-1k copy: matched by index, whatever the names say

    names = [f"class {i}, synonym" for i in range(1000)]
    labels = [ref.imagenet_index for ref in PAPER_IMAGENET]
    images = [{"bytes": encode_png(coded(0, 0)), "path": None}] * len(labels)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    datasets.Dataset.from_dict({"image": images, "label": labels}, features).save_to_disk(str(tmp_path / "in1k"))
    paper = load_named_set("imagenet-paper", source=str(tmp_path / "in1k"))
    assert paper.class_names == [ref.name for ref in PAPER_IMAGENET] and paper.labels == list(range(12))


def test_hub_without_network_says_what_to_pass_instead():
    start = time.perf_counter()
    with pytest.raises(ProbeError) as err:
        load_image_set("frgfm/imagenette", per_class=1)
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert "frgfm/imagenette" in message and "save_to_disk" in message and "\n" not in message
    with pytest.raises(ProbeError, match="gated.*HF_TOKEN"):
        load_named_set("imagenet-paper")
    with pytest.raises(ProbeError, match="no such file or folder"):
        load_image_set("./not/here")
    with pytest.raises(ProbeError, match="unknown image set"):
        load_named_set("cifar")


def test_at_model_input_takes_the_encoders_own_route(tiny_encoder):
    """Every image reaches model size through Encoder.to_model_input (one route, not a second resize)."""
    wide = torch.rand(3, 100, 300, generator=torch.Generator().manual_seed(0))
    image_set = ImageSet([wide, torch.rand(3, 224, 224)], [0, 1], ["a", "b"], ["w", "s"], "test")
    batch = image_set.at_model_input(tiny_encoder)
    assert batch.shape == (2, 3, 224, 224)
    torch.testing.assert_close(batch[0], tiny_encoder.to_model_input(wide[None])[0].clamp(0, 1))
    assert torch.equal(batch[1], image_set.images[1])


def test_pair_builders_give_exactly_the_described_pairs():
    assert list(many_to_one(3, target=5)) == [(0, 5), (1, 5), (2, 5)]
    assert list(many_to_one([4, 2], target=0)) == [(4, 0), (2, 0)]
    assert list(one_to_many(2, [0, 1, 3])) == [(2, 0), (2, 1), (2, 3)]
    assert list(all_pairs(3, exclude="self")) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    assert list(all_pairs([0, 0, 1])) == [(0, 2), (1, 2), (2, 0), (2, 1)]
    assert list(all_pairs([0, 0, 1], exclude="self")) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    pairs = all_pairs(4)
    batches = list(pairs.batches(5))
    assert [len(s) for s, _ in batches] == [5, 5, 2]
    assert [p for s, t in batches for p in zip(s, t)] == list(pairs)
    with pytest.raises(ProbeError, match="no pairs left"):
        all_pairs([1, 1])


def test_streaming_takes_a_seeded_first_n_per_class(tmp_path):
    # save_to_disk streamed (to_iterable_dataset): a parquet stream stopped early sleeps 5 s in `datasets`
    hf_dataset().save_to_disk(str(tmp_path / "disk"))
    streamed = load_image_set(tmp_path / "disk", streaming=True, per_class=2, seed=3)
    check(streamed, per_class=2)
    again = load_image_set(tmp_path / "disk", streaming=True, per_class=2, seed=3)
    assert [code_of(i) for i in streamed.images] == [code_of(i) for i in again.images]
    with pytest.raises(ProbeError, match="streaming needs per_class"):
        load_image_set(tmp_path / "disk", streaming=True)
    with pytest.raises(ProbeError, match="fewer than 4 images for cat \\(3\\)"):
        load_image_set(tmp_path / "disk", streaming=True, per_class=4)


def test_the_papers_imagenet_classes_are_streamed_not_prepared(monkeypatch):
    """ImageNet-1k from the Hub: `load_dataset` is asked for a stream (preparing would download every split,
    ~150 GB), and the stream is read only until each of the 12 classes has its image."""
    import datasets

    names = [f"class {i}, synonym" for i in range(1000)]
    wanted = [ref.imagenet_index for ref in PAPER_IMAGENET]
    labels = [i for k in range(40) for i in (k, *wanted[k % 12:k % 12 + 1])] + [999] * 6000
    images = [{"bytes": encode_png(coded(0, 0)), "path": None}] * len(labels)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    table = datasets.Dataset.from_dict({"image": images, "label": labels}, features)
    asked, read = [], []

    def counted(stream):
        for row in stream:
            read.append(row)
            yield row

    def load_dataset(path, **kwargs):
        asked.append((path, kwargs))
        stream = table.to_iterable_dataset()
        return datasets.IterableDataset.from_generator(counted, gen_kwargs={"stream": stream},
                                                       features=features) if kwargs.get("streaming") else table

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    paper = load_named_set("imagenet-paper", per_class=1)
    assert asked and asked[0][0] == "ILSVRC/imagenet-1k" and asked[0][1]["streaming"] is True
    assert paper.class_names == [ref.name for ref in PAPER_IMAGENET] and paper.labels == list(range(12))
    assert len(read) < 3000, "the stream should stop once every class has its image (after its shuffle buffer)"
