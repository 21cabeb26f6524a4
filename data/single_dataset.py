"""One folder of images: ``--dataroot`` itself (``--model test`` with a pretrained generator)."""

from __future__ import annotations

from pathlib import Path

from data.base_dataset import DATASETS, ImageFolderDataset
from util.errors import UserError


@DATASETS.register("single")
class SingleDataset(ImageFolderDataset):
    """The images of ``--dataroot``, in sorted order: ``{"A": tensor, "A_paths": str}``."""

    trainable = False  # one domain: nothing to translate to

    @classmethod
    def expected_layout(cls, phase: str) -> str:
        return "the images to translate"

    def __init__(self, opt, train: bool = False) -> None:
        super().__init__(opt, opt.dataroot, opt.input_nc, train)

    @classmethod
    def for_test(cls, opt, side: str) -> SingleDataset:
        return cls(opt, train=False)

    @classmethod
    def real_folders(cls, opt, side: str, splits: list[str]) -> list[Path]:
        raise UserError("--metrics fid/kid need the real images of the target domain: a single folder has none")
