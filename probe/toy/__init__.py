"""A small CLIP trained on procedural shapes, shipped with the package (its folder: ``MINI_CLIP_DIR``).

``MINI_CLIP_NAME`` can be passed straight to ``open_clip.create_model_and_transforms``
and ``open_clip.get_tokenizer``; it needs no network access.
"""

from probe.models import MINI_CLIP_DIR

MINI_CLIP_NAME = f"local-dir:{MINI_CLIP_DIR}"
