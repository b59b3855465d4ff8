"""Encoders: spec parsing, differentiable preprocessing, and offline loading through the real OpenCLIP,
transformers and timm Hub code paths (fake Hub caches and local folders built here)."""
import copy
import json
import shutil
import time
from pathlib import Path

import pytest
import torch
import torchvision.transforms.v2.functional as TF
import yaml
from safetensors.torch import save_file

from hub_fixtures import FAKE_COMMIT, folder_files, put_in_hub_cache, write_clip_tokenizer
from probe.errors import ModelError, ProbeError
from probe.models import PRESETS, load_encoder, parse_spec, resize_center_crop, weights_status

ROOT = Path(__file__).resolve().parents[1]
ALLOWLISTED = yaml.safe_load((ROOT / "space_config.yml").read_text())["models"].values()


@pytest.mark.parametrize("spec,backend,name,weights", [
    ("openclip:ViT-B-32@laion2b_s34b_b79k", "openclip", "ViT-B-32", "laion2b_s34b_b79k"),
    ("openclip:hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "openclip",
     "hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K", None),
    ("openclip:local-dir:/a/b@c", "openclip", "local-dir:/a/b@c", None),
    ("hf:facebook/dinov2-small", "hf", "facebook/dinov2-small", None),
    ("timm:vit_small_patch16_224.augreg_in21k@random:3", "timm", "vit_small_patch16_224.augreg_in21k", "random:3"),
    ("vit-h-14", "openclip", "ViT-H-14", "laion2b_s32b_b79k"),
])
def test_parse_spec(spec, backend, name, weights):
    parsed = parse_spec(spec)
    assert (parsed.backend, parsed.name, parsed.weights) == (backend, name, weights)


@pytest.mark.parametrize("spec,fragment", [
    ("resnet50", "BACKEND:NAME"),
    ("tf:foo", "BACKEND:NAME"),
    ("openclip:NoSuchNet@random", "unknown OpenCLIP architecture 'NoSuchNet'"),
    ("openclip:ViT-B-32", "say which weights"),
    ("openclip:ViT-B-32@no_such_tag", "unknown pretrained tag 'no_such_tag'"),
    ("openclip:local-dir:/nonexistent", "not a folder in OpenCLIP's Hub layout"),
    ("timm:no_such_vit@random", "no_such_vit"),
])
def test_bad_specs_name_the_problem(spec, fragment):
    with pytest.raises(ModelError, match=fragment):
        load_encoder(spec)


def test_unreachable_weights_give_one_clear_message():
    with pytest.raises(ModelError, match="could not load openclip:ViT-B-32@openai.*Hub is unreachable"):
        load_encoder("openclip:ViT-B-32@openai")


def test_bad_device_and_dtype():
    with pytest.raises(ProbeError, match="device 'gpu0'"):
        load_encoder("tiny", device="gpu0")
    with pytest.raises(ProbeError, match="dtype"):
        load_encoder("tiny", dtype="int8")
    if not torch.cuda.is_available():
        with pytest.raises(ProbeError, match="no CUDA device"):
            load_encoder("tiny", device="cuda:1")


def test_resize_center_crop_matches_torchvision_tensor_resize():
    """The differentiable path (fast mode) is torchvision's tensor resize; the PIL path is tested below."""
    enc_pre = load_encoder("tiny").pre
    pixels = torch.rand(1, 3, 300, 451, generator=torch.Generator().manual_seed(0))
    expected = TF.center_crop(TF.resize(pixels, 224, interpolation=TF.InterpolationMode.BICUBIC, antialias=True),
                              [224, 224])
    torch.testing.assert_close(resize_center_crop(pixels, enc_pre), expected, atol=1e-5, rtol=0)


def test_gradient_reaches_pixels_of_any_size(tiny_encoder):
    pixels = torch.rand(2, 3, 180, 260, requires_grad=True)
    tiny_encoder(pixels).pow(2).sum().backward()
    assert pixels.grad is not None and torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0


