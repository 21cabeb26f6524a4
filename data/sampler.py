"""The training sampler: a per-epoch order fixed by (seed, epoch), sharded between ranks,
resumable mid-epoch."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from util.seeds import stream_seed


class EpochSampler(Sampler[int]):
    """Yields dataset indices for one epoch: a permutation seeded by (seed, epoch) when
    shuffling, else 0..n-1. The order does not depend on the rank or the world size.

    With ``world_size`` processes each rank takes a disjoint shard of it, as torch's
    ``DistributedSampler`` does: the order is padded to a multiple of ``world_size`` by
    repeating its beginning, and rank r takes positions r, r + world_size, ... So every rank
    has ``epoch_length`` = ceil(n / world_size) samples per epoch, and step k of the ranks
    together sees the samples k * world_size ... of the order: what one process with a
    ``world_size`` times larger batch would see.

    ``set_epoch(epoch, start)`` skips the first ``start`` indices *of this rank's shard* (the
    samples this rank has done, which is what ``RunPosition.epoch_samples`` counts), so a run
    resumed in the middle of an epoch with the same world size sees exactly the samples it had
    not seen yet.
    """

    def __init__(self, length: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of {world_size}")
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    @property
    def epoch_length(self) -> int:
        """Samples this rank sees in a whole epoch."""
        return math.ceil(self.length / self.world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.start = start

    def generator(self) -> torch.Generator:
        """The shuffle's random stream for the current epoch."""
        return torch.Generator().manual_seed(stream_seed(self.seed, "shuffle", self.epoch))

    def order(self) -> list[int]:
        """The epoch's order of all samples (every rank computes the same)."""
        if not self.shuffle:
            return list(range(self.length))
        return torch.randperm(self.length, generator=self.generator()).tolist()

    def shard(self) -> list[int]:
        """This rank's samples of the epoch, in order."""
        order = self.order()
        if self.world_size == 1 or not order:
            return order
        total = self.epoch_length * self.world_size
        order = (order * math.ceil(total / len(order)))[:total]  # pad by repeating
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.shard()[self.start :])

    def __len__(self) -> int:
        return max(0, self.epoch_length - self.start)
