"""Procedural image-caption data for the mini-CLIP.

Every image shows one coloured shape; its class is "<colour> <shape>" (e.g.
"red circle"), so the plain class names double as zero-shot labels. Size,
position, rotation, fill texture, background and edge anti-aliasing vary, and
captions mention a random subset of them, which gives the text tower something
compositional to learn. Generation is a pure function of the seed.

Two recipes: "narrow" (the shipped model's: sizes near half the image, 3 x 3
anchor positions) and "wide" (experimental, for shapes drawn by anyone: any size
from 12% to 80% of the side, anywhere, filled or thick-outlined, plain light /
grey / dark, noisy and gradient backgrounds too, sometimes softened, with an
optional easy-to-hard curriculum ``reach``).

Seeds at or above ``EVAL_SEED`` are held out: training never uses them.
"""

from __future__ import annotations

import colorsys
import functools
import io
import math
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageChops, ImageColor, ImageDraw, ImageFilter

from probe.errors import ProbeError

COLOURS = ("red", "green", "blue", "yellow", "orange", "purple")
SHAPES = ("circle", "square", "triangle", "star", "cross")

# Colour name -> (hue range in degrees, saturation range, value range) in HSV.
COLOUR_HSV = {
    "red": ((-10, 10), (0.75, 1.0), (0.55, 1.0)),
    "orange": ((22, 40), (0.8, 1.0), (0.85, 1.0)),
    "yellow": ((50, 62), (0.75, 1.0), (0.85, 1.0)),
    "green": ((95, 145), (0.6, 1.0), (0.45, 0.95)),
    "blue": ((205, 245), (0.65, 1.0), (0.55, 1.0)),
    "purple": ((270, 305), (0.55, 1.0), (0.45, 0.9)),
}

# Size word -> range of the shape's circumradius as a fraction of the image side.
# Kept narrow on purpose: scale variance is what a small ViT finds hardest to learn.
SIZES = {"small": (0.22, 0.25), "medium": (0.26, 0.29), "large": (0.30, 0.33)}
BACKGROUNDS = ("plain", "gradient", "noisy", "striped", "checkered")
TEXTURES = ("solid", "striped", "spotted", "shaded")
MAX_ROTATION = 15  # degrees either way from upright
OPACITY = (0.3, 1.0)  # range of the shape's opacity over its background: faint shapes too
# Shape centres sit near one of 3 x 3 anchors (fractions of the side), named by position words.
POSITION_ANCHORS = {0.25: ("top", "left"), 0.5: ("", ""), 0.75: ("bottom", "right")}
POSITION_JITTER = 0.04

# The "wide" recipe: shapes of any size (bounding-box side as a fraction of the image side), anywhere, filled or
# thick-outlined, on plain light / grey / dark backgrounds as well as the patterned ones, sometimes softened.
RECIPES = ("narrow", "wide")
RECIPE = "narrow"
"""Which generator ``generate_samples`` uses by default: "narrow" (the sizes, 3 x 3 anchors and backgrounds above)
or "wide"."""
WIDE_SIZES = {"small": (0.12, 0.33), "medium": (0.33, 0.55), "large": (0.55, 0.80)}
WIDE_BACKGROUNDS = ("plain", "light", "grey", "dark", "gradient", "noisy", "striped", "checkered")
WIDE_MAX_ROTATION = 20
OUTLINE_SHARE = 0.4   # share of shapes drawn as a thick outline
OUTLINE_WIDTH = (0.07, 0.22)  # outline width as a fraction of the bounding-box side (at least 1.5 px)
BLUR_SHARE = 0.1      # share of images softened by a slight Gaussian blur
JPEG_SHARE = 0.0      # share of images re-encoded as JPEG (quality JPEG_QUALITY), as pictures on the web are
JPEG_QUALITY = (30, 95)
TRIANGLE_ASPECT = (0.75, 1.25)  # height / base of the (isosceles) triangles
STAR_INNER = (0.36, 0.52)       # inner / outer radius of the stars
SMALL_FAINT_EXTENT, SMALL_OPACITY = 0.3, 0.55  # shapes smaller than this are never fainter than that
EASY_EXTENT = (0.45, 0.65)  # size range at difficulty 0 (about the narrow recipe's)

