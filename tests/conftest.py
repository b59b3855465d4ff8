"""Offline, isolated test environment: no Hub calls, a private Hugging Face cache per session."""
import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="probe-test-hf-")
os.environ.pop("HF_HUB_CACHE", None)
if os.environ.get("PYTEST_XDIST_WORKER"):   # `-n 2` on 2 cores: one torch thread each (read at import)
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="session")
def hf_cache() -> str:
    """The session's private Hugging Face hub cache folder (what hf_hub_download reads offline)."""
    from huggingface_hub import constants

    os.makedirs(constants.HF_HUB_CACHE, exist_ok=True)
    return constants.HF_HUB_CACHE


@pytest.fixture(scope="session")
def tiny_encoder():
    from probe.models import load_encoder

    return load_encoder("tiny")


@pytest.fixture(scope="session")
def mini_clip():
    """The shipped mini-CLIP, loaded once per session (tests must not change it)."""
    from probe.models import load_encoder

    return load_encoder("mini-clip")


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param
