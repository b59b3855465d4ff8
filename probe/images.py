"""Any image file -> [0,1] RGB float tensor (3,H,W) and back to 8-bit PNG, with guards against bad files."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from probe.errors import ImageError
from probe.files import write_bytes

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


def _open(data: bytes, name: str) -> Image.Image:
    """Encoded bytes -> a decoded PIL image (mode and orientation as stored), or a clear ImageError."""
    if not data:
        raise ImageError(f"{name}: the file is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        old_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:
            img = Image.open(io.BytesIO(data))
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ImageError(f"{name}: refused, more than {MAX_PIXELS:,} pixels (decompression bomb?)") from err
        except UnidentifiedImageError as err:
            raise ImageError(f"{name}: not an image PIL can read (PNG, JPEG, WebP, BMP, TIFF, ...)") from err
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageError(f"{name}: damaged or truncated image ({err})") from err
        finally:
            Image.MAX_IMAGE_PIXELS = old_limit
    if img.width == 0 or img.height == 0:
        raise ImageError(f"{name}: the image has no pixels")
    return img


def decode_image(data: bytes, name: str = "image") -> torch.Tensor:
    """Encoded image bytes -> float tensor (3,H,W) in [0,1] (EXIF orientation applied)."""
    return from_pil(ImageOps.exif_transpose(_open(data, name)))


def from_pil(img: Image.Image) -> torch.Tensor:
    """A PIL image of any mode -> float tensor (3,H,W) in [0,1]; alpha is composited on white."""
    return torch.from_numpy(np.ascontiguousarray(_to_rgb_array(img).transpose(2, 0, 1)))


def as_pixels(item, what: str = "image") -> torch.Tensor:
    """A file path, PIL image or [0,1] tensor (3,H,W) -> [0,1] float tensor (3,H,W) on the CPU."""
    if isinstance(item, (str, Path)):
        return load_image(item)
    if isinstance(item, Image.Image):
        return from_pil(item)
    if torch.is_tensor(item):
        image = item[0] if item.dim() == 4 and item.shape[0] == 1 else item
        if image.dim() != 3 or image.shape[0] != 3 or not image.is_floating_point():
            raise ImageError(f"{what}: expected a [0,1] float image (3,H,W), got {tuple(item.shape)}")
        if float(image.min()) < -1e-3 or float(image.max()) > 1 + 1e-3:
            raise ImageError(f"{what}: pixels must be in [0,1] (normalised or 0-255 input?)")
        return image.detach().float().cpu()
    raise ImageError(f"{what}: expected a file path, PIL image or [0,1] tensor, got {type(item).__name__}")


def to_pil(image: torch.Tensor) -> Image.Image:
    """(3,H,W) in [0,1] -> an 8-bit RGB PIL image (what a saved PNG of it holds)."""
    return Image.fromarray(to_uint8(image))


def open_pil(path: str | Path) -> Image.Image:
    """An image file as PIL opened it, unconverted: what the authors' code handed to the model's transform."""
    return _open(_read(path), str(path))


def _read(path: str | Path) -> bytes:
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    return path.read_bytes()


def load_image(path: str | Path) -> torch.Tensor:
    """Read an image file (any common format and mode) as a float tensor (3,H,W) in [0,1]."""
    return decode_image(_read(path), name=str(path))


def fit_pixel_count(image: torch.Tensor, max_pixels: int) -> torch.Tensor:
    """Images (...,3,H,W) with more than `max_pixels` pixels, scaled down (aspect kept, bicubic, antialiased)
    to fit; smaller ones unchanged."""
    h, w = image.shape[-2:]
    if h * w <= max_pixels:
        return image
    scale = (max_pixels / (h * w)) ** 0.5
    size = (max(1, int(h * scale)), max(1, int(w * scale)))
    batch = image if image.dim() == 4 else image[None]
    out = torch.nn.functional.interpolate(batch, size=size, mode="bicubic", antialias=True, align_corners=False)
    return (out if image.dim() == 4 else out[0]).clamp(0, 1)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3,H,W) in [0,1] -> HxWx3 uint8 (rounded, as an 8-bit PNG stores it)."""
    arr = image.detach().float().clamp(0, 1).mul(255).round().byte().cpu().numpy()
    return arr.transpose(1, 2, 0)


def quantize(images: torch.Tensor) -> torch.Tensor:
    """What an 8-bit PNG round trip does to [0,1] pixels."""
    return images.clamp(0, 1).mul(255).round().div(255)


def encode_png(image: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG")
    return buf.getvalue()


def save_png(image: torch.Tensor, path: str | Path) -> Path:
    """Write one (3,H,W) [0,1] image as an 8-bit PNG, atomically."""
    return write_bytes(path, encode_png(image))