EVAL_SEED = 10**9
"""First held-out seed: evaluation sets use seeds >= EVAL_SEED, training never does."""

_SUPERSAMPLE = 2  # shape masks are drawn this many times larger, then box-filtered
_MIN_CONTRAST = 90.0  # minimum RGB distance between the shape and background colours


class Sample(NamedTuple):
    image: Image.Image
    caption: str
    class_index: int
    details: dict | None = None  # wide recipe: how the sample was drawn (size, opacity, style, background ...)


def class_names() -> list[str]:
    """All class names, "<colour> <shape>", in class-index order."""
    return [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES]


def generate_samples(n: int, seed: int, *, image_size: int = 64, balanced: bool = False,
                     recipe: str | None = None, reach: float = 1.0) -> list[Sample]:
    """Return ``n`` (image, caption, class_index) samples, fully determined by ``seed`` (and the recipe).

    Classes are drawn uniformly at random, or cycle through all classes in order
    when ``balanced`` is true (handy for evaluation sets). ``recipe`` defaults to ``RECIPE``.
    ``reach`` < 1 (wide recipe only, a training curriculum): each sample's difficulty is drawn from [0, reach]
    instead of being the full range (1); difficulty 0 is a large, centred, upright, opaque, filled shape.
    """
    if not 0 <= reach <= 1:
        raise ProbeError(f"reach must be in [0, 1], got {reach}")
    recipe = recipe or RECIPE
    _check_choice("recipe", recipe, RECIPES)
    if n < 0:
        raise ProbeError(f"n must be >= 0, got {n}")
    if seed < 0:
        raise ProbeError(f"seed must be >= 0, got {seed}")
    if image_size < 16:
        raise ProbeError(f"image_size must be >= 16 pixels, got {image_size}")
    n_classes = len(COLOURS) * len(SHAPES)
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        class_index = i % n_classes if balanced else int(rng.integers(n_classes))
        if recipe == "narrow":
            samples.append(_random_sample(rng, class_index, image_size))
        else:
            samples.append(_wide_sample(rng, class_index, image_size, reach))
    return samples


def generate_batch(n: int, seed: int, recipe: str | None = None, reach: float = 1.0) -> tuple[np.ndarray, list[str]]:
    """``generate_samples(n, seed)`` as one uint8 (n, 64, 64, 3) array and the captions.

    Cheap to send between processes: training's data workers return this.
    """
    samples = generate_samples(n, seed, recipe=recipe, reach=reach)
    return np.stack([np.asarray(s.image) for s in samples]), [s.caption for s in samples]


