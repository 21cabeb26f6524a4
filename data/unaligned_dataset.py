"""Unpaired two-domain data: ``<dataroot>/<phase>A`` and ``<dataroot>/<phase>B``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from data.base_dataset import DATASETS, BaseDataset, preprocess_from_options
from data.image_folder import load_image, make_dataset
from data.transforms import sample_rng
from util.errors import UserError

if TYPE_CHECKING:
    from options import Options


@DATASETS.register("unaligned")
class UnalignedDataset(BaseDataset):
    """Item i pairs A[i mod |A|] with a B drawn uniformly at random (``--serial_batches``:
    B[i mod |B|]); an epoch has max(|A|, |B|) items. A and B get independent crops and flips.
    ``--direction BtoA`` swaps the folders, so models always translate "A" -> "B".
    """

    def __init__(self, opt: Options, phase: str | None = None, train: bool = True) -> None:
        super().__init__(opt)
        phase = phase or opt.phase
        a_side, b_side = ("A", "B") if opt.direction == "AtoB" else ("B", "A")
        self.dir_A = opt.dataroot / f"{phase}{a_side}"
        self.dir_B = opt.dataroot / f"{phase}{b_side}"
        self.A_paths = make_dataset(self.dir_A, opt.max_dataset_size)
        self.B_paths = make_dataset(self.dir_B, opt.max_dataset_size)
        for folder, paths in ((self.dir_A, self.A_paths), (self.dir_B, self.B_paths)):
            if not paths:
                raise UserError(f"no images found in {folder}")
        # the folders are already swapped for BtoA: "A" is always the source, with input_nc channels
        self.nc_A, self.nc_B = opt.input_nc, opt.output_nc
        self.serial = opt.serial_batches
        self.preprocess = preprocess_from_options(opt, train)

    def __len__(self) -> int:
        return max(len(self.A_paths), len(self.B_paths))

    def __getitem__(self, index: int) -> dict:
        rng = sample_rng(self.seed, self.epoch, index)
        a_path = self.A_paths[index % len(self.A_paths)]
        b_index = index % len(self.B_paths) if self.serial else rng.randrange(len(self.B_paths))
        b_path = self.B_paths[b_index]
        try:
            a = self.preprocess(load_image(a_path, self.nc_A), rng)
            b = self.preprocess(load_image(b_path, self.nc_B), rng)
        except ValueError as e:
            raise UserError(f"{a_path} / {b_path}: {e}") from None
        return {"A": a, "B": b, "A_paths": str(a_path), "B_paths": str(b_path)}
