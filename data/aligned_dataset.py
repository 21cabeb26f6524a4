"""Paired data, the pix2pix layout: ``<dataroot>/<phase>/`` holds images with A | B side by side.

Each file is one training pair: its left half is the A image, its right half the B image (the
layout ``scripts/combine_A_and_B.py`` writes, and the one the reference's facades, maps,
edges2shoes ... archives ship). Both halves go through one draw of the random resize/crop/flip, so
the pair stays registered pixel for pixel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image

from data.base_dataset import DATASETS, ImageFolderDataset
from data.image_folder import load_image
from data.transforms import sample_rng
from util.errors import UserError

if TYPE_CHECKING:
    from pathlib import Path

    from options import Options


def split_halves(ab: Image.Image) -> tuple[Image.Image, Image.Image]:
    """(left, right) halves of an A | B image, each ``w // 2`` wide. With an odd width the last
    column is dropped (the reference gives it to the right half; equal halves keep one crop and one
    resize valid for both)."""
    w, h = ab.size
    half = w // 2
    if half < 1:
        raise ValueError(f"is {w} pixel wide: an A | B image needs at least 2 columns")
    return ab.crop((0, 0, half, h)), ab.crop((half, 0, 2 * half, h))


def as_channels(img: Image.Image, channels: int) -> Image.Image:
    """An RGB half as ``channels`` channels (1: greyscale, as ``util.image.load_image`` converts)."""
    return img.convert("L") if channels == 1 else img


@DATASETS.register("aligned")
class AlignedDataset(ImageFolderDataset):
    """Item i is the i-th image of ``<dataroot>/<phase>/`` (sorted), split into its halves:
    ``{"A": source, "B": target, "A_paths": file, "B_paths": file}``. The source is the left half
    (``--direction AtoB``) or the right half (``BtoA``), with ``--input_nc`` channels; the target
    is the other half, with ``--output_nc``. An epoch has one item per file.

    At test time the same items, without random crops or flips: the model translates "A" and
    "B" is its ground truth (``ground_truth``).
    """

    ground_truth = True  # test items carry the true target image under "B"

    @classmethod
    def expected_layout(cls, phase: str) -> str:
        return f"{phase}/ (images holding A | B side by side)"

    def __init__(self, opt: Options, train: bool = True) -> None:
        folder = opt.dataroot / opt.phase
        if not folder.is_dir():
            raise UserError(
                f"{folder} does not exist: --dataset_mode aligned reads {self.expected_layout(opt.phase)} "
                "(scripts/combine_A_and_B.py makes them from A and B folders)"
            )
        super().__init__(opt, folder, opt.input_nc, train)
        self.left_is_source = opt.direction == "AtoB"
        self.nc_A, self.nc_B = opt.input_nc, opt.output_nc

    @classmethod
    def for_test(cls, opt: Options, side: str) -> AlignedDataset:
        return cls(opt, train=False)

    @classmethod
    def real_folders(cls, opt: Options, side: str, splits: list[str]) -> list[Path]:
        raise UserError(
            "--metrics fid/kid need a folder of real target images: --dataset_mode aligned keeps them as the halves "
            "of A | B files; score the translations with --metrics l1,psnr,ssim (against each image's own B half)"
        )

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        try:
            left, right = split_halves(load_image(path, 3))
            source, target = (left, right) if self.left_is_source else (right, left)
            source, target = as_channels(source, self.nc_A), as_channels(target, self.nc_B)
            # one draw for both halves: the same crop window and the same flip
            crop, flip = self.preprocess.sample(source.width, source.height, sample_rng(self.seed, self.epoch, index))
            a, b = self.preprocess.apply(source, crop, flip), self.preprocess.apply(target, crop, flip)
        except ValueError as e:
            raise UserError(f"{path}: {e}") from None
        return {"A": a, "B": b, "A_paths": str(path), "B_paths": str(path)}