def test_random_weights_are_seeded_and_labelled():
    a, b, c = load_encoder("tiny"), load_encoder("openclip:probe-tiny-vit@random:0"), load_encoder(
        "openclip:probe-tiny-vit@random:1")
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(a(x), b(x)) and not torch.allclose(a(x), c(x))
    assert a.weights == "random:0" and c.weights == "random:1"


def test_bfloat16_forward_keeps_float32_gradients():
    """On the trained mini-CLIP, whose embeddings are spread (unrelated images differ by ~50% in norm), bf16
    stays within 2% of float32."""
    from probe.images import load_image

    enc, reference = load_encoder("mini-clip", dtype="bfloat16"), load_encoder("mini-clip")
    pixels = torch.stack([load_image(ROOT / "examples" / name)[:, :200, :200] for name in ("cat.png", "rocket.png")])
    pixels.requires_grad_(True)
    emb = enc(pixels)
    emb.sum().backward()
    assert emb.dtype == torch.float32 and pixels.grad.dtype == torch.float32
    with torch.no_grad():
        exact = reference(pixels)
    relative = ((emb.detach() - exact).norm(dim=1) / exact.norm(dim=1))
    unrelated = float((exact[0] - exact[1]).norm() / exact[0].norm())
    assert (relative < 0.02).all() and unrelated > 0.3, (relative, unrelated)


# --- OpenCLIP ------------------------------------------------------------------------------------

def _save_openclip_folder(folder, arch: str, seed: int, half: bool = False):
    """An OpenCLIP Hub-layout folder (config + safetensors) holding a seeded random model."""
    import open_clip

    from probe.models import CONFIG_DIR, _register_shipped_configs

    _register_shipped_configs()
    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None)
    folder.mkdir(parents=True, exist_ok=True)
    cfg_path = CONFIG_DIR / f"{arch}.json"
    model_cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else open_clip.get_model_config(arch)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}))
    state = {k: (v.half() if half else v).contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "open_clip_model.safetensors")
    return model.eval()


@pytest.fixture(scope="module")
def openclip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("openclip") / "tiny-clip"
    return folder, _save_openclip_folder(folder, "probe-tiny-vit", seed=5)


def _same_embeddings(encoder, reference, size=224):
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), reference(encoder.normalize(x)), atol=1e-4, rtol=1e-4)


def test_openclip_local_dir(openclip_folder):
    folder, model = openclip_folder
    enc = load_encoder(f"openclip:local-dir:{folder}")
    assert enc.weights == f"local:{folder}" and enc.has_text   # as given: no machine path is added
    _same_embeddings(enc, model.encode_image)
    assert "present" in weights_status(f"openclip:local-dir:{folder}")


def test_openclip_hf_hub_through_real_download_code(openclip_folder, hf_cache):
    import open_clip

    folder, model = openclip_folder
    put_in_hub_cache(hf_cache, "testorg/tiny-clip", folder_files(folder))
    enc = load_encoder("openclip:hf-hub:testorg/tiny-clip")
    assert enc.weights == f"pretrained:testorg/tiny-clip@{FAKE_COMMIT}"
    _same_embeddings(enc, model.encode_image)
    tokens = open_clip.get_tokenizer("probe-tiny-vit")(["a cat"])
    with torch.no_grad():
        torch.testing.assert_close(enc.encode_text(["a cat"]), model.encode_text(tokens))


@pytest.fixture(scope="module")
def b32_weights(tmp_path_factory):
    """A seeded random ViT-B-32 saved as float16 safetensors (the model, and the file)."""
    folder = tmp_path_factory.mktemp("b32")
    model = _save_openclip_folder(folder, "ViT-B-32", seed=2, half=True)
    return model.half().float(), folder / "open_clip_model.safetensors"


