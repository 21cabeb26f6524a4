"""DataLoader workers that die mid-epoch (the kernel's OOM killer, a stray ``kill -9``, a crash in an
image decoder): the loader restarts at the exact sample, and the run goes on as if nothing happened.

torch notices a dead worker in two ways. Its SIGCHLD handler raises a RuntimeError in the main
process at whatever bytecode runs at that moment: in the middle of an optimiser step (G updated,
D not) or of a save. And a fetch that has waited ``MP_STATUS_CHECK_INTERVAL`` (5 s) for a batch
finds the worker dead and raises. Only the second leaves a consistent training state, so
``epoch_batches`` puts SIGCHLD back to its default once the epoch's iterator exists (torch
installs its handler once per process, with the first iterator). A death is then seen where the
next batch is fetched, when the model has done every batch the position counts; a fresh iterator
from ``position.epoch_samples`` gives exactly the batches an uninterrupted run gets, because a
sample's randomness comes from (seed, epoch, index), never from the worker that loads it.

A worker that dies again before a single batch arrived after a restart is a fault that a restart
does not cure (every worker killed at once, memory too short for any): ``WorkerLost``, and
train.py saves ``latest`` and stops with one line.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

from torch.utils.data import DataLoader
from tqdm import tqdm

from data import EpochSampler
from engine.position import RunPosition


class WorkerLost(RuntimeError):
    """Loader workers died twice at the same position: restarting does not help."""


def dead_workers(iterator: object, wait_s: float = 1.0) -> str | None:
    """Which workers of a DataLoader iterator have ended and how ("data loader worker (pid 7) was
    killed by SIGKILL"); None when all are alive.

    A worker's death shows in more than torch's own message ("DataLoader worker (pid(s) N) exited
    unexpectedly"): a batch whose tensors the dead worker was still handing over fails to unpickle
    (ConnectionResetError, EOFError, FileNotFoundError, ...), a moment before the process is
    reaped; so this waits up to ``wait_s`` for one to end. torch keeps the iterator's worker
    processes in ``_workers`` (read here, never changed)."""
    workers = list(getattr(iterator, "_workers", []))  # none: --num_threads 0
    deadline = time.monotonic() + wait_s
    while workers:
        dead = [worker for worker in workers if worker.exitcode is not None]
        if dead:
            return _describe(dead)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    return None


def _describe(dead: list) -> str:
    pids = ", ".join(str(worker.pid) for worker in dead)
    codes = {worker.exitcode for worker in dead}
    code = codes.pop() if len(codes) == 1 else None
    if code is None:
        how = "died"
    elif code >= 0:
        how = f"exited with status {code}"
    else:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        how = f"{'was' if len(dead) == 1 else 'were'} killed by {name}"
    return f"data loader worker (pid {pids}) {how}" if len(dead) == 1 else f"data loader workers (pids {pids}) {how}"


def defer_worker_deaths(loader: DataLoader) -> None:
    """Switch off torch's asynchronous SIGCHLD error (see the module's note); the loader's fetch
    still reports a dead worker, at a point where the state is consistent."""
    if loader.num_workers > 0 and hasattr(signal, "SIGCHLD") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def epoch_batches(
    loader: DataLoader, sampler: EpochSampler, position: RunPosition, stopping: Callable[[], bool]
) -> Iterator[dict]:
    """The rest of the epoch from ``position`` on; when a worker dies, the same from a fresh
    iterator at the position reached (``position`` advances as the caller trains on each batch).
    ``stopping()``: a stop was requested (a SIGTERM may also have ended the workers): no restart."""
    restarted_at: int | None = None
    while True:
        sampler.set_epoch(position.epoch, start=position.epoch_samples)
        iterator = iter(loader)
        defer_worker_deaths(loader)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except Exception:
                if stopping() or (what := dead_workers(iterator)) is None:
                    raise  # an error of the dataset's code (re-raised from its worker), or a stop
                break
            yield batch
        iterator = None  # shuts the remaining workers down before new ones start
        where = f"iteration {position.total_iters} (epoch {position.epoch}, sample {position.epoch_samples})"
        if restarted_at == position.total_iters:
            raise WorkerLost(f"{what} again right after the data loader was restarted at {where}")
        restarted_at = position.total_iters
        tqdm.write(
            f"train.py: warning: {what} (out of memory?); restarting the data loader at {where}: "
            "training goes on exactly as it would have",
            file=sys.stderr,
        )
