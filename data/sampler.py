"""The training sampler: a per-epoch order fixed by (seed, epoch), resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


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

    def order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.length))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.length, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start :])

    def __len__(self) -> int:
        return max(0, self.length - self.start)
