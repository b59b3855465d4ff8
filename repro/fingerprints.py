"""sha256 fingerprints: of JSON-able records and of tensors (an encoder's weights: `Encoder.weights_sha256`)."""
from __future__ import annotations

import hashlib
import json

import torch

from probe.files import jsonable


def of(record) -> str:
    """sha256 of a JSON-able record, keys sorted (the same record always gives the same hash)."""
    return hashlib.sha256(json.dumps(jsonable(record), sort_keys=True).encode()).hexdigest()


def tensors(*items) -> str:
    """sha256 over tensors (shape, dtype and bytes), or lists of them, in order."""
    digest = hashlib.sha256()
    for item in items:
        for tensor in (item if isinstance(item, (list, tuple)) else [item]):
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{tuple(t.shape)} {t.dtype}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
