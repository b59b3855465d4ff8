"""The mini-CLIP as a plug-in (entry point `probe.plugins: toy`): the models `mini-clip` and `mini-clip-drawn`
with the defaults a visitor's match gets on them, and the image sources `toy:shapes[:a,b,...]` (held-out generated images, one per
class) and `toy:drawings[:a,b,...]` (plain drawings of its classes)."""
from __future__ import annotations


from probe.data import ImageSet, register_image_source
from probe.errors import ProbeError
from probe.images import from_pil
from probe.models import register_model
from probe.toy import MINI_CLIP_DIR, MINI_CLIP_DRAWN_DIR
from probe.toy.data import EVAL_SEED, class_names, draw_plain_shape, generate_samples

ABOUT = "the project's trained mini-CLIP (shapes and colours, 64 px): works offline"
ABOUT_DRAWN = ("the mini-CLIP trained on the wide generator (average pooling): reads shapes drawn by anyone, "
               "more robust to matching; works offline")
# What a visitor's match on a mini-CLIP gets, from the CLI (--model mini-clip) and the app alike.
VISITOR_DEFAULTS: dict = {"fast": {"steps": 300}}


def load_source(rest: str, seed: int) -> ImageSet:
    """`shapes[:a,b,...]` or `drawings[:a,b,...]` of the named mini-CLIP classes (default all 30)."""
    what, _, wanted = rest.partition(":")
    if what not in ("shapes", "drawings"):
        raise ProbeError(f"toy:{rest}: expected toy:shapes[:a,b,...] or toy:drawings[:a,b,...]")
    names = class_names()
    chosen = [w.strip() for w in wanted.split(",")] if wanted else names
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise ProbeError(f"toy:{rest}: unknown mini-CLIP classes {unknown} (classes look like 'red circle')")
    if what == "drawings":
        images = [from_pil(draw_plain_shape(*c.split())) for c in chosen]
        source = "plain drawings (probe.toy.data.draw_plain_shape)"
    else:
        samples = generate_samples(len(names), EVAL_SEED + seed, balanced=True)
        images = [from_pil(samples[names.index(c)].image) for c in chosen]
        source = f"generated held-out shapes (probe.toy.data.generate_samples, seed EVAL_SEED + {seed})"
    return ImageSet(images, list(range(len(chosen))), chosen, [f"{c} ({what[:-1]})" for c in chosen], source)


def register() -> None:
    register_model("mini-clip", f"openclip:local-dir:{MINI_CLIP_DIR}", ABOUT, VISITOR_DEFAULTS,
                   offline_default=(MINI_CLIP_DIR / "open_clip_config.json").is_file())
    register_model("mini-clip-drawn", f"openclip:local-dir:{MINI_CLIP_DRAWN_DIR}", ABOUT_DRAWN, VISITOR_DEFAULTS)
    register_image_source("toy", load_source, "the mini-CLIP's image sets (probe.toy)")