def test_openclip_builtin_tag_from_cache_real_architecture(b32_weights, hf_cache):
    """Smoke test on a real architecture: ViT-B-32 with a pretrained tag resolves through the cache, and the
    weights' fingerprint is the sha256 of the file it read."""
    import hashlib

    import open_clip

    model, weights = b32_weights
    repo = open_clip.get_pretrained_cfg("ViT-B-32", "laion2b_s34b_b79k")["hf_hub"].strip("/")
    assert "not downloaded" in weights_status("openclip:ViT-B-32@laion2b_s34b_b79k")
    snapshot = put_in_hub_cache(hf_cache, repo, {"open_clip_model.safetensors": weights})
    try:
        assert "local Hugging Face cache" in weights_status("openclip:ViT-B-32@laion2b_s34b_b79k")
        enc = load_encoder("openclip:ViT-B-32@laion2b_s34b_b79k")
        assert enc.weights == f"pretrained:laion2b_s34b_b79k ({repo}@{FAKE_COMMIT})"
        assert enc.weights_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
        assert enc.input_size == (224, 224)
        x = torch.rand(1, 3, 224, 224)
        with torch.no_grad():
            torch.testing.assert_close(enc(x), model.encode_image(enc.normalize(x)), atol=1e-3, rtol=1e-3)
    finally:   # the app's tests need the default model's weights missing from this session's cache
        shutil.rmtree(snapshot.parents[1])


@pytest.mark.slow
def test_openai_weights_run_with_the_quickgelu_they_were_trained_with(b32_weights, hf_cache):
    """OpenAI's CLIP weights were trained with QuickGELU: the preset and the plain architecture name both run
    them with it (open_clip alone would warn and use GELU), through the real loading code and a fake Hub cache."""
    import open_clip

    model, weights = b32_weights
    repo = open_clip.get_pretrained_cfg("ViT-B-32", "openai")["hf_hub"].strip("/")
    snapshot = put_in_hub_cache(hf_cache, repo, {"open_clip_model.safetensors": weights})
    try:
        _check_quickgelu(open_clip, model)
    finally:   # other tests need the OpenAI weights missing from this session's cache
        shutil.rmtree(snapshot.parents[1])


def _check_quickgelu(open_clip, model):
    quick = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None)
    quick.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    for spec in ("clip-b32", "openclip:ViT-B-32@openai"):
        enc = load_encoder(spec)
        assert any(isinstance(m, open_clip.transformer.QuickGELU) for m in enc.model.modules()), spec
        with torch.no_grad():
            got, with_quick = enc(x), quick.eval().encode_image(enc.normalize(x))
            with_gelu = model.encode_image(enc.normalize(x))
        torch.testing.assert_close(got, with_quick, atol=1e-3, rtol=1e-3)
        assert (got - with_gelu).norm() > 5 * (got - with_quick).norm(), "GELU would give these numbers too"
    assert "QuickGELU forced" in load_encoder("openclip:ViT-B-32@openai").weights


@pytest.mark.parametrize("spec", sorted(set(PRESETS) | set(ALLOWLISTED)))
def test_presets_and_allowlisted_models_match_open_clips_pretrained_configs(spec):
    """Read offline from open_clip's own tables: every preset and allowlisted OpenCLIP model with a pretrained
    tag names an architecture whose activation is the one its weights were trained with."""
    import open_clip

    parsed = parse_spec(spec)
    if parsed.backend != "openclip" or parsed.name.startswith(("local-dir:", "hf-hub:")) or \
            parsed.weights in (None, "random") or parsed.weights.startswith("random:"):
        return
    pretrained = open_clip.get_pretrained_cfg(parsed.name, parsed.weights)
    assert pretrained, f"{spec}: open_clip has no tag {parsed.weights} for {parsed.name}"
    architecture = open_clip.get_model_config(parsed.name)
    assert bool(pretrained.get("quick_gelu")) == bool(architecture.get("quick_gelu")), spec


# --- transformers --------------------------------------------------------------------------------

def _tiny_hf_clip(folder):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=520, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=32, bos_token_id=512, eos_token_id=513,
                         pad_token_id=513),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    model = CLIPModel(cfg).eval()
    model.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    write_clip_tokenizer(folder)
    return model


