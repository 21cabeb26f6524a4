"""Loss bookkeeping without a host-device sync per step, and the NaN/inf stop."""

from __future__ import annotations

import math
import time

import torch

from engine import distributed
from util.errors import UserError


class NonFiniteLoss(UserError):
    """A loss became NaN or infinite."""


class LossTracker:
    """Accumulates the per-step loss tensors on their device; reading them (``mean``) is the
    only host-device sync, done when the loop logs. Also remembers, on the device, the first
    iteration at which any loss was not finite, so the error can name it exactly."""

    def __init__(self, names: tuple[str, ...], device: torch.device) -> None:
        self.names = names
        self.device = device
        self.sums = torch.zeros(len(names), device=device, dtype=torch.float64)
        self.count = 0
        self.epoch_sums = torch.zeros_like(self.sums)
        self.epoch_count = 0
        self.first_bad_iter = torch.full((), -1, device=device, dtype=torch.long)
        self.first_bad_mask = torch.zeros(len(names), device=device, dtype=torch.bool)

    def add(self, losses: dict[str, torch.Tensor], iteration: int) -> None:
        values = torch.stack([losses[name].detach().to(torch.float64) for name in self.names])
        bad = ~torch.isfinite(values)
        newly_bad = (self.first_bad_iter < 0) & bad.any()
        self.first_bad_iter = torch.where(
            newly_bad, torch.full_like(self.first_bad_iter, iteration), self.first_bad_iter
        )
        self.first_bad_mask = torch.where(newly_bad, bad, self.first_bad_mask)
        self.sums += values
        self.epoch_sums += values
        self.count += 1
        self.epoch_count += 1

    def check(self) -> None:
        """Raise ``NonFiniteLoss`` naming the loss and iteration if any loss was NaN/inf."""
        iteration = int(self.first_bad_iter.item())
        if iteration >= 0:
            bad = [n for n, b in zip(self.names, self.first_bad_mask.tolist(), strict=True) if b]
            raise NonFiniteLoss(f"loss {', '.join(bad)} became NaN or infinite at iteration {iteration}")

    def check_all_ranks(self) -> None:
        """``check`` here and on every other rank (every rank must call it, at the same step):
        a NaN gradient on any rank is averaged into every rank's weights, so before a save the
        ranks must agree that all their losses were finite."""
        if not distributed.active():
            return self.check()
        anywhere = distributed.all_reduce_mean((self.first_bad_iter >= 0).to(torch.float64).reshape(1))
        self.check()  # this rank's own, named exactly, after the collective every rank joins
        if anywhere.item() > 0:
            raise NonFiniteLoss("a loss became NaN or infinite on another rank")

    def mean(self) -> dict[str, float]:
        """Means since the last call (one sync), then reset. With several processes, the mean
        over all ranks: every rank must call it at the same step (the loop's log steps)."""
        values = self._reduced_mean(self.sums, self.count)
        self.sums.zero_()
        self.count = 0
        return values

    def _reduced_mean(self, sums: torch.Tensor, count: int) -> dict[str, float]:
        """``sums / count`` averaged over the ranks (each rank has the same ``count``); raises
        ``NonFiniteLoss`` for this rank's first bad loss, or for another rank's."""
        means = distributed.all_reduce_mean(sums / max(1, count))
        self.check()
        values = means.tolist()
        bad = [n for n, v in zip(self.names, values, strict=True) if not math.isfinite(v)]
        if bad:
            raise NonFiniteLoss(f"loss {', '.join(bad)} became NaN or infinite on another rank")
        return dict(zip(self.names, values, strict=True))

    def state_dict(self) -> dict:
        """The running sums of the epoch and of the steps since the last log line, so a resumed
        run's epoch means and its next logged means match an uninterrupted run's."""
        return {
            "epoch_sums": self.epoch_sums.cpu(),
            "epoch_count": self.epoch_count,
            "sums": self.sums.cpu(),
            "count": self.count,
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch_sums = state["epoch_sums"].to(self.device)
        self.epoch_count = state["epoch_count"]
        # checkpoints written before the log window was saved: the window starts empty
        self.sums = state["sums"].to(self.device) if "sums" in state else torch.zeros_like(self.epoch_sums)
        self.count = state.get("count", 0)

    def epoch_mean(self) -> dict[str, float]:
        """Means over the epoch so far (over all ranks, so the LR schedule stays the same on
        every rank), then reset the epoch sums."""
        values = self._reduced_mean(self.epoch_sums, self.epoch_count)
        self.epoch_sums.zero_()
        self.epoch_count = 0
        return values


class StepTimer:
    """Seconds spent waiting for data and computing, per step, between two log lines."""

    def __init__(self) -> None:
        self._mark = time.perf_counter()
        self.data = self.step = 0.0
        self.steps = 0

    def got_batch(self) -> None:
        now = time.perf_counter()
        self.data, self._mark = self.data + now - self._mark, now

    def stepped(self) -> None:
        now = time.perf_counter()
        self.step, self._mark, self.steps = self.step + now - self._mark, now, self.steps + 1

    def waiting(self) -> None:
        """From now on the loop waits for the next batch (logging and saving are not counted)."""
        self._mark = time.perf_counter()

    def means(self) -> tuple[float, float]:
        """(compute, data) seconds per step since the last call, then reset."""
        steps = max(1, self.steps)
        means = (self.step / steps, self.data / steps)
        self.data = self.step = 0.0
        self.steps = 0
        return means
