"""Finding image files and reading them into RGB / greyscale PIL images, whatever their mode."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from util.errors import UserError

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def is_image_file(path: str | Path) -> bool:
    return str(path).lower().endswith(IMG_EXTENSIONS)


def make_dataset(directory: str | Path, max_dataset_size: float = float("inf")) -> list[Path]:
    """Image files under ``directory`` (recursively, hidden entries skipped), sorted, at most
    ``max_dataset_size`` of them."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory} is not a directory")
    paths = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        paths += [Path(root) / f for f in files if is_image_file(f) and not f.startswith(".")]
    paths.sort()
    if max_dataset_size != float("inf"):
        paths = paths[: int(max_dataset_size)]
    return paths


def _composite_on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _high_bit_depth_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit / 32-bit integer and float greyscale -> 8-bit RGB, keeping the full range.

    PIL's own ``convert`` clips 16-bit values at 255, which turns most images white.
    """
    array = np.asarray(img).astype(np.float64)
    if img.mode == "F":
        scale = 1.0 if array.max(initial=0.0) <= 1.0 else 255.0
    elif img.mode.startswith("I;16") or array.max(initial=0) > 255:
        scale = 65535.0
    else:  # mode "I" holding 8-bit values
        scale = 255.0
    array = np.clip(array / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(array, mode="L").convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL image -> 8-bit RGB: alpha composited on white, palettes expanded (with their
    transparency), 16-bit scaled, CMYK converted, EXIF orientation applied."""
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("RGBA", "LA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        return _composite_on_white(img)
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _high_bit_depth_to_rgb(img)
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def load_image(path: str | Path, channels: int = 3) -> Image.Image:
    """Read an image file as RGB (``channels`` 3) or greyscale (``channels`` 1).

    Raises ``UserError`` naming the file when it cannot be decoded.
    """
    try:
        with Image.open(path) as img:
            img.load()
            rgb = to_rgb(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise UserError(f"cannot read image {path}: {e}") from None
    if channels == 1:
        return rgb.convert("L")
    if channels != 3:
        raise UserError(f"images can be loaded with 1 or 3 channels, not {channels}")
    return rgb