def test_hf_clip_from_hub_cache_matches_its_own_processor(tmp_path, hf_cache):
    from PIL import Image
    from transformers import AutoTokenizer, CLIPImageProcessor

    model = _tiny_hf_clip(tmp_path / "clip")
    put_in_hub_cache(hf_cache, "testorg/tiny-hf-clip", folder_files(tmp_path / "clip"))
    enc = load_encoder("hf:testorg/tiny-hf-clip")
    assert enc.weights == f"pretrained:testorg/tiny-hf-clip@{FAKE_COMMIT}"
    assert enc.input_size == (32, 32) and enc.has_text

    photo = torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(0))
    pil = Image.fromarray((photo.permute(1, 2, 0) * 255).round().byte().numpy())
    processed = CLIPImageProcessor.from_pretrained(tmp_path / "clip")(pil, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        reference = model.get_image_features(pixel_values=processed).pooler_output
        ours = enc.embed_normalized(enc.reference_input([pil]))         # the paper's route: its own processor
        from_tensor = enc.embed_normalized(enc.reference_input(photo[None]))  # a tensor goes through 8 bits first
        text = enc.encode_text(["a cat"])
        tokens = AutoTokenizer.from_pretrained(tmp_path / "clip")(["a cat"], return_tensors="pt")
        text_ref = model.get_text_features(**tokens).pooler_output
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(from_tensor, reference)
    assert "image processor" in enc.reference_name
    torch.testing.assert_close(text, text_ref)


def test_hf_dinov2_local_folder_uses_cls_token(tmp_path):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    model = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, image_size=32, patch_size=8)).eval()
    model.save_pretrained(tmp_path / "dino")
    BitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}, do_center_crop=True,
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(
        tmp_path / "dino")
    enc = load_encoder(f"hf:{tmp_path / 'dino'}")
    assert enc.input_size == (32, 32) and enc.pre.resize_shorter == 40 and not enc.has_text
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), model(pixel_values=enc.normalize(x)).last_hidden_state[:, 0])
    with pytest.raises(ModelError, match="no text tower"):
        enc.encode_text(["a cat"])


# --- timm ----------------------------------------------------------------------------------------

def test_timm_from_hub_cache_and_local_file(tmp_path, hf_cache):
    import timm

    torch.manual_seed(4)
    model = timm.create_model("test_vit.r160_in1k", pretrained=False).eval()
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    put_in_hub_cache(hf_cache, "timm/test_vit.r160_in1k", {"model.safetensors": tmp_path / "model.safetensors"})
    from_hub = load_encoder("timm:test_vit.r160_in1k")
    from_file = load_encoder(f"timm:test_vit.r160_in1k@local:{tmp_path / 'model.safetensors'}")
    assert from_hub.weights == "pretrained:timm/test_vit.r160_in1k"
    assert from_file.weights == f"local:{tmp_path / 'model.safetensors'}"
    assert from_hub.input_size == (160, 160) and from_hub.pre.resize_shorter == 168  # 160 / crop_pct 0.95
    x = torch.rand(1, 3, 160, 160)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(from_hub.normalize(x)), pre_logits=True)
        torch.testing.assert_close(from_hub(x), expected)
        torch.testing.assert_close(from_file(x), expected)


def test_presets_resolve_to_the_documented_models():
    expected = {"vit-h-14": ("openclip", "ViT-H-14", "laion2b_s32b_b79k"),
                "clip-b32": ("openclip", "ViT-B-32-quickgelu", "openai"),
                "clip-l14": ("openclip", "ViT-L-14-quickgelu", "openai"),
                "mini-clip": ("openclip", f"local-dir:{ROOT / 'probe' / 'toy' / 'mini_clip'}", None),
                "mini-clip-drawn": ("openclip", f"local-dir:{ROOT / 'probe' / 'toy' / 'mini_clip_drawn'}", None),
                "tiny": ("openclip", "probe-tiny-vit", "random")}
    assert set(PRESETS) == set(expected)
    for name, fields in expected.items():
        parsed = parse_spec(name)
        assert (parsed.backend, parsed.name, parsed.weights) == fields
    assert str(parse_spec("clip-b32@random:3")) == "openclip:ViT-B-32-quickgelu@random:3"
    assert parse_spec("mini-clip@random").weights == "random"


