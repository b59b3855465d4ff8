"""The mini-CLIP: a small CLIP trained on procedural shapes, shipped with the package, and its image sets. A
`probe` plug-in (`probe.toy.plugin`): it registers the models `mini-clip` (the default offline model) and
`mini-clip-drawn` (the same architecture, average pooling, trained to read shapes drawn by anyone) and the image
sources `toy:...`; the core never names them.

``MINI_CLIP_NAME`` can be passed straight to ``open_clip.create_model_and_transforms`` and
``open_clip.get_tokenizer``; it needs no network access.
"""
from pathlib import Path

MINI_CLIP_DIR = Path(__file__).resolve().parent / "mini_clip"
MINI_CLIP_NAME = f"local-dir:{MINI_CLIP_DIR}"
MINI_CLIP_DRAWN_DIR = Path(__file__).resolve().parent / "mini_clip_drawn"
