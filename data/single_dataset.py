"""One folder of images: ``--dataroot`` itself (``--model test`` with a pretrained generator)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from data.base_dataset import DATASETS, ImageFolderDataset
from util.errors import UserError

if TYPE_CHECKING:
    from options import Options


@DATASETS.register("single")
class SingleDataset(ImageFolderDataset):
    """The images of ``--dataroot``, in sorted order: ``{"A": tensor, "A_paths": str}``."""

    trainable = False  # one domain: nothing to translate to

    @classmethod
    def expected_layout(cls, phase: str) -> str:
        return "the images to translate"

    def __init__(self, opt: Options, train: bool = False) -> None:
        super().__init__(opt, opt.dataroot, opt.input_nc, train)

    @classmethod
    def for_test(cls, opt: Options, side: str) -> SingleDataset:
        return cls(opt, train=False)

    @classmethod
    def real_folders(cls, opt: Options, side: str, splits: list[str]) -> list[Path]:
        raise UserError("--metrics fid/kid need the real images of the target domain: a single folder has none")
