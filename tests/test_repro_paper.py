"""The paper profile's recipes, offline: its models come from fake Hugging Face Hub caches holding tiny
OpenCLIP models (loaded through the real hf_hub_download), its named image sets (the paper's ImageNet classes,
Imagenette) from local folders laid out by WordNet id."""
import json

import numpy as np
import pytest
from PIL import Image

from hub_fixtures import FAKE_COMMIT, folder_files, put_in_hub_cache
from probe.data import NAMED_SETS
from repro import runner
from repro.context import Context
from repro.profiles import get, smoke
from repro.catalog import all_figures


def tiny_openclip_folder(folder, seed: int):
    """An OpenCLIP Hub-layout folder: the shipped tiny config at 64 px (so Jacobians stay small), seeded weights."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    from probe.models import CONFIG_DIR

    config = json.loads((CONFIG_DIR / "probe-tiny-vit.json").read_text())
    config["vision_cfg"] |= {"image_size": 64, "patch_size": 16}
    folder.mkdir(parents=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": {}}))
    torch.manual_seed(seed)
    model = open_clip.CLIP(**config)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors")


def wnid_folder(root, named: str):
    """One small picture per class of a named set, in class subfolders named by WordNet id."""
    rng = np.random.default_rng(len(named))
    for ref in NAMED_SETS[named].classes:
        (root / ref.wnid).mkdir(parents=True)
        pixels = (rng.random((3, 3, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).resize((80, 60), Image.BILINEAR).save(root / ref.wnid / "image.png")
    return root


@pytest.fixture(scope="module")
def paper_setup(tmp_path_factory, hf_cache):
    root = tmp_path_factory.mktemp("paper")
    specs = {}
    for seed, (role, repo) in enumerate([("main", "testorg/tiny-vit-h"), ("second", "testorg/tiny-vit-b"),
                                         ("third", "testorg/tiny-vit-l")]):
        tiny_openclip_folder(root / repo, seed)
        put_in_hub_cache(hf_cache, repo, folder_files(root / repo))
        specs[role] = f"openclip:hf-hub:{repo}"
    imagenet, imagenette = wnid_folder(root / "in1k", "imagenet-paper"), wnid_folder(root / "nette", "imagenette")
    profile = get("paper").with_models(**specs, control="openclip:probe-tiny-vit@random").with_images(
        photos=str(imagenet), targets=str(imagenet), classes=str(imagenet), sweep=str(imagenette))
    return smoke(profile), root


@pytest.mark.filterwarnings("ignore:sample.*met the stopping rule")   # random tiny models, the paper's thresholds
def test_paper_profile_recipes_run_on_fake_hub_models(paper_setup):
    profile, root = paper_setup
    assert profile.images["sweep"] == f"named:imagenette={root / 'nette'}"
    out = root / "out"
    figures = all_figures()
    statuses = runner.make_figures(Context(profile, out), list(figures.values()))
    assert set(statuses.values()) == {"done"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"]["main"]["weights"] == f"pretrained:testorg/tiny-vit-h@{FAKE_COMMIT}"
    assert manifest["images"]["sweep"]["classes"][0] == "tench"
    for fid, figure in figures.items():
        record = json.loads((out / f"fig{fid}.json").read_text())
        assert record["profile"] == "paper-smoke" and set(figure.metrics) <= set(record["metrics"])
    fig8 = json.loads((out / "fig8.json").read_text())
    assert fig8["data"]["vision_text_after"]["classes"][:2] == ["agama", "black widow"]
    assert json.loads((out / "fig13.json").read_text())["metrics"]["models"] == [
        f"openclip:hf-hub:testorg/tiny-vit-{size}" for size in "blh"]
    assert runner.make_figures(Context(profile, out), [figures[10]]) == {10: "skipped"}
