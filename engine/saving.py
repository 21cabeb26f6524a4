"""What to save when: the one home of the save policy (fvcore's PeriodicCheckpointer shape).

- During an epoch, every ``--save_latest_freq`` iterations: ``latest`` (and ``iter_<n>`` with
  ``--save_by_iter``), except at the epoch's last iteration, which the epoch's end saves.
- At an epoch's end: ``<epoch>`` every ``--save_epoch_freq`` epochs and at the last epoch, then
  ``latest`` (and ``iter_<n>`` if that iteration was a save point).
- When the run stops (signal, ``--max_iters``) mid-epoch: ``latest``.

``latest`` always carries the full training state (exact resume); the others only the weights,
the schedule and the position unless ``--full_checkpoints``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.position import RunPosition, last_epoch

if TYPE_CHECKING:
    from options import Options


@dataclass(frozen=True)
class Save:
    tag: str  # "latest", "5", "iter_1000"
    full: bool  # the whole training state, or weights + schedule + position


class SavePolicy:
    def __init__(self, opt: Options, epoch_length: int) -> None:
        self.opt = opt
        self.epoch_length = epoch_length
        self.last_epoch = last_epoch(opt)

    def _latest(self, position: RunPosition) -> list[Save]:
        saves = [Save("latest", True)]
        if self.opt.save_by_iter:
            saves.append(Save(f"iter_{position.total_iters}", self.opt.full_checkpoints))
        return saves

    def _latest_due(self, position: RunPosition) -> bool:
        return position.total_iters % self.opt.save_latest_freq == 0

    def during_epoch(self, position: RunPosition) -> list[Save]:
        """After an iteration that did not end the epoch."""
        if self._latest_due(position) and not position.epoch_done(self.epoch_length):
            return self._latest(position)
        return []

    def at_epoch_end(self, finished_epoch: int, position: RunPosition) -> list[Save]:
        """After ``finished_epoch`` ended (``position`` is already at the next epoch's start)."""
        saves = []
        if finished_epoch % self.opt.save_epoch_freq == 0 or finished_epoch == self.last_epoch:
            saves.append(Save(str(finished_epoch), self.opt.full_checkpoints))
        return saves + (self._latest(position) if self._latest_due(position) else [Save("latest", True)])

    def at_stop(self, position: RunPosition, epoch_ended: bool) -> list[Save]:
        """When the run stops early; nothing when this iteration has just saved ``latest`` (at
        the epoch's end, or as a periodic save)."""
        just_saved = epoch_ended or self._latest_due(position)
        return [] if just_saved else [Save("latest", True)]

    def evaluation_due(self, finished_epoch: int) -> bool:
        freq = self.opt.eval_freq
        return freq > 0 and (finished_epoch % freq == 0 or finished_epoch == self.last_epoch)
