"""Conversions between network tensors ([-1, 1], NCHW) and image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from util.fileio import atomic_write


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


def save_image(image: torch.Tensor | np.ndarray, path: str | Path) -> Path:
    """Save a [-1, 1] tensor or a uint8 HWC array as PNG, atomically."""
    array = tensor_to_uint8(image) if isinstance(image, torch.Tensor) else image
    pil = Image.fromarray(array)
    return atomic_write(path, lambda f: pil.save(f, format="PNG"))
