"""Any image file -> [0,1] RGB float tensor (3,H,W) and back to 8-bit PNG, with guards against bad files."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from probe.errors import ImageError
from probe.results import write_bytes

MAX_PIXELS = 100_000_000  # refuse decompression bombs well before they exhaust memory


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """A PIL image of any mode -> float32 HxWx3 in [0,1]. Alpha is composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img).astype(np.float32) / 65535.0
        return np.repeat(arr[..., None], 3, axis=2)
    if img.mode in ("I", "F"):
        arr = np.asarray(img).astype(np.float32)
        hi = 65535.0 if arr.max() > 255 else 255.0
        return np.repeat(np.clip(arr / hi, 0, 1)[..., None], 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB")).astype(np.float32) / 255.0


def decode_image(data: bytes, name: str = "image") -> torch.Tensor:
    """Encoded image bytes -> float tensor (3,H,W) in [0,1]."""
    if not data:
        raise ImageError(f"{name}: the file is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        old_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                arr = _to_rgb_array(img)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ImageError(f"{name}: refused, more than {MAX_PIXELS:,} pixels (decompression bomb?)") from err
        except UnidentifiedImageError as err:
            raise ImageError(f"{name}: not an image PIL can read (PNG, JPEG, WebP, BMP, TIFF, ...)") from err
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageError(f"{name}: damaged or truncated image ({err})") from err
        finally:
            Image.MAX_IMAGE_PIXELS = old_limit
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{name}: the image has no pixels")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def load_image(path: str | Path) -> torch.Tensor:
    """Read an image file (any common format and mode) as a float tensor (3,H,W) in [0,1]."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    return decode_image(path.read_bytes(), name=str(path))


def load_images(paths: list[str | Path], size: tuple[int, int] | None = None) -> torch.Tensor:
    """Several image files as one batch (N,3,H,W). Different sizes need `size` (bicubic resize)."""
    images = [load_image(p) for p in paths]
    if size is not None:
        images = [resize(img, size) for img in images]
    shapes = {tuple(img.shape) for img in images}
    if len(shapes) > 1:
        raise ImageError(f"images have different sizes {sorted(shapes)}; pass a common size")
    return torch.stack(images)


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic, antialiased resize of one (3,H,W) image, clamped to [0,1]."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    out = torch.nn.functional.interpolate(image[None], size=size, mode="bicubic", antialias=True,
                                          align_corners=False)[0]
    return out.clamp(0, 1)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3,H,W) in [0,1] -> HxWx3 uint8 (rounded, as an 8-bit PNG stores it)."""
    arr = image.detach().float().clamp(0, 1).mul(255).round().byte().cpu().numpy()
    return arr.transpose(1, 2, 0)


def quantize(images: torch.Tensor) -> torch.Tensor:
    """What an 8-bit PNG round trip does to [0,1] pixels."""
    return images.clamp(0, 1).mul(255).round().div(255)


def encode_png(image: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


def save_png(image: torch.Tensor, path: str | Path) -> Path:
    """Write one (3,H,W) [0,1] image as an 8-bit PNG, atomically."""
    return write_bytes(path, encode_png(image))


def embedding_of_png(encoder, path: str | Path) -> torch.Tensor:
    """The embedding of an image as re-read from disk (the paper evaluates saved PNGs)."""
    image = load_image(path).to(encoder.device)
    with torch.no_grad():
        return encoder(image[None])[0]
