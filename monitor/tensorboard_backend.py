"""TensorBoard view of a run (``--use_tensorboard``): event files that ``tensorboard --logdir``
shows, written by ``torch.utils.tensorboard`` (which needs the ``tensorboard`` package).

What goes in, each at step ``total_iters`` (train.py's iteration counter, as in loss_log.jsonl):

- scalars (``log``, every ``--print_freq``): ``loss/<name>`` for each loss, ``lr``,
  ``time/compute_per_iter`` and ``time/data_per_iter``, with the record's wall time;
- scalars (``log_metrics``, every ``--eval_freq`` epochs): ``metrics/<key>``, e.g. ``metrics/fid_AtoB``;
- images (``display``, every ``--display_freq``, like visdom): ``visuals/<label>``, the first
  image of the batch of each visual;
- text (``show_text``): the resolved options, under ``options``, at the step the run starts at.

Where: ``<checkpoints_dir>/<name>/tensorboard`` by default, or ``<tensorboard_dir>/<name>``, so
``tensorboard --logdir checkpoints`` (or the shared folder) lists every run by name.

Restarts: a writer opens a new event file in the folder with a "session start" (``purge_step``):
TensorBoard then drops what earlier files of the folder hold at that step or later. A
``--continue_train`` run starts it just after its checkpoint's iteration, so the curves go on from
there (points logged after that checkpoint by a crashed run are superseded, as in
loss_log.jsonl); a fresh run of the same name starts it at 0, so it starts clean without deleting
anything.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from monitor.base import Backend, LogRecord
from monitor.trackers import metric_scalars, record_scalars
from util.image import tensor_to_uint8


def tensorboard_logdir(run_dir: Path, name: str, tensorboard_dir: str = "") -> Path:
    """``<run_dir>/tensorboard``, or ``<tensorboard_dir>/<name>`` when that flag is given."""
    return Path(tensorboard_dir) / name if tensorboard_dir else Path(run_dir) / "tensorboard"


class TensorBoardBackend(Backend):
    """Writes a run's scalars, images and options as TensorBoard events; see the module docstring."""

    def __init__(self, logdir: str | Path, start_step: int = 0, resume: bool = False, flush_secs: int = 30) -> None:
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.start_step = int(start_step)
        # A resumed run keeps what was logged up to its checkpoint's iteration (that step included:
        # the checkpoint holds the state after it); a fresh run hides everything earlier.
        purge_step = self.start_step + 1 if resume else 0
        # The writer's queue is written by a background thread: a log call costs microseconds.
        self.writer = SummaryWriter(str(self.logdir), purge_step=purge_step, flush_secs=flush_secs)

    def log(self, record: LogRecord) -> None:
        for tag, value in record_scalars(record).items():
            self.writer.add_scalar(tag, value, global_step=record.total_iters, walltime=record.wall_time)

    def log_metrics(
        self, epoch: int, total_iters: int, metrics: dict[str, float], info: dict[str, object] | None = None
    ) -> None:
        for tag, value in metric_scalars(metrics).items():  # a failed evaluation has no values: nothing
            self.writer.add_scalar(tag, value, global_step=total_iters)

    def display(self, epoch: int, total_iters: int, visuals: dict[str, torch.Tensor]) -> None:
        for label, image in visuals.items():
            self.writer.add_image(f"visuals/{label}", tensor_to_uint8(image), total_iters, dataformats="HWC")

    def show_text(self, title: str, text: str) -> None:
        # TensorBoard renders text as Markdown: four leading spaces keep the table's columns. At
        # the step this writer starts at, so a resumed run's options follow the earlier ones.
        markdown = "\n".join("    " + line for line in text.splitlines())
        self.writer.add_text(title, markdown, global_step=self.start_step)

    def close(self) -> None:
        self.writer.close()  # flushes the queue
