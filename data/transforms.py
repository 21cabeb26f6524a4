"""Preprocessing (resize / crop / flip) with explicit random parameters.

Random choices come from a ``random.Random`` passed in by the dataset, seeded per sample from
(seed, epoch, index). That makes augmentation independent of the number of DataLoader
workers and of where a resumed run starts, which exact resume relies on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from util.seeds import stream_seed

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


@dataclass(frozen=True)
class Preprocess:
    """What to do to every image; built once from the options."""

    mode: str = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    random_crop: bool = True  # False: centre crop (test time)
    size_multiple: int = 4  # for mode "none": sides are rounded to a multiple of this

    @property
    def fixed_size(self) -> bool:
        """Whether every output has the same size whatever the input's (a cropping mode)."""
        return self.mode in ("resize_and_crop", "crop", "scale_width_and_crop")

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        if self.mode == "resize_and_crop":
            return self.load_size, self.load_size
        if self.mode in ("scale_width", "scale_width_and_crop"):
            # as the reference: width to load_size, the height never below crop_size
            return self.load_size, int(max(self.load_size * height / width, self.crop_size))
        return width, height

    def sample(self, width: int, height: int, rng: random.Random) -> tuple[tuple[int, int] | None, bool]:
        """Random parameters for one image of this size: (crop top-left or None, flip)."""
        crop = None
        if self.mode in ("resize_and_crop", "crop", "scale_width_and_crop"):
            w, h = self.resized_size(width, height)
            max_x, max_y = max(0, w - self.crop_size), max(0, h - self.crop_size)
            if self.random_crop:
                crop = (rng.randint(0, max_x), rng.randint(0, max_y))
            else:
                crop = (max_x // 2, max_y // 2)
        flip = self.flip and rng.random() > 0.5
        return crop, flip

    def __call__(self, img: Image.Image, rng: random.Random) -> torch.Tensor:
        """PIL image -> CHW float tensor in [-1, 1]."""
        return self.apply(img, *self.sample(img.width, img.height, rng))

    def apply(self, img: Image.Image, crop: tuple[int, int] | None, flip: bool) -> torch.Tensor:
        """PIL image -> CHW float tensor in [-1, 1] with given parameters (``sample``'s), so the
        two halves of a paired image can share one draw."""
        return to_tensor(self.geometry(img, crop, flip))

    def geometry(self, img: Image.Image, crop: tuple[int, int] | None, flip: bool) -> Image.Image:
        """``apply``'s resize, crop and flip alone, on the PIL image: for datasets that convert the
        8-bit pixels themselves (colorization: to Lab)."""
        w, h = self.resized_size(img.width, img.height)
        if (w, h) != img.size:
            img = img.resize((w, h), Image.BICUBIC)
        if crop is not None:
            if img.width < self.crop_size or img.height < self.crop_size:
                raise ValueError(
                    f"image of {img.width}x{img.height} is smaller than --crop_size {self.crop_size} "
                    f"after preprocessing '{self.mode}'"
                )
            x, y = crop
            img = img.crop((x, y, x + self.crop_size, y + self.crop_size))
        if self.mode in ("none", "scale_width"):  # uncropped sides: make them fit the network
            img = round_to_multiple(img, self.size_multiple)
        if flip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return img


def round_to_multiple(img: Image.Image, base: int) -> Image.Image:
    """Resize so both sides are multiples of ``base`` (networks with stride-2 levels need it)."""
    w = max(base, int(round(img.width / base) * base))
    h = max(base, int(round(img.height / base) * base))
    return img if (w, h) == img.size else img.resize((w, h), Image.BICUBIC)


def to_tensor(img: Image.Image) -> torch.Tensor:
    array = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def sample_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The random generator for one sample of one epoch."""
    return random.Random(stream_seed(seed, "sample", epoch, index))
