"""The dataset base class (option hook, epoch for per-sample randomness, preprocessing, what test
time translates) and the DATASETS registry."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch.utils.data

from data.transforms import Preprocess, sample_rng
from util.errors import UserError
from util.image import list_images, load_image
from util.registry import Registry

DATASETS = Registry("dataset mode")

# What the test items of a style model carry next to "A" (the content image, in [-1, 1]) and
# "A_paths", for the style metrics (metrics/style.py): "style", a list of style images in [-1, 1]
# (one per style of a blend), "style_paths", their files, and "style_weights", their blend
# weights (floats summing to 1).
STYLE_KEYS = ("style", "style_paths", "style_weights")

if TYPE_CHECKING:
    from options import Options


class BaseDataset(torch.utils.data.Dataset):
    """Subclasses implement ``__len__`` and ``__getitem__`` returning a dict of tensors/paths.

    ``epoch`` is set by the training loop before each epoch (the DataLoader copies the dataset
    into its workers when the epoch's iterator is created), so per-sample randomness can be
    derived from (seed, epoch, index).

    Images are decoded with ``util.image.load_image``; a file it cannot decode raises
    ``UnreadableImage`` out of ``__getitem__``, and ``data.readable`` applies the one policy for
    every dataset: at training the item is replaced by the next one (warned once per file, counted
    per epoch, training stops past ``--max_unreadable``), at test time it is skipped and named.
    A dataset catches nothing of it.
    """

    # The spec generic code reads (``DATASETS.spec(mode)`` is the class): whether train.py may
    # use it, and what its folder holds (for the error when --dataroot is missing).
    trainable: bool = True
    # Whether each test item carries the true target of its translation under "B" (paired data:
    # the aligned mode's other halves); the model turns it into an image (``ground_truth_label``),
    # which test.py saves next to the results and scores the translation against.
    ground_truth: bool = False
    # Whether the test items are the frames of one clip, in order: test.py then writes every
    # translated frame and a video of them instead of a page of every image (engine/video.py).
    clip: bool = False
    # The --preprocess test.py uses unless one is given (None: the options' own, e.g. the training
    # run's): a clip is translated at its full frame size.
    test_preprocess: str | None = None

    @classmethod
    def expected_layout(cls, phase: str) -> str:
        return f"{phase}A/ and {phase}B/"

    @classmethod
    def reads_file(cls, path: Path) -> bool:
        """Whether ``--dataroot`` may be the file ``path`` (a video) rather than a folder."""
        return False

    def __init__(self, opt: Options) -> None:
        self.opt = opt
        self.epoch = 0
        self.seed = opt.seed if opt.seed is not None else 0

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        """Add dataset-specific options or change defaults (between code defaults and YAML)."""
        return parser

    @classmethod
    def resolve_options(cls, values: dict[str, Any], is_train: bool) -> None:
        """Check (and fill in derived) option values in place, as a model's ``resolve_options``:
        ``options.resolve`` calls it for the ``--dataset_mode`` in effect, so a value the data
        cannot serve is a one-line error before anything runs. Most datasets have none."""

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    # ---- test time: what test.py translates and scores ------------------------------------------
    @classmethod
    def for_test(cls, opt: Options, side: str) -> ImageFolderDataset:
        """The images test.py translates for the model's test side ``side``: ``<phase>A`` for A,
        ``<phase>B`` for B (swapped by ``--direction BtoA``), at the test-time size."""
        folder = opt.dataroot / f"{opt.phase}{folder_letter(opt.direction, side)}"
        if not folder.is_dir():
            layout = cls.expected_layout(opt.phase)
            raise UserError(f"{folder} does not exist: test.py translates {layout} of --dataroot")
        channels = opt.input_nc if side == "A" else opt.output_nc
        return ImageFolderDataset(opt, folder, channels, train=False)

    @classmethod
    def real_folders(cls, opt: Options, side: str, splits: list[str]) -> list[Path]:
        """Real images of the domain that side ``side`` is translated into (for FID/KID), from
        the folders of ``splits`` (e.g. ["test"], or ["test", "train"])."""
        target = OTHER[folder_letter(opt.direction, side)]
        folders = [opt.dataroot / f"{split}{target}" for split in splits]
        for folder in folders:
            if not folder.is_dir():
                raise UserError(f"{folder} does not exist: FID/KID compare with the {', '.join(splits)} images")
        return folders


OTHER = {"A": "B", "B": "A"}


def folder_letter(direction: str, side: str) -> str:
    """The folder letter a model's side reads: ``--direction BtoA`` swaps the domains."""
    return side if direction == "AtoB" else OTHER[side]


class ImageFolderDataset(BaseDataset):
    """Images of one folder in sorted order: ``{"A": tensor, "A_paths": str}`` (what test.py
    translates; the ``single`` dataset mode)."""

    # Whether an input appears once per style (items carrying ``style_paths`` of their own), so
    # test.py names each result after its style(s) too, not after its input alone.
    names_styles = False

    def __init__(self, opt: Options, folder: Path, channels: int, train: bool = False) -> None:
        super().__init__(opt)
        self.folder = Path(folder)
        self.paths = list_images(self.folder, max_count=opt.max_dataset_size)
        if not self.paths:
            raise UserError(f"no images found in {self.folder}")
        self.channels = channels
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

    def style_problem(self) -> str:
        """Why the items carry no style images (``STYLE_KEYS``, what the style metrics compare the
        outputs with), for the error; asked only when they carry none. Style datasets override it."""
        return f"the test images of --model {self.opt.model} (--dataset_mode {self.opt.dataset_mode}) carry none"


def preprocess_from_options(opt: Options, train: bool) -> Preprocess:
    """Training: random crop and flips as configured. Test: centre crop, no flip,
    scale_width_and_crop becomes scale_width (whole images at the training scale), and ``none``
    resamples nothing (the models pad to the network's multiple and crop back)."""
    mode = opt.preprocess if train or opt.preprocess != "scale_width_and_crop" else "scale_width"
    return Preprocess(
        mode=mode,
        load_size=opt.load_size,
        crop_size=opt.crop_size,
        flip=train and not opt.no_flip,
        random_crop=train,
        # the generator's (options.resolve reads its spec); at test time --preprocess none keeps the
        # image's own size: the models pad to the multiple and crop back (BaseModel.generate)
        size_multiple=1 if not train and mode == "none" else opt.size_multiple,
    )
