"""Image files for the whole project: which files are images, decoding any of them to RGB or
greyscale (EXIF orientation applied, transparency composited on white, palettes, 16-bit and CMYK
converted), and conversions between network tensors ([-1, 1], NCHW) and PNG files.

Training, testing and the metrics all list and decode images here, so they agree on which files
count and on their pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from util.errors import UnreadableImage, UserError
from util.fileio import atomic_write

# Every format PIL decodes that datasets ship, for training, testing and metrics alike.
IMG_EXTENSIONS = frozenset({".bmp", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"})


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMG_EXTENSIONS


def list_images(
    folder: str | Path, *, recursive: bool = True, stem_suffix: str = "", max_count: float = float("inf")
) -> list[Path]:
    """Image files in ``folder`` (with ``recursive``, in its sub-folders too; hidden entries
    skipped), sorted, at most ``max_count``; with ``stem_suffix`` only those whose stem ends with
    it (``"_fake_B"`` keeps ``x_fake_B.png``). Extensions match in any case. A missing folder is
    a ``UserError``; an empty one gives an empty list (the caller says what it expected)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a directory")
    paths = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        paths += [
            Path(root) / f
            for f in files
            if is_image_file(f) and not f.startswith(".") and Path(f).stem.endswith(stem_suffix)
        ]
    paths.sort()
    if max_count != float("inf"):
        paths = paths[: int(max_count)]
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

    Raises ``UnreadableImage`` (a ``UserError``) naming the file when it cannot be decoded.
    """
    try:
        with Image.open(path) as img:
            img.load()
            rgb = to_rgb(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        reason = str(e) or type(e).__name__
        if "cannot identify image file" in reason:  # PIL's words repeat the path and do not say why
            empty = os.path.isfile(path) and os.path.getsize(path) == 0
            reason = "the file is empty (0 bytes)" if empty else "not an image file (no image format recognised)"
        raise UnreadableImage(f"cannot read image {path}: {reason}", str(path), reason) from None
    if channels == 1:
        return rgb.convert("L")
    if channels != 3:
        raise UserError(f"images can be loaded with 1 or 3 channels, not {channels}")
    return rgb


def load_image_01(path: str | Path) -> torch.Tensor:
    """An image file as a (3, H, W) float32 tensor in [0, 1] (as torchvision's ToTensor), decoded
    by ``load_image``: what the metrics read, so they see the pixels the networks were fed."""
    array = np.asarray(load_image(path, 3), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255)


# ---- writing -------------------------------------------------------------------------------------


def tensor_to_uint8(image: torch.Tensor) -> np.ndarray:
    """One CHW (or 1CHW) tensor in [-1, 1] -> HWC uint8 RGB array (grey is repeated to RGB)."""
    if image.dim() == 4:
        image = image[0]
    image = image.detach().float().cpu().clamp(-1, 1)
    if image.shape[0] == 1:
        image = image.repeat(3, 1, 1)
    # round-to-nearest, as a PNG viewer would expect; the reference truncates instead
    array = ((image + 1) * 127.5).round().to(torch.uint8)
    return array.permute(1, 2, 0).numpy()


def save_image(image: torch.Tensor | np.ndarray, path: str | Path, fsync: bool = True) -> Path:
    """Save a [-1, 1] tensor or a uint8 HWC array as PNG, atomically (``fsync=False``: see
    ``util.fileio.atomic_write``; the caller flushes once after many images)."""
    array = tensor_to_uint8(image) if isinstance(image, torch.Tensor) else image
    pil = Image.fromarray(array)
    return atomic_write(path, lambda f: pil.save(f, format="PNG"), fsync=fsync)