def draw_plain_shape(colour: str, shape: str, size: str = "medium", image_size: int = 64) -> Image.Image:
    """Draw one upright, centred, filled shape in PIL's named ``colour`` on a plain light background.

    Deliberately independent of the generator (PIL's own colour names and
    drawing helpers, no anti-aliasing, texture or rotation), to check that a
    model generalises beyond the training renderer. ``size`` is a size word
    ("small", "medium", "large"): the middle of that word's training range.
    """
    _check_choice("colour", colour, COLOURS)
    _check_choice("shape", shape, SHAPES)
    _check_choice("size", size, tuple(SIZES))
    image = Image.new("RGB", (image_size, image_size), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    rgb = ImageColor.getrgb(colour)
    c, r = image_size / 2, sum(SIZES[size]) / 2 * image_size
    if shape == "circle":
        draw.ellipse((c - r, c - r, c + r, c + r), fill=rgb)
    elif shape == "square":
        draw.rectangle((c - 0.75 * r, c - 0.75 * r, c + 0.75 * r, c + 0.75 * r), fill=rgb)
    elif shape == "triangle":
        draw.regular_polygon((c, c + 0.15 * r, r), n_sides=3, fill=rgb)
    elif shape == "star":
        points = [(c + (r if k % 2 == 0 else 0.4 * r) * math.sin(k * math.pi / 5),
                   c - (r if k % 2 == 0 else 0.4 * r) * math.cos(k * math.pi / 5)) for k in range(10)]
        draw.polygon(points, fill=rgb)
    else:  # cross
        arm = 0.3 * r
        draw.rectangle((c - r, c - arm, c + r, c + arm), fill=rgb)
        draw.rectangle((c - arm, c - r, c + arm, c + r), fill=rgb)
    return image


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ProbeError(f"unknown {name} {value!r}; expected one of {', '.join(choices)}")


def _random_sample(rng: np.random.Generator, class_index: int, image_size: int) -> Sample:
    """Draw the attributes of one sample, render it and caption it."""
    colour = COLOURS[class_index // len(SHAPES)]
    shape = SHAPES[class_index % len(SHAPES)]
    size_word = rng.choice(list(SIZES))
    texture = rng.choice(TEXTURES)
    background = rng.choice(BACKGROUNDS)

    radius = rng.uniform(*SIZES[size_word]) * image_size
    x, y, position = _random_position(rng, radius / image_size)
    cx, cy = x * image_size, y * image_size
    angle = math.radians(rng.uniform(-MAX_ROTATION, MAX_ROTATION))

    rgb = _random_colour(rng, colour)
    image = _background(rng, background, image_size, rgb)
    mask = _shape_mask(shape, cx, cy, radius, angle, image_size, hard_edges=rng.random() < 0.25)
    opacity = rng.uniform(*OPACITY)
    if opacity < 1:
        mask = mask.point(lambda v: round(v * opacity))
    image.paste(_texture(rng, texture, rgb, image_size), (0, 0), mask)

    attributes = {
        "size": size_word,
        "texture": texture,
        "position": position,
        "background": background,
    }
    return Sample(image, _caption(rng, colour, shape, attributes), class_index)


def _random_position(rng: np.random.Generator, radius: float) -> tuple[float, float, str]:
    """Shape centre (x, y) in [0, 1]^2 near a random anchor, kept inside the image, and its name.

    Anchoring (rather than uniform positions) keeps translation variance small,
    which a small ViT otherwise needs many more samples to learn.
    """
    anchors = list(POSITION_ANCHORS)
    ax, ay = anchors[rng.integers(3)], anchors[rng.integers(3)]
    margin = radius + 0.02
    x, y = np.clip(np.array([ax, ay]) + rng.uniform(-POSITION_JITTER, POSITION_JITTER, 2), margin, 1 - margin)
    word = " ".join(w for w in (POSITION_ANCHORS[ay][0], POSITION_ANCHORS[ax][1]) if w) or "center"
    return float(x), float(y), word


def _random_colour(rng: np.random.Generator, colour: str) -> tuple[int, int, int]:
    (h0, h1), (s0, s1), (v0, v1) = COLOUR_HSV[colour]
    hue = (rng.uniform(h0, h1) % 360) / 360
    r, g, b = colorsys.hsv_to_rgb(hue, rng.uniform(s0, s1), rng.uniform(v0, v1))
    return round(r * 255), round(g * 255), round(b * 255)


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    """A low-saturation colour for backgrounds, so it never reads as a class colour."""
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, 0.25), rng.uniform(0.1, 1.0))
    return np.array(rgb) * 255


def _contrasting_muted_colour(rng: np.random.Generator, rgb: tuple[int, int, int]) -> np.ndarray:
    """A muted colour far enough from ``rgb`` that the shape stays visible."""
    while True:
        candidate = _muted_colour(rng)
        if _contrast(candidate, rgb):
            return candidate


def _contrast(a: np.ndarray, rgb: tuple[int, int, int]) -> bool:
    return bool(np.linalg.norm(a - np.array(rgb)) >= _MIN_CONTRAST)


def _background(rng: np.random.Generator, kind: str, side: int, rgb: tuple[int, int, int]) -> Image.Image:
    """Render a ``kind`` background of muted colours that contrast with ``rgb``.

    Patterns use two nearby tones so that their edges stay weaker than the shape's.
    """
    a = _contrasting_muted_colour(rng, rgb)
    b = np.clip(a + rng.choice([-1, 1]) * rng.uniform(25, 55), 0, 255)
    if not _contrast(b, rgb):
        b = np.clip(2 * a - b, 0, 255)
    if kind == "plain":
        return Image.new("RGB", (side, side), tuple(int(v) for v in a))
    if kind == "noisy":
        noise = np.clip(a + rng.normal(0, 15, (side, side, 3)), 0, 255).astype(np.uint8)
        return Image.fromarray(noise, "RGB")
    return _blend(a, b, _pattern(rng, kind, side))


