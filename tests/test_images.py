"""Image loading: every common format and mode to [0,1] RGB; clear refusals; PNG round trips."""
import numpy as np
import pytest
import torch
from PIL import Image

from probe import images
from probe.errors import ImageError

RGB = np.stack(list(np.meshgrid(np.arange(16) * 16, np.arange(12) * 20, indexing="xy")) + [np.full((12, 16), 77)],
               axis=2).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_lossless_formats_read_exactly(tmp_path, fmt):
    path = tmp_path / f"img.{fmt.lower()}"
    Image.fromarray(RGB).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    img = images.load_image(path)
    assert img.shape == (3, 12, 16) and img.dtype == torch.float32
    np.testing.assert_allclose(img.numpy().transpose(1, 2, 0), RGB / 255.0, atol=1e-6)


def test_jpeg_reads_close(tmp_path):
    path = tmp_path / "img.jpg"
    Image.fromarray(RGB).save(path, quality=95)
    img = images.load_image(path)
    assert np.abs(img.numpy().transpose(1, 2, 0) - RGB / 255.0).mean() < 0.03


def test_greyscale_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(RGB[..., 0]).save(path)
    img = images.load_image(path)
    assert img.shape == (3, 12, 16)
    assert torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])
    np.testing.assert_allclose(img[0].numpy(), RGB[..., 0] / 255.0, atol=1e-6)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half fully transparent
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    img = images.load_image(path)
    assert torch.allclose(img[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(img[:, 3, 0], torch.ones(3))


def test_palette_and_cmyk(tmp_path):
    pal = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(tmp_path / "pal.png")
    expected = np.asarray(pal.convert("RGB")) / 255.0
    np.testing.assert_allclose(images.load_image(tmp_path / "pal.png").numpy().transpose(1, 2, 0), expected,
                               atol=1e-6)
    Image.fromarray(RGB).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    cmyk = images.load_image(tmp_path / "cmyk.jpg")
    assert cmyk.shape == (3, 12, 16) and np.abs(cmyk.numpy().transpose(1, 2, 0) - RGB / 255.0).mean() < 0.05


def test_sixteen_bit_keeps_its_range(tmp_path):
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    img = images.load_image(path)
    np.testing.assert_allclose(img[0, 0].numpy(), [0.0, 32768 / 65535, 1.0], atol=1e-6)


def test_not_an_image_empty_truncated_and_missing(tmp_path):
    (tmp_path / "notes.png").write_text("hello, not pixels")
    with pytest.raises(ImageError, match="not an image"):
        images.load_image(tmp_path / "notes.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        images.load_image(tmp_path / "empty.png")
    Image.fromarray(RGB).save(tmp_path / "full.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:60])
    with pytest.raises(ImageError, match="damaged|truncated"):
        images.load_image(tmp_path / "cut.png")
    with pytest.raises(ImageError, match="no such file"):
        images.load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="folder"):
        images.load_image(tmp_path)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    Image.fromarray(RGB).save(tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 12 * 16 // 4)
    with pytest.raises(ImageError, match="decompression bomb"):
        images.load_image(tmp_path / "big.png")


def test_png_round_trip_equals_quantize(tmp_path):
    img = torch.rand(3, 9, 7, generator=torch.Generator().manual_seed(0))
    path = images.save_png(img, tmp_path / "out.png")
    back = images.load_image(path)
    torch.testing.assert_close(back, images.quantize(img), atol=1e-6, rtol=0)
    assert not list(tmp_path.glob("*.part"))  # the temporary file was moved into place


def test_quantize_saturates_like_a_png(tmp_path):
    """Pixels outside [0,1] saturate at 0 and 1, as in a saved PNG: quantize equals the PNG round trip of an image
    spanning [-0.5, 1.5], and the values by hand."""
    img = torch.linspace(-0.5, 1.5, 3 * 4 * 5).reshape(3, 4, 5)
    back = images.load_image(images.save_png(img, tmp_path / "out.png"))
    torch.testing.assert_close(images.quantize(img), back, atol=1e-6, rtol=0)
    values = images.quantize(torch.tensor([-0.5, -0.001, 0.2, 1.0, 1.001, 1.5, 3.0]))
    assert values.tolist() == pytest.approx([0.0, 0.0, 51 / 255, 1.0, 1.0, 1.0, 1.0], abs=1e-7)
