"""Where a training run is: the one home of the epoch / sample / iteration arithmetic.

An iteration is one optimiser step (one batch). ``epoch`` is the 1-based epoch in progress and
``epoch_samples`` how many of its samples are done; after an epoch's end the position is
"start of the next epoch" (``epoch + 1``, 0 samples), which is what a checkpoint saved there
records, so a resumed run continues with the next batch of the same epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from options import Options


@dataclass
class RunPosition:
    epoch: int
    epoch_samples: int = 0
    total_iters: int = 0

    @classmethod
    def from_state(cls, state: dict) -> RunPosition:
        return cls(state["epoch"], state["epoch_samples"], state["total_iters"])

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "epoch_samples": self.epoch_samples, "total_iters": self.total_iters}

    def advance(self, batch_size: int) -> None:
        """One optimiser step on a batch of ``batch_size`` samples (the last one may be partial)."""
        self.total_iters += 1
        self.epoch_samples += batch_size

    def epoch_done(self, epoch_length: int) -> bool:
        return self.epoch_samples >= epoch_length

    def next_epoch(self) -> int:
        """Move to the start of the next epoch; returns the epoch just finished."""
        finished = self.epoch
        self.epoch, self.epoch_samples = self.epoch + 1, 0
        return finished

    def iteration_in_epoch(self, batch_size: int) -> int:
        """1-based index of the last step within the epoch (the reference's ``epoch_iter``)."""
        return math.ceil(self.epoch_samples / batch_size)


def iterations_per_epoch(epoch_length: int, batch_size: int) -> int:
    return math.ceil(epoch_length / batch_size)


def last_epoch(opt: Options) -> int:
    """As the reference: --epoch_count moves the start, never the end."""
    return opt.n_epochs + opt.n_epochs_decay


def planned_iterations(opt: Options, epoch_length: int) -> int:
    """Total iterations the run ends at: the schedule's end, or --max_iters if sooner."""
    epochs = last_epoch(opt) - opt.epoch_count + 1
    return min(opt.max_iters, epochs * iterations_per_epoch(epoch_length, opt.batch_size))
