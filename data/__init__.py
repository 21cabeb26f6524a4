"""Datasets, each registered under its ``--dataset_mode`` name, and the data loader.

To add a dataset: copy ``template_dataset.py`` to ``<mode>_dataset.py``, register the class
with ``@DATASETS.register("<mode>")``, and import the module below. ``--dataset_mode <mode>``
then works, and the class's ``modify_options`` hook may add options. Image files that cannot be
decoded are handled here for every dataset (``data/readable.py``: replaced and warned at training,
skipped and named at test), so a dataset only lets ``load_image``'s ``UnreadableImage`` through.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, default_collate

from data import (  # noqa: F401  (registration)
    aligned_dataset,
    colorization_dataset,
    content_style_dataset,
    single_dataset,
    style_dataset,
    template_dataset,
    unaligned_dataset,
    video_dataset,
)
from data.base_dataset import DATASETS, BaseDataset
from data.readable import DEFAULT_MAX_FRACTION, UNREADABLE_KEY, ReplaceUnreadable
from data.sampler import EpochSampler
from util.errors import UserError
from util.seeds import stream_seed

if TYPE_CHECKING:
    from options import Options

__all__ = ["DATASETS", "BaseDataset", "EpochSampler", "create_dataset", "create_train_loader"]


def create_dataset(opt: Options, split: str = "train", side: str = "A") -> BaseDataset:
    """The ``--dataset_mode`` dataset for ``split``: ``"train"`` (random crops and flips, pairs of
    A and B), or ``"test"``: the images test.py translates for the model's test ``side``, at the
    test-time size (the dataset class's ``for_test`` decides which: a folder per side for
    unaligned data, ``--dataroot`` itself for single)."""
    cls = DATASETS.get(opt.dataset_mode)
    if split == "train":
        return cls(opt)
    if split == "test":
        return cls.for_test(opt, side)
    raise ValueError(f"unknown split '{split}' (train or test)")


def quiet_worker_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``. Ctrl-C, and a SIGTERM sent to the whole process group (by a
    shell, SLURM, a container runtime), reach the workers too; only the main process decides how
    to stop (it saves 'latest' first). So a worker ignores SIGINT, and on SIGTERM leaves with
    status 0: torch's default there is to die of the signal, which makes the loader raise an
    error asynchronously in the main process, in the middle of whatever it is doing. (SIGTERM
    cannot simply be ignored: Python terminates daemonic workers with it at exit.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))


def collate(items: list[dict]) -> dict:
    """``default_collate`` with a one-line error when the images of a batch differ in size, which
    happens with ``--preprocess none`` or ``scale_width`` and images of several sizes. The files
    that had to be replaced (``data.readable``) are gathered into one list under ``UNREADABLE_KEY``."""
    unreadable = [failure for item in items for failure in item.pop(UNREADABLE_KEY, ())]
    for key in ("A", "B"):
        sizes = sorted({tuple(item[key].shape[-2:]) for item in items if key in item})
        if len(sizes) > 1:
            shown = ", ".join(f"{h}x{w}" for h, w in sizes)
            raise UserError(
                f"one batch holds images of different sizes ({shown}): use --batch_size 1, or a "
                "--preprocess that crops to --crop_size"
            )
    batch = default_collate(items)
    batch[UNREADABLE_KEY] = unreadable
    return batch


def create_train_loader(
    dataset: BaseDataset, opt: Options, device: torch.device, rank: int = 0, world_size: int = 1
) -> tuple[DataLoader, EpochSampler]:
    """A DataLoader over ``dataset`` driven by an ``EpochSampler`` (shuffled unless
    ``--serial_batches``) that gives this ``rank`` its shard of each epoch; ``--batch_size`` is
    per process. Workers are re-created every epoch so they see ``dataset.epoch``. An item whose
    image cannot be read is replaced by the next one (``data.readable``: the policy, and
    ``UnreadableLog``, which the training loop runs the batches through)."""
    sampler = EpochSampler(
        len(dataset), shuffle=not opt.serial_batches, seed=opt.seed, rank=rank, world_size=world_size
    )
    loader = DataLoader(
        ReplaceUnreadable(dataset, opt.get("max_unreadable", DEFAULT_MAX_FRACTION)),
        batch_size=opt.batch_size,
        sampler=sampler,
        # more workers than cores only adds contention (and a warning from torch)
        num_workers=min(opt.num_threads, os.cpu_count() or 1),
        pin_memory=device.type == "cuda",
        drop_last=False,
        persistent_workers=False,
        worker_init_fn=quiet_worker_signals,
        collate_fn=collate,
        # Its own generator: creating each epoch's iterator draws worker seeds from it, which
        # must not advance the global RNG (dropout, gradient penalty), or a resumed run, which
        # creates one iterator more, would diverge. Our datasets draw no torch randomness.
        generator=torch.Generator().manual_seed(stream_seed(opt.seed, "loader")),
    )
    return loader, sampler