def test_encoder_on_device_gives_the_cpu_numbers(device):
    """The encoder's embeddings on each device equal an independent float64 computation on the CPU: torchvision's
    resize and centre crop, the mean and std read from the model's own config file, and a float64 copy of the
    OpenCLIP model called directly. Random-pixel embeddings move by ~50% for a one-pixel crop shift; the float32
    encoder agrees to ~4e-7 relative on the CPU, and CUDA's TF32 convolutions stay well inside 1e-3."""
    enc = load_encoder("mini-clip", device=device)
    x = torch.rand(2, 3, 100, 120, generator=torch.Generator().manual_seed(0))
    preprocess = json.loads((ROOT / "probe" / "toy" / "mini_clip" / "open_clip_config.json").read_text())[
        "preprocess_cfg"]
    mean, std = (torch.tensor(preprocess[key], dtype=torch.float64).view(1, 3, 1, 1) for key in ("mean", "std"))
    side = preprocess["size"]
    pixels = TF.center_crop(TF.resize(x, side, interpolation=TF.InterpolationMode.BICUBIC, antialias=True),
                            [side, side]).double()
    with torch.no_grad():
        expected = copy.deepcopy(enc.model).cpu().double().encode_image((pixels - mean) / std)
        out = enc(x.to(device))
    relative = (out.cpu().double() - expected).norm(dim=1) / expected.norm(dim=1)
    assert (relative < (1e-5 if device == "cpu" else 1e-3)).all(), relative
    assert out.device.type == device and enc.device == torch.device(device if device == "cpu" else "cuda", 0
                                                                     if device != "cpu" else None)


@pytest.mark.parametrize("spec,name", [("mini-clip", None), ("openclip:ViT-B-32@random", "ViT-B-32")])
def test_reference_input_is_open_clips_own_preprocess(spec, name):
    """The paper's start: the PIL image through open_clip's own transform (PIL bicubic resize, centre crop,
    to tensor, normalise), on a non-square photo larger than the model input; not probe's tensor resize."""
    import open_clip
    from PIL import Image

    from probe.images import load_image

    import skimage

    photo = Path(skimage.__file__).parent / "data" / "chelsea.png"   # 451 x 300, a real photo
    enc = load_encoder(spec)
    _, _, preprocess = open_clip.create_model_and_transforms(name or f"local-dir:{ROOT / 'probe/toy/mini_clip'}",
                                                             pretrained=None, load_weights=False)
    with Image.open(photo) as image:
        assert image.size[0] != image.size[1] and min(image.size) > enc.input_size[0]
        expected = preprocess(image)[None]
        ours = enc.reference_input([image])
    assert torch.equal(ours, expected)
    differentiable = enc.preprocess(load_image(photo)[None])
    gap = float((enc.denormalize(differentiable) - enc.denormalize(ours)).abs().max() * 255)
    assert gap > 0.75, gap   # the routes differ by more than rounding (PIL's kernel): paper mode uses this one
    assert enc.reference_name.startswith("open_clip's preprocess (PIL): Resize")


@pytest.mark.slow
def test_unreachable_hub_fails_within_seconds_without_offline_flag(tmp_path):
    """HF_HUB_OFFLINE unset and the Hub endpoint unreachable: one clear line within seconds, no retries."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"   # nothing listens there
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "probe", "match", "--model", "clip-b32", "--source",
                             str(ROOT / "examples" / "cat.png"), "--target", str(ROOT / "examples" / "rocket.png"),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=120)
    seconds = time.perf_counter() - start
    assert result.returncode == 2 and seconds < 20, (seconds, result.stderr[-500:])
    assert "Retrying" not in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: could not load openclip:ViT-B-32-quickgelu@openai")
    assert "did not answer" in result.stderr and not (tmp_path / "out").exists()
