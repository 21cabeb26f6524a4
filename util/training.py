"""Pieces of the training loop kept out of train.py so it reads top to bottom: device choice,
seeding, loss bookkeeping without per-step device syncs, and graceful stop on signals."""

from __future__ import annotations

import random
import signal
import sys
from collections.abc import Iterable, Iterator
from types import FrameType

import numpy as np
import torch

from util.errors import UserError


def select_device(gpu_ids: list[int], fixed_input_size: bool) -> torch.device:
    """The device for this process: the first GPU of ``gpu_ids``, or the CPU.

    ``fixed_input_size``: every batch has the same shape (a cropping ``--preprocess``). Only then
    does cuDNN's autotuner pay off; with varying sizes (scale_width, none) it would tune again
    for every new shape, which is slower than not tuning."""
    # fastest convolution algorithms; they are not deterministic, so GPU runs are reproducible
    # statistically but not bit for bit (CPU runs are)
    torch.backends.cudnn.benchmark = fixed_input_size
    if not gpu_ids:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        print("note: CUDA is not available; running on the CPU (pass --gpu_ids -1 to silence this)")
        return torch.device("cpu")
    if len(gpu_ids) > 1:
        raise UserError("one process trains on one GPU: pass a single --gpu_ids id")
    if gpu_ids[0] >= torch.cuda.device_count():
        raise UserError(f"--gpu_ids {gpu_ids[0]}: only {torch.cuda.device_count()} CUDA device(s) visible")
    device = torch.device(f"cuda:{gpu_ids[0]}")
    torch.cuda.set_device(device)  # so nothing (pinned-memory thread, new tensors) lands on cuda:0
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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

    def mean(self) -> dict[str, float]:
        """Means since the last call (one sync), then reset."""
        self.check()
        values = (self.sums / max(1, self.count)).tolist()
        self.sums.zero_()
        self.count = 0
        return dict(zip(self.names, values, strict=True))

    def state_dict(self) -> dict:
        """The epoch's running sums, so a resumed run's epoch means match an uninterrupted run."""
        return {"epoch_sums": self.epoch_sums.cpu(), "epoch_count": self.epoch_count}

    def load_state_dict(self, state: dict) -> None:
        self.epoch_sums = state["epoch_sums"].to(self.device)
        self.epoch_count = state["epoch_count"]

    def epoch_mean(self) -> dict[str, float]:
        """Means over the epoch so far, then reset the epoch sums."""
        self.check()
        values = (self.epoch_sums / max(1, self.epoch_count)).tolist()
        self.epoch_sums.zero_()
        self.epoch_count = 0
        return dict(zip(self.names, values, strict=True))


class GracefulStop:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each iteration, so it can save
    ``latest`` and exit cleanly instead of dying mid-write. A second signal while stopping
    is ignored: the save is atomic and short."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulStop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a notebook's worker): no handlers
                pass
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            print(
                f"\n{signal.Signals(signum).name} received: saving 'latest' after this iteration ...", file=sys.stderr
            )
        self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def batches(self, loader: Iterable) -> Iterator:
        """Iterate ``loader``. Once a stop was requested, a failure to fetch the next batch ends
        the iteration instead of propagating: the signal may also have reached a data worker,
        which then left, possibly halfway through handing over a batch (RuntimeError, EOFError,
        ConnectionResetError, ... depending on the moment). The loop saves and exits anyway."""
        iterator = iter(loader)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except Exception:
                if self.requested:
                    return
                raise
            yield batch

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
