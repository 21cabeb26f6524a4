"""Monitoring facade: one object the training loop talks to, small backends behind it.

The loss log files are the record of a run and are always written:
``checkpoints/<name>/loss_log.txt`` (the reference's human-readable format) and
``checkpoints/<name>/loss_log.jsonl`` (one JSON object per logged step). Live views (visdom,
the HTML page of visuals, TensorBoard, Weights & Biases) are further backends with the same
methods. Only the main process (rank 0) writes anything; other ranks get a facade whose methods
do nothing (and start no tracker run).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from monitor.base import Backend, LogRecord
from monitor.html_backend import HTMLBackend
from monitor.logs import ConsoleBackend, LossLogBackend

if TYPE_CHECKING:
    from options import Options

__all__ = ["Backend", "LogRecord", "Visualizer"]


class Visualizer:
    """What ``train.py`` calls. ``enabled=False`` (non-zero ranks) turns every call into a no-op."""

    def __init__(self, backends: list[Backend], enabled: bool = True) -> None:
        self.backends = backends if enabled else []

    @classmethod
    def for_training(
        cls, opt: Options, run_dir: Path, resume: bool, total_iters: int = 0, enabled: bool = True
    ) -> Visualizer:
        if not enabled:
            return cls([], enabled=False)
        backends: list[Backend] = [ConsoleBackend(), LossLogBackend(run_dir, resume, total_iters)]
        if opt.display_id > 0:
            from monitor.visdom_backend import VisdomBackend  # visdom's import only for runs that use it

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
        try:
            backends += tracker_backends(opt, Path(run_dir), resume, total_iters)
        except BaseException:  # e.g. wandb could not start a run: close what is open, then say why
            for backend in backends:
                backend.close()
            raise
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


def tracker_backends(opt: Options, run_dir: Path, resume: bool, total_iters: int) -> list[Backend]:
    """``--use_tensorboard`` and ``--use_wandb``; each package is imported only by runs that use it."""
    trackers: list[Backend] = []
    if getattr(opt, "use_tensorboard", False):
        from monitor.tensorboard_backend import TensorBoardBackend, tensorboard_logdir

        logdir = tensorboard_logdir(run_dir, opt.name, getattr(opt, "tensorboard_dir", ""))
        trackers.append(TensorBoardBackend(logdir, start_step=total_iters, resume=resume))
    if getattr(opt, "use_wandb", False):
        from monitor.wandb_backend import WandbBackend

        config = opt.to_dict() if hasattr(opt, "to_dict") else dict(vars(opt))
        try:
            trackers.append(WandbBackend(run_dir, opt.wandb_project_name, opt.name, config, resume=resume))
        except BaseException:
            for tracker in trackers:
                tracker.close()
            raise
    return trackers
