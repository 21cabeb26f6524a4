"""The dataset base class: option hook, epoch for per-sample randomness, preprocessing."""

from __future__ import annotations

import argparse

import torch.utils.data

from data.transforms import Preprocess
from models.networks import generator_size_multiple
from util.registry import Registry

DATASETS = Registry("dataset mode")


class BaseDataset(torch.utils.data.Dataset):
    """Subclasses implement ``__len__`` and ``__getitem__`` returning a dict of tensors/paths.

    ``epoch`` is set by the training loop before each epoch (the DataLoader copies the dataset
    into its workers when the epoch's iterator is created), so per-sample randomness can be
    derived from (seed, epoch, index).
    """

    def __init__(self, opt) -> None:
        self.opt = opt
        self.epoch = 0
        self.seed = opt.seed if opt.seed is not None else 0

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        """Add dataset-specific options or change defaults (between code defaults and YAML)."""
        return parser

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


def preprocess_from_options(opt, train: bool) -> Preprocess:
    """Training: random crop and flips as configured. Test: centre crop, no flip, and
    scale_width_and_crop becomes scale_width (whole images at the training scale)."""
    mode = opt.preprocess if train or opt.preprocess != "scale_width_and_crop" else "scale_width"
    return Preprocess(
        mode=mode,
        load_size=opt.load_size,
        crop_size=opt.crop_size,
        flip=train and not opt.no_flip,
        random_crop=train,
        size_multiple=generator_size_multiple(opt.netG),
    )
