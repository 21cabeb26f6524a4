"""One folder of images (test time, or ``--model test`` with a pretrained generator)."""

from __future__ import annotations

from pathlib import Path

from data.base_dataset import DATASETS, BaseDataset, preprocess_from_options
from data.image_folder import load_image, make_dataset
from data.transforms import sample_rng
from util.errors import UserError


@DATASETS.register("single")
class SingleDataset(BaseDataset):
    """Images of one folder, in sorted order: ``{"A": tensor, "A_paths": str}``.

    The folder is ``folder`` when given, else ``--dataroot`` itself.
    """

    def __init__(self, opt, folder: Path | None = None, channels: int | None = None, train: bool = False) -> None:
        super().__init__(opt)
        self.folder = Path(folder) if folder is not None else opt.dataroot
        self.paths = make_dataset(self.folder, opt.max_dataset_size)
        if not self.paths:
            raise UserError(f"no images found in {self.folder}")
        self.channels = channels if channels is not None else opt.input_nc
        self.preprocess = preprocess_from_options(opt, train)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        try:
            image = self.preprocess(load_image(path, self.channels), sample_rng(self.seed, self.epoch, index))
        except ValueError as e:
            raise UserError(f"{path}: {e}") from None
        return {"A": image, "A_paths": str(path)}
