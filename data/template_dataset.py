"""A runnable template for a new dataset mode (``--dataset_mode template``).

Copy this file to ``<mode>_dataset.py``, rename the class, register it under its mode name
and import the module in ``data/__init__.py``. This template serves every image of
``<dataroot>/<phase>A`` as both "A" and "B" (a paired identity task), which is enough to run
``python train.py --dataset_mode template ...`` end to end.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from data.base_dataset import DATASETS, BaseDataset, preprocess_from_options
from data.image_folder import load_image, make_dataset
from data.transforms import sample_rng
from util.errors import UserError

if TYPE_CHECKING:
    from options import Options


@DATASETS.register("template")
class TemplateDataset(BaseDataset):
    @classmethod
    def expected_layout(cls, phase: str) -> str:
        # what --dataroot must hold, for the error message when it is missing
        return f"{phase}A/"

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        # Add options of this dataset here, or change defaults of existing ones, e.g.:
        # parser.add_argument("--template_option", type=float, default=1.0, help="...")
        return parser

    def __init__(self, opt: Options, train: bool = True) -> None:
        super().__init__(opt)
        # 1. find the files; 2. remember the options needed per item.
        self.folder = opt.dataroot / f"{opt.phase}A"
        self.paths = make_dataset(self.folder, opt.max_dataset_size)
        if not self.paths:
            raise UserError(f"no images found in {self.folder}")
        self.preprocess = preprocess_from_options(opt, train)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        # Derive all randomness from (seed, epoch, index) so runs are reproducible and resumable.
        rng = sample_rng(self.seed, self.epoch, index)
        path = self.paths[index]
        image = self.preprocess(load_image(path, self.opt.input_nc), rng)
        return {"A": image, "B": image.clone(), "A_paths": str(path), "B_paths": str(path)}