def _blend(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> Image.Image:
    """Image mixing colours ``a`` and ``b`` (RGB in 0..255) by a (side, side) weight map."""
    pixels = a.astype(np.float32) + (b - a).astype(np.float32) * weight[..., None]
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


@functools.lru_cache(maxsize=4)
def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (y, x) scaled to [0, 1), cached because every sample needs them."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    return y, x


def _pattern(rng: np.random.Generator, kind: str, side: int) -> np.ndarray:
    """A (side, side) weight map in [0, 1]: a linear ramp, stripes or a checkerboard."""
    y, x = _grid(side)
    angle = rng.uniform(0, math.pi)
    u = x * math.cos(angle) + y * math.sin(angle)
    if kind == "gradient":
        return (u - u.min()) / (u.max() - u.min())
    period = rng.uniform(0.08, 0.2)
    if kind == "striped":
        return np.floor(u / period) % 2
    if kind == "checkered":
        return (np.floor(x / period) + np.floor(y / period)) % 2
    raise ProbeError(f"unknown pattern {kind!r}")


def _texture(rng: np.random.Generator, kind: str, rgb: tuple[int, int, int], side: int) -> Image.Image:
    """Fill image for the shape: its colour, optionally patterned with a darker shade of it."""
    if kind == "solid":
        return Image.new("RGB", (side, side), rgb)
    base = np.array(rgb, dtype=np.float32)
    shade = base * 0.65
    if kind == "striped":
        return _blend(base, shade, _pattern(rng, "striped", side))
    if kind == "shaded":
        return _blend(base, shade, _pattern(rng, "gradient", side))
    spots = Image.new("L", (side, side), 0)  # spotted
    draw = ImageDraw.Draw(spots)
    r = side * 0.03
    for x, y in rng.uniform(0, side, size=(30, 2)):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return _blend(base, shade, np.asarray(spots, dtype=np.float32) / 255)


def _shape_mask(shape: str, cx: float, cy: float, r: float, angle: float, side: int,
                hard_edges: bool = False) -> Image.Image:
    """An "L" mask of the shape with circumradius ``r`` centred at (cx, cy), rotated by ``angle``.

    Drawn at twice the size and box-filtered down for anti-aliased edges, or
    thresholded when ``hard_edges`` (like a renderer without anti-aliasing).
    """
    big = side * _SUPERSAMPLE
    cx, cy, r = cx * _SUPERSAMPLE, cy * _SUPERSAMPLE, r * _SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    else:
        points = [(cx + r * rho * math.cos(theta + angle), cy + r * rho * math.sin(theta + angle))
                  for rho, theta in _unit_polygon(shape)]
        draw.polygon(points, fill=255)
    mask = mask.resize((side, side), Image.Resampling.BOX)
    return mask.point(lambda v: 255 if v >= 128 else 0) if hard_edges else mask


def _unit_polygon(shape: str) -> list[tuple[float, float]]:
    """Polar vertices (radius, angle) of ``shape`` with circumradius 1."""
    if shape == "square":
        return [(1.0, math.pi / 4 + k * math.pi / 2) for k in range(4)]
    if shape == "triangle":
        return [(1.0, -math.pi / 2 + k * 2 * math.pi / 3) for k in range(3)]
    if shape == "star":
        return [(1.0 if k % 2 == 0 else 0.42, -math.pi / 2 + k * math.pi / 5) for k in range(10)]
    if shape == "cross":
        arm = 0.3  # half-width of each arm; each arm contributes two tip corners and one inner corner
        half = math.atan2(arm, 1.0)
        inner = math.hypot(arm, arm)
        points = []
        for k in range(4):
            base = k * math.pi / 2
            points += [(math.hypot(1.0, arm), base - half), (math.hypot(1.0, arm), base + half),
                       (inner, base + math.pi / 4)]
        return points
    raise ProbeError(f"no polygon for shape {shape!r}")


def _caption(rng: np.random.Generator, colour: str, shape: str, attributes: dict[str, str]) -> str:
    """Caption naming the class plus up to two randomly chosen attributes.

    A quarter of the captions are the bare class name, the zero-shot prompt.
    """
    if rng.random() < 0.25:
        return f"{colour} {shape}"
    chosen = set(rng.choice(list(attributes), size=int(rng.integers(0, 3)), replace=False))
    words = [attributes[k] for k in ("size", "texture") if k in chosen]
    if "texture" in chosen and attributes["texture"] == "solid" and rng.random() < 0.5:
        words.remove("solid")
    noun = " ".join(words + [colour, shape])
    prefix = str(rng.choice(["a", "a photo of a", "an image of a", "a picture of a"]))
    article = "an" if noun[0] in "aeiou" else "a"
    text = f"{prefix[:-1]}{article} {noun}"
    if "position" in chosen:
        text += f" {'at' if attributes['position'] in ('top', 'bottom') else 'in'} the {attributes['position']}"
    if "background" in chosen:
        text += f" on a {attributes['background']} background"
    return text


# ---- the "wide" recipe -------------------------------------------------------------------------------------------

def _wide_sample(rng: np.random.Generator, class_index: int, image_size: int, reach: float = 1.0) -> Sample:
    """One sample of the wide recipe: any size and position, filled or outlined, plain or patterned background.

    With ``reach`` < 1 the sample's difficulty d is drawn from [0, reach]: sizes, position, rotation, opacity,
    outlines and blur are pulled towards a large, centred, upright, opaque, filled shape as d goes to 0."""
    colour = COLOURS[class_index // len(SHAPES)]
    shape = SHAPES[class_index % len(SHAPES)]
    d = rng.uniform(0, reach) if reach < 1 else 1.0
    smallest = EASY_EXTENT[0] + (WIDE_SIZES["small"][0] - EASY_EXTENT[0]) * d  # the size range widens with d
    largest = EASY_EXTENT[1] + (WIDE_SIZES["large"][1] - EASY_EXTENT[1]) * d
    extent = smallest + rng.random() * (largest - smallest)
    size_word = next(word for word, (_, top) in WIDE_SIZES.items() if extent <= top)
    texture = str(rng.choice(TEXTURES))
    background = str(rng.choice(WIDE_BACKGROUNDS))
    outline = rng.random() < OUTLINE_SHARE * d

    angle = math.radians(rng.uniform(-WIDE_MAX_ROTATION, WIDE_MAX_ROTATION) * d)
    outline_points = _wide_outline(rng, shape, angle)  # unit-sized polygon (x, y) around (0, 0); None: circle
    if outline_points is None:
        low, high = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    else:
        low, high = outline_points.min(0), outline_points.max(0)
    scale = extent * image_size / float((high - low).max())  # pixels per unit
    span = (high - low) * scale
    corner = (0.5 + (rng.uniform(0, 1, 2) - 0.5) * d) * np.maximum(image_size - span, 0)  # bounding box's top-left
    origin = corner - low * scale  # where the unit polygon's (0, 0) lands
    centre = corner + span / 2
    position = _position_word(centre / image_size)

    rgb = _random_colour(rng, colour)
    image = _wide_background(rng, background, image_size, rgb)
    width = max(1.5, rng.uniform(*OUTLINE_WIDTH) * extent * image_size) if outline else None
    mask = _wide_mask(outline_points, origin, scale, image_size, width, hard_edges=rng.random() < 0.25)
    floor = OPACITY[0] if extent >= SMALL_FAINT_EXTENT else SMALL_OPACITY
    opacity = rng.uniform(1 - (1 - floor) * d, OPACITY[1])
    if opacity < 1:
        mask = mask.point(lambda v: round(v * opacity))
    image.paste(_texture(rng, texture, rgb, image_size), (0, 0), mask)
    if rng.random() < BLUR_SHARE * d:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8) * image_size / 64))
    if JPEG_SHARE and rng.random() < JPEG_SHARE * d:   # no draw at share 0: the recipes' streams stay as they were
        image = _jpeg(image, int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))

    attributes = {
        "size": size_word,
        "texture": "outlined" if outline else texture,
        "position": position,
        "background": background,
    }
    details = {"difficulty": d, "extent": float(extent), "opacity": float(opacity), "outline": bool(outline),
               "background": background, "texture": texture}
    return Sample(image, _caption(rng, colour, shape, attributes), class_index, details)


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    """``image`` after a round trip through Pillow's JPEG encoder at ``quality``."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _wide_outline(rng: np.random.Generator, shape: str, angle: float) -> np.ndarray | None:
    """Vertices (x, y) of ``shape`` (about unit size, around the origin) rotated by ``angle``; None for a circle.

    Triangles vary in height against base and stars in the depth of their points."""
    if shape == "circle":
        return None
    if shape == "triangle":
        aspect = rng.uniform(*TRIANGLE_ASPECT)  # height / base, base 2
        points = np.array([[0.0, -aspect * 2 / 3 * 2], [1.0, aspect * 2 / 3], [-1.0, aspect * 2 / 3]])
    elif shape == "star":
        inner = rng.uniform(*STAR_INNER)
        points = np.array([[(1.0 if k % 2 == 0 else inner) * math.cos(-math.pi / 2 + k * math.pi / 5),
                            (1.0 if k % 2 == 0 else inner) * math.sin(-math.pi / 2 + k * math.pi / 5)]
                           for k in range(10)])
    else:
        points = np.array([[r * math.cos(t), r * math.sin(t)] for r, t in _unit_polygon(shape)])
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _wide_mask(points: np.ndarray | None, origin: np.ndarray, scale: float, side: int, width: float | None,
               hard_edges: bool) -> Image.Image:
    """"L" mask of the shape (``points`` in units, placed at ``origin`` + ``scale`` x point; None: the unit circle),
    filled, or only a band ``width`` pixels wide inside its edge. Supersampled, then box-filtered."""
    k = _SUPERSAMPLE
    big = side * k
    fill = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(fill)
    ox, oy = origin * k
    r = scale * k
    if points is None:
        draw.ellipse((ox - r, oy - r, ox + r, oy + r), fill=255)
        if width is not None:
            w = width * k
            draw.ellipse((ox - r + w, oy - r + w, ox + r - w, oy + r - w), fill=0)
    else:
        xy = [(ox + r * x, oy + r * y) for x, y in points]
        draw.polygon(xy, fill=255)
        if width is not None:  # a stroke twice as wide along the edge, kept where it lies inside the shape
            stroke = Image.new("L", (big, big), 0)
            pen = ImageDraw.Draw(stroke)
            w = width * k
            pen.line(xy + xy[:1], fill=255, width=max(1, round(2 * w)), joint="curve")
            for x, y in xy:
                pen.ellipse((x - w, y - w, x + w, y + w), fill=255)
            fill = ImageChops.darker(fill, stroke)
    mask = fill.resize((side, side), Image.Resampling.BOX)
    return mask.point(lambda v: 255 if v >= 128 else 0) if hard_edges else mask


def _position_word(centre: np.ndarray) -> str:
    """"top left", "center", "bottom" ... from the shape's centre (x, y) in [0, 1]^2, by thirds."""
    x, y = centre
    vertical = "top" if y < 1 / 3 else "bottom" if y > 2 / 3 else ""
    horizontal = "left" if x < 1 / 3 else "right" if x > 2 / 3 else ""
    return " ".join(w for w in (vertical, horizontal) if w) or "center"


