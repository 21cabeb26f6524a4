"""Monitoring facade: one object the training loop talks to, small backends behind it.

The loss log files are the record of a run and are always written:
``checkpoints/<name>/loss_log.txt`` (the reference's human-readable format) and
``checkpoints/<name>/loss_log.jsonl`` (one JSON object per logged step). Live views (visdom,
the HTML page of visuals) are further backends with the same methods. Only the main process
(rank 0) writes anything; other ranks get a facade whose methods do nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm


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


class ConsoleBackend(Backend):
    """Log lines on the console; ``tqdm.write`` keeps the progress bar intact."""

    def log(self, record: LogRecord) -> None:
        tqdm.write(record.text())

    def log_metrics(
        self, epoch: int, total_iters: int, metrics: dict[str, float], info: dict[str, object] | None = None
    ) -> None:
        if metrics:  # a failed evaluation has printed its warning already
            line = " ".join(f"{k}: {v:.4g}" for k, v in metrics.items())
            tqdm.write(f"(epoch: {epoch}, total: {total_iters}) {line}")


class LossLogBackend(Backend):
    """``loss_log.txt`` and ``loss_log.jsonl``, appended and flushed at every record."""

    def __init__(self, run_dir: Path, resume: bool, total_iters: int = 0) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        mode = "a" if resume else "w"
        self.txt = open(run_dir / "loss_log.txt", mode, encoding="utf-8")
        self.jsonl = open(run_dir / "loss_log.jsonl", mode, encoding="utf-8")
        self.txt.write(f"================ Training Loss ({time.strftime('%c')}) ================\n")
        if resume:
            # Records after the checkpoint's iteration (logged before a crash, or before a NaN
            # stopped the run) are superseded by what follows: readers keep the later ones.
            self.txt.write(f"(resumed at iteration {total_iters})\n")
            self.jsonl.write(
                json.dumps({"kind": "resume", "total_iters": total_iters, "wall_time": time.time()}) + "\n"
            )
            self.jsonl.flush()
        self.txt.flush()

    def log(self, record: LogRecord) -> None:
        self.txt.write(record.text() + "\n")
        self.txt.flush()
        self.jsonl.write(json.dumps({"kind": "train", **asdict(record)}) + "\n")
        self.jsonl.flush()

    def log_metrics(
        self, epoch: int, total_iters: int, metrics: dict[str, float], info: dict[str, object] | None = None
    ) -> None:
        entry = {"kind": "metrics", "epoch": epoch, "total_iters": total_iters, "metrics": metrics, **(info or {})}
        self.jsonl.write(json.dumps(entry) + "\n")
        self.jsonl.flush()

    def close(self) -> None:
        self.txt.close()
        self.jsonl.close()


class Visualizer:
    """What ``train.py`` calls. ``enabled=False`` (non-zero ranks) turns every call into a no-op."""

    def __init__(self, backends: list[Backend], enabled: bool = True) -> None:
        self.backends = backends if enabled else []

    @classmethod
    def for_training(cls, opt, run_dir: Path, resume: bool, total_iters: int = 0, enabled: bool = True) -> Visualizer:
        if not enabled:
            return cls([], enabled=False)
        backends: list[Backend] = [ConsoleBackend(), LossLogBackend(run_dir, resume, total_iters)]
        # Imported here: both modules subclass Backend from this one, and visdom's import is
        # only paid for by runs that use it.
        if opt.display_id > 0:
            from util.visdom_display import VisdomBackend

            backends.append(
                VisdomBackend(
                    server=opt.display_server,
                    port=opt.display_port,
                    env=opt.display_env or opt.name,
                    ncols=opt.display_ncols,
                    winsize=opt.display_winsize,
                    run_name=opt.name,
                )
            )
        if not opt.no_html:
            from util.html_display import HTMLBackend

            backends.append(
                HTMLBackend(
                    Path(run_dir) / "web",
                    run_name=opt.name,
                    update_html_freq=opt.update_html_freq,
                    ncols=opt.display_ncols,
                    winsize=opt.display_winsize,
                    resume=resume,
                )
            )
        return cls(backends)

    def log(self, record: LogRecord) -> None:
        for backend in self.backends:
            backend.log(record)

    def display(self, epoch: int, total_iters: int, visuals: dict[str, torch.Tensor]) -> None:
        for backend in self.backends:
            backend.display(epoch, total_iters, visuals)

    def show_text(self, title: str, text: str) -> None:
        for backend in self.backends:
            backend.show_text(title, text)

    def log_metrics(
        self, epoch: int, total_iters: int, metrics: dict[str, float], info: dict[str, object] | None = None
    ) -> None:
        for backend in self.backends:
            backend.log_metrics(epoch, total_iters, metrics, info)

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
