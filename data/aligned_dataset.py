"""Paired data, the pix2pix layout: ``<dataroot>/<phase>/`` holds images with A | B side by side.

Each file is one training pair: its left half is the A image, its right half the B image (the
layout ``scripts/combine_A_and_B.py`` writes, and the one the reference's facades, maps,
edges2shoes ... archives ship). Both halves go through one draw of the random resize/crop/flip, so
the pair stays registered pixel for pixel.

FID/KID (``real_folders``) compare the translations with the target halves of the files, cut out
once into a folder under ``--metrics_cache_dir`` (``data.aligned_halves``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from data.aligned_halves import as_channels, extract_halves, split_halves
from data.base_dataset import DATASETS, OTHER, ImageFolderDataset, folder_letter
from data.image_folder import load_image
from data.transforms import sample_rng
from util.errors import UserError

if TYPE_CHECKING:
    from options import Options

__all__ = ["AlignedDataset", "as_channels", "split_halves"]  # the halving helpers live in data.aligned_halves


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
        """For FID/KID: per split, a folder of the target halves of ``<dataroot>/<split>/``'s
        files (the right halves when side ``side`` translates into B, the left ones into A; with
        the channels the dataset gives them), extracted once under ``--metrics_cache_dir``
        (``data.aligned_halves``)."""
        if not opt.metrics_cache_dir:
            raise UserError(
                "--metrics fid/kid of --dataset_mode aligned extract the target halves of the A | B images into "
                "--metrics_cache_dir: give it a folder"
            )
        target = OTHER[folder_letter(opt.direction, side)]
        channels = opt.output_nc if side == "A" else opt.input_nc  # as __getitem__ gives "B" / "A"
        return [
            extract_halves(Path(opt.dataroot) / split, split, target == "B", channels, opt.metrics_cache_dir)
            for split in splits
        ]

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
