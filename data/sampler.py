"""The training sampler: a per-epoch order fixed by (seed, epoch), resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from util.seeds import stream_seed


class EpochSampler(Sampler[int]):
    """Yields dataset indices for one epoch: a permutation seeded by (seed, epoch) when
    shuffling, else 0..n-1. ``set_epoch(epoch, start)`` skips the first ``start`` indices, so
    a run resumed in the middle of an epoch sees exactly the samples it had not seen yet.

    Later, for several processes, this is where indices get split between ranks.
    """

    def __init__(self, length: int, shuffle: bool, seed: int) -> None:
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.start = start

    def generator(self) -> torch.Generator:
        """The shuffle's random stream for the current epoch."""
        return torch.Generator().manual_seed(stream_seed(self.seed, "shuffle", self.epoch))

    def order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.length))
        return torch.randperm(self.length, generator=self.generator()).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start :])

    def __len__(self) -> int:
        return max(0, self.length - self.start)
