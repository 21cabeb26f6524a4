"""The record of a run, always written: the console line and ``checkpoints/<name>/loss_log.txt``
(the reference's human-readable format) and ``loss_log.jsonl`` (one JSON object per logged step)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from monitor.base import Backend, LogRecord


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
