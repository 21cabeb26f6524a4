"""A training run's folder: the checkpoint it resumes from, its options file and its saves.

``checkpoints/<name>/``: ``opt.yaml`` (the options in force), ``latest.pth`` and the other
checkpoints (``engine.checkpoint`` has the format, ``engine.saving`` the policy).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from engine import distributed
from engine.checkpoint import checkpoint_path, load_checkpoint, load_tagged, rng_state, save_checkpoint, set_rng_state
from engine.position import RunPosition
from engine.saving import Save
from engine.tracking import LossTracker
from options import FIXED, INVOCATION, save_options
from util.errors import UserError

if TYPE_CHECKING:
    from models import BaseModel
    from options import Options

# What only an exact resume needs, and most of a checkpoint's bytes: Adam's two moments per weight
# and the image pools (50 images each).
RESUME_ONLY = ("optimizers", "pools")


def lean_state(state: dict) -> dict:
    """A checkpoint without ``RESUME_ONLY``: weights, schedule and position, about the
    reference's size. ``--continue_train`` from it resumes the weights and the schedule exactly
    and starts the optimizers and pools afresh."""
    return {key: value for key, value in state.items() if key not in RESUME_ONLY}


def resume_options(opt: Options, state: dict) -> Options:
    """The options a resumed run trains with, given the checkpoint ``state`` it resumes. A flag
    that shapes the checkpoint (the FIXED scope: architecture, domains, seed, LR policy, pool
    size) cannot change: a one-line error naming it. Any other changed flag is honoured (``--lr``
    and the schedule included, see ``BaseModel.load_state_dict``) and said. ``--epoch_count`` is
    the run's own: its schedule was built with it (the reference's users pass it by hand)."""
    saved, current = state["options"], opt.to_dict()
    fixed = [key for key in opt.keys_in(FIXED) if key in saved and current.get(key) != saved[key]]
    if fixed:
        changes = ", ".join(f"--{key} {current.get(key)} (the checkpoint's: {saved[key]})" for key in fixed)
        raise UserError(
            f"--continue_train cannot change {changes}: it is part of what the checkpoint holds; "
            f"drop the flag, or start a new run with another --name"
        )
    own = set(opt.keys_in(INVOCATION)) | {"epoch_count"}
    changed = [key for key in sorted(current) if key in saved and current[key] != saved[key] and key not in own]
    if changed:
        print(
            "note: resuming with changed options: " + ", ".join(f"--{k} {current[k]} (was {saved[k]})" for k in changed)
        )
    epoch_count = saved.get("epoch_count", opt.epoch_count)
    if opt.epoch_count != epoch_count:
        print(f"note: --epoch_count {opt.epoch_count} ignored: the checkpoint continues at epoch {state['epoch']}")
    return opt.replace(epoch_count=epoch_count)


class Run:
    def __init__(self, opt: Options) -> None:
        self.dir = Path(opt.checkpoints_dir) / opt.name
        # --continue_train from our own checkpoint: read it first, its options and schedule hold
        path = checkpoint_path(self.dir, opt.epoch)
        self.resumed = load_checkpoint(path) if opt.continue_train and path.is_file() else None
        self.resumed_from = str(path)

    def options(self, opt: Options) -> Options:
        return resume_options(opt, self.resumed) if self.resumed is not None else opt

    def start(self, opt: Options, model: BaseModel, tracker: LossTracker) -> RunPosition:
        """Where training starts: ``--epoch_count`` for a fresh run; for ``--continue_train``
        exactly where the checkpoint stopped (the reference's weight files: their weights only,
        at ``--epoch_count``). Then rank 0 writes ``opt.yaml``; later saves are of this model."""
        self.opt, self.model, self.tracker = opt, model, tracker
        position = self._restore() if opt.continue_train else RunPosition(opt.epoch_count)
        if distributed.is_main():
            self.dir.mkdir(parents=True, exist_ok=True)
            save_options(opt, self.dir / "opt.yaml")
        distributed.barrier()
        return position

    def _restore(self) -> RunPosition:
        opt, model, state = self.opt, self.model, self.resumed
        if state is None:
            state, source = load_tagged(self.dir, opt.epoch, [model.checkpoint_key(n) for n in model.nets])
            model.load_networks(state["nets"], source)
            print(
                f"note: resumed the weights of {source}; optimizer state, image pools and data order start "
                f"afresh at epoch {opt.epoch_count}"
            )
            return RunPosition(opt.epoch_count)
        check_world_size(state, self.resumed_from)
        model.load_state_dict(state, source=self.resumed_from)
        self.tracker.load_state_dict(state["tracker"])
        set_rng_state(state["rng"], model.device)
        print(f"resumed from {self.resumed_from}: epoch {state['epoch']}, iteration {state['total_iters']}")
        if any(key not in state for key in RESUME_ONLY):
            print(
                f"note: {self.resumed_from} holds weights, schedule and position only: optimizer moments and "
                "image pools start afresh (latest.pth, or checkpoints saved with --full_checkpoints, resume exactly)"
            )
        return RunPosition.from_state(state)

    def save(self, saves: list[Save], position: RunPosition) -> Path:
        """Rank 0 writes ``saves`` of the current position (atomically), then every rank waits for
        it (so none reads a half-written file); returns the path of ``latest``. Every rank calls
        it with the same ``saves``."""
        if saves and distributed.is_main():
            self.tracker.check()  # never overwrite a good checkpoint with NaN weights
            state = {
                **position.state_dict(),
                "options": self.opt.to_dict(),
                **self.model.state_dict(),
                "tracker": self.tracker.state_dict(),
                "rng": rng_state(self.model.device),
                # with several processes: the position in the epoch counts one rank's samples
                **({"world_size": distributed.world_size()} if distributed.world_size() > 1 else {}),
            }
            lean = lean_state(state)
            for save in saves:
                save_checkpoint(checkpoint_path(self.dir, save.tag), state if save.full else lean)
        if saves:
            distributed.barrier()
        return checkpoint_path(self.dir, "latest")

    def nothing_to_do(self, position: RunPosition, planned: int) -> int:
        """The run is already at its end; ``--max_iters 0`` keeps the initial weights (an untrained
        baseline to test)."""
        if position.total_iters == 0 and self.opt.max_iters == 0:
            saved = self.save([Save("latest", True)], position)
            distributed.print0(f"--max_iters 0: saved the initial weights as {saved}")
        else:
            distributed.print0(f"nothing to do: {position.total_iters} of {planned} iterations done")
        return 0

    def stopped(self, position: RunPosition, saved: Path, signum: int | None) -> int:
        """Say where an early stop left the run; the exit status (128 + N for signal N)."""
        if signum is None:
            distributed.print0(f"reached --max_iters {self.opt.max_iters}; saved {saved}")
            return 0
        print(
            f"stopped at iteration {position.total_iters}; saved {saved}; resume with --continue_train", file=sys.stderr
        )
        return 128 + signum


def check_world_size(state: dict, source: str) -> None:
    """A checkpoint's position inside an epoch counts the samples of one of its processes, so a
    run resumes mid-epoch only with as many processes as wrote it; at an epoch's end any number
    will do. With several processes every rank resumes rank 0's image pools and random state
    (not yet an exact resume: that needs every rank's, the README says)."""
    saved, now = state.get("world_size", 1), distributed.world_size()
    if saved != now and state["epoch_samples"] > 0:
        raise UserError(
            f"{source} was saved by {saved} process(es) in the middle of epoch {state['epoch']}; resume it "
            f"with {saved} (this run has {now}), or from a checkpoint saved at an epoch's end"
        )
    if max(saved, now) > 1:
        distributed.print0(
            f"note: resuming with {now} process(es) ({source}: {saved}): every rank continues from rank 0's "
            "image pools and random state, so this resume is not exact"
        )


def describe(model: BaseModel, epoch_length: int, iterations: int, opt: Options) -> None:
    """On rank 0: the dataset, the parameters, and with several processes the effective batch."""
    if not distributed.is_main():
        return
    counts = ", ".join(f"{name} {n / 1e6:.3f} M" for name, n in model.parameter_counts().items())
    world = distributed.world_size()
    per_rank = f" per process, {world} processes" if world > 1 else ""
    print(f"dataset: {epoch_length} items per epoch{per_rank} ({iterations} iterations); parameters: {counts}")
    if world > 1:
        print(
            f"batch: --batch_size {opt.batch_size} per process x {world} processes = {opt.batch_size * world} "
            "per step (the learning rate is not scaled)"
        )
    if opt.verbose:
        for name, net in model.nets.items():
            print(f"[{name}]\n{net}")