def _neutral(rng: np.random.Generator, value: tuple[float, float]) -> np.ndarray:
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, 0.08), rng.uniform(*value))
    return np.array(rgb) * 255


def _wide_background(rng: np.random.Generator, kind: str, side: int, rgb: tuple[int, int, int]) -> Image.Image:
    """The narrow recipe's backgrounds, plus near-neutral light, grey and dark ones, gradients that may span
    from dark to light, and grey or coloured noise of varying strength; all contrast with ``rgb``."""
    values = {"light": (0.82, 1.0), "grey": (0.38, 0.65), "dark": (0.0, 0.22)}
    if kind in values:
        for _ in range(100):
            a = _neutral(rng, values[kind])
            if _contrast(a, rgb):
                break
        else:
            a = _contrasting_muted_colour(rng, rgb)
        return Image.new("RGB", (side, side), tuple(int(v) for v in a))
    if kind == "noisy":
        a = _contrasting_muted_colour(rng, rgb)
        sigma = rng.uniform(6, 30)
        shape = (side, side, 1) if rng.random() < 0.5 else (side, side, 3)
        noise = np.clip(a + rng.normal(0, sigma, shape), 0, 255).astype(np.uint8)
        return Image.fromarray(noise, "RGB")
    if kind == "gradient" and rng.random() < 0.5:
        a, b = _contrasting_muted_colour(rng, rgb), _contrasting_muted_colour(rng, rgb)
        return _blend(a, b, _pattern(rng, "gradient", side))
    return _background(rng, kind, side, rgb)
