"""What every monitoring backend is: ``LogRecord`` (one logged training step) and ``Backend``
(the methods a view may implement). Backends depend on this module only, so the facade
(``monitor.visualizer``) imports them and nothing imports back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch


@dataclass
class LogRecord:
    """One logged training step: losses averaged since the previous record."""

    epoch: int
    epoch_iter: int
    total_iters: int
    losses: dict[str, float]
    lr: float
    time_per_iter: float  # seconds of compute per iteration (data loading excluded)
    data_time: float  # seconds waiting for data per iteration
    wall_time: float = field(default_factory=time.time)

    def text(self) -> str:
        losses = " ".join(f"{k}: {v:.3f}" for k, v in self.losses.items())
        return (
            f"(epoch: {self.epoch}, iters: {self.epoch_iter}, total: {self.total_iters}, "
            f"time: {self.time_per_iter:.3f}, data: {self.data_time:.3f}, lr: {self.lr:.3g}) {losses}"
        )


class Backend:
    """A monitoring view. Every method is optional; the default does nothing."""

    def log(self, record: LogRecord) -> None:
        pass

    def display(self, epoch: int, total_iters: int, visuals: dict[str, torch.Tensor]) -> None:
        pass

    def show_text(self, title: str, text: str) -> None:
        pass

    def log_metrics(
        self, epoch: int, total_iters: int, metrics: dict[str, float], info: dict[str, object] | None = None
    ) -> None:
        """``metrics``: the values (empty when the evaluation failed); ``info``: what else a
        record keeps (the Inception weights used, ``failed``: why there are no values)."""

    def close(self) -> None:
        pass
