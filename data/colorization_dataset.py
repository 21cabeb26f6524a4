"""Colour images as (lightness, colour) pairs, for learning to colourise (``--dataset_mode
colorization``, the ``colorization`` model's; the reference's dataset of the same name).

``<dataroot>/<phase>/`` holds colour images (``train/``, and ``test/`` for test.py). Each one is
decoded to 8-bit RGB (greyscale expanded, transparency composited on white: ``util.image``),
resized, cropped and flipped as ``--preprocess`` says, then converted to CIE Lab with
``util.color.rgb_to_lab`` (scikit-image's ``rgb2lab``, which the reference calls) and scaled as
the reference scales it::

    {"A": L / 50 - 1   (1 x H x W, in [-1, 1]: the input, input_nc 1),
     "B": ab / 110     (2 x H x W, about [-1, 1]: the target, output_nc 2),
     "A_paths": file, "B_paths": the same file}

The option hook makes ``--input_nc 1 --output_nc 2 --direction AtoB`` the defaults; other values
are a one-line error. Test time (``for_test``): the images of ``<dataroot>/<phase>/`` (``--phase
test``), centre-cropped as usual, carrying "B": the true colours are each input's ground truth.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from data.base_dataset import DATASETS, ImageFolderDataset
from data.transforms import sample_rng
from util.color import lab_to_network, rgb_to_lab
from util.errors import UserError
from util.image import load_image

if TYPE_CHECKING:
    from options import Options

# The only channel counts and direction the data fits: L in, ab out.
REQUIRED = {"input_nc": 1, "output_nc": 2, "direction": "AtoB"}


def lab_pair(rgb: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    """An 8-bit RGB image -> (L / 50 - 1, ab / 110), float32 CHW. As the reference: Lab computed
    in float64 from the uint8 pixels, rounded to float32, then scaled in float32."""
    lab = rgb_to_lab(np.asarray(rgb, dtype=np.uint8)).astype(np.float32)
    light, ab = lab_to_network(torch.from_numpy(lab).permute(2, 0, 1))
    return light.contiguous(), ab.contiguous()


@DATASETS.register("colorization")
class ColorizationDataset(ImageFolderDataset):
    """Colour images of ``<dataroot>/<phase>/`` as Lab pairs (see the module's note)."""

    ground_truth = True  # test items carry the true ab channels under "B"

    @classmethod
    def expected_layout(cls, phase: str) -> str:
        return f"{phase}/ (colour images)"

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        parser.set_defaults(**REQUIRED)
        return parser

    @classmethod
    def resolve_options(cls, values: dict[str, Any], is_train: bool) -> None:
        check_options(values)

    def __init__(self, opt: Options, train: bool = True) -> None:
        check_options({key: getattr(opt, key) for key in REQUIRED})
        folder = Path(opt.dataroot) / opt.phase
        if not folder.is_dir():
            raise UserError(f"{folder} does not exist: --dataset_mode colorization reads colour images from it")
        super().__init__(opt, folder, channels=3, train=train)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        rng = sample_rng(self.seed, self.epoch, index)
        try:
            image = load_image(path, 3)
            rgb = self.preprocess.geometry(image, *self.preprocess.sample(image.width, image.height, rng))
        except ValueError as e:
            raise UserError(f"{path}: {e}") from None
        light, ab = lab_pair(rgb)
        return {"A": light, "B": ab, "A_paths": str(path), "B_paths": str(path)}

    @classmethod
    def for_test(cls, opt: Options, side: str) -> ColorizationDataset:
        return cls(opt, train=False)

    @classmethod
    def real_folders(cls, opt: Options, side: str, splits: list[str]) -> list[Path]:
        """The colour images themselves are the target domain (for FID/KID of the colourised)."""
        folders = [Path(opt.dataroot) / split for split in splits]
        for folder in folders:
            if not folder.is_dir():
                raise UserError(f"{folder} does not exist: FID/KID compare with the {', '.join(splits)} images")
        return folders


def check_options(values: dict[str, Any]) -> None:
    """A one-line ``UserError`` unless the options fit L -> ab (``REQUIRED``)."""
    wrong = [f"--{key} {values[key]}" for key, needed in REQUIRED.items() if values[key] != needed]
    if wrong:
        needed = " ".join(f"--{key} {value}" for key, value in REQUIRED.items())
        raise UserError(
            f"--dataset_mode colorization predicts the ab colour channels from the L channel: it needs "
            f"{needed}, got {', '.join(wrong)}"
        )
