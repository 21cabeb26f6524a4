"""A training run's folder: the checkpoint it resumes from, its options file and its saves.

``checkpoints/<name>/``: ``opt.yaml`` (the options in force), ``latest.pth`` and the other
checkpoints (``engine.checkpoint`` has the format, ``engine.saving`` the policy).

With several processes what differs from rank to rank (image pools, random state, the epoch's
loss sums) is saved too: rank 0's in the checkpoint itself, every other rank's in a shard of
its own, ``<tag>.ranks/<token>/rank_<r>.pth``, so that a resume with as many processes is
exact. One save's shards are written under a fresh token first; then the checkpoint, naming
the token, is renamed into place: that rename commits the whole set. A crash at any moment
leaves the previous checkpoint and the set it names intact; sets that no checkpoint names are
deleted after the next save.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from engine import distributed
from engine.checkpoint import (
    checkpoint_path,
    is_training_state,
    load_checkpoint,
    load_tagged,
    remove_shard_sets,
    rng_state,
    save_checkpoint,
    set_rng_state,
    shard_file,
    shard_folder,
)
from engine.position import RunPosition
from engine.saving import Save
from engine.tracking import LossTracker
from options import FIXED, INVOCATION, save_options
from util.errors import UserError
from util.fileio import WriteFailed, check_writable, remove_partial_writes
from util.seeds import stream_seed

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
        distributed.print0(
            "note: resuming with changed options: " + ", ".join(f"--{k} {current[k]} (was {saved[k]})" for k in changed)
        )
    epoch_count = saved.get("epoch_count", opt.epoch_count)
    if opt.epoch_count != epoch_count:
        distributed.print0(
            f"note: --epoch_count {opt.epoch_count} ignored: the checkpoint continues at epoch {state['epoch']}"
        )
    return opt.replace(epoch_count=epoch_count)


class Run:
    def __init__(self, opt: Options) -> None:
        self.dir = Path(opt.checkpoints_dir) / opt.name
        # torchrun restarted this job (--max_restarts): continue from the latest save it made
        self.restarted = distributed.restart_count() > 0 and bool(distributed.broadcast_object(self._saved_by_job()))
        # --continue_train from our own checkpoint: read it first, its options and schedule hold
        path = checkpoint_path(self.dir, "latest" if self.restarted else opt.epoch)
        self.resumed = load_checkpoint(path) if (opt.continue_train or self.restarted) and path.is_file() else None
        self.resumed_from = str(path)
        # a weights-only file (converted from the reference's): resumed like the reference's files
        self.weights_only: dict | None = None
        if self.resumed is not None and not is_training_state(self.resumed):
            self.weights_only, self.resumed = self.resumed, None
        # the iteration of the last ``latest`` on disk, for the message when a save fails
        self.latest_iters: int | None = (
            self.resumed["total_iters"] if self.resumed is not None and path.name == "latest.pth" else None
        )

    def check_writable(self) -> None:
        """Fail now, in one line, when the run's folder cannot be written (a read-only mount,
        another user's folder, a full disk): not after hours of training, at the first save.
        Every rank checks (ranks > 0 write their shards there too)."""
        hint = "pick another --checkpoints_dir (or fix its permissions)"
        check_writable(self.dir, "the checkpoints folder", hint, keep=True)

    def _saved_by_job(self) -> bool:
        """Whether ``latest.pth`` was saved by this job, i.e. after the ``opt.yaml`` its first
        attempt wrote when it started (an older one belongs to an earlier run of this name)."""
        latest, options = checkpoint_path(self.dir, "latest"), self.dir / "opt.yaml"
        return latest.is_file() and options.is_file() and latest.stat().st_mtime_ns >= options.stat().st_mtime_ns

    def options(self, opt: Options) -> Options:
        if self.restarted:
            distributed.print0(
                f"note: torchrun restarted the job (restart {distributed.restart_count()}): resuming "
                f"{self.resumed_from}, its latest save"
            )
            opt = opt.replace(continue_train=True, epoch="latest")
        return resume_options(opt, self.resumed) if self.resumed is not None else opt

    def start(self, opt: Options, model: BaseModel, tracker: LossTracker) -> RunPosition:
        """Where training starts: ``--epoch_count`` for a fresh run; for ``--continue_train``
        exactly where the checkpoint stopped (the reference's weight files: their weights only,
        at ``--epoch_count``). Then rank 0 writes ``opt.yaml``; later saves are of this model."""
        self.opt, self.model, self.tracker = opt, model, tracker
        position = self._restore() if opt.continue_train else RunPosition(opt.epoch_count)
        if distributed.is_main():
            self.dir.mkdir(parents=True, exist_ok=True)
            # A process killed while saving (SIGKILL, pre-emption) leaves the temporary file of
            # that save behind, as big as a checkpoint; no other process writes here now.
            # (Unnamed per-rank shard sets are removed by the next save, see ``save``.)
            leftovers = remove_partial_writes(self.dir, self.dir / "web", self.dir / "web" / "images")
            if leftovers:
                distributed.print0(f"note: removed {len(leftovers)} partial file(s) left by an interrupted save")
            save_options(opt, self.dir / "opt.yaml")
        distributed.barrier()
        return position

    def _restore(self) -> RunPosition:
        opt, model, state = self.opt, self.model, self.resumed
        if state is None:  # the reference's files, or a weights-only file of ours: weights only
            if self.weights_only is not None:
                state, source = self.weights_only, self.resumed_from
            else:
                state, source = load_tagged(self.dir, opt.epoch, [model.checkpoint_key(n) for n in model.nets])
            model.load_networks(state["nets"], source)
            distributed.print0(
                f"note: resumed the weights of {source}; optimizer state, image pools and data order start "
                f"afresh at epoch {opt.epoch_count}"
            )
            return RunPosition(opt.epoch_count)
        same_world = check_world_size(state, self.resumed_from)
        model.load_state_dict(state, source=self.resumed_from)
        if same_world and (distributed.rank() == 0 or "rank_shards" in state):
            own = self._rank_shard(state)  # rank 0's part is the checkpoint's own
            if "pools" in own:
                model.load_pools(own["pools"])
            self.tracker.load_state_dict(own["tracker"])
            set_rng_state(own["rng"], model.device)
        else:  # another number of processes, or a lean checkpoint's rank > 0: this rank's part afresh
            if not same_world:
                model.reset_pools()
            self.tracker.load_state_dict(state["tracker"])
            torch.manual_seed(stream_seed(opt.seed, "resume", state["total_iters"], distributed.rank()))
        distributed.print0(
            f"resumed from {self.resumed_from}: epoch {state['epoch']}, iteration {state['total_iters']}"
        )
        if any(key not in state for key in RESUME_ONLY):
            distributed.print0(
                f"note: {self.resumed_from} holds weights, schedule and position only: optimizer moments and "
                "image pools start afresh (latest.pth, or checkpoints saved with --full_checkpoints, resume exactly)"
            )
        return RunPosition.from_state(state)

    def _rank_shard(self, state: dict) -> dict:
        """This rank's pools, random state and loss sums from the checkpoint ``state``."""
        rank = distributed.rank()
        if rank == 0:
            return state
        path = shard_file(self.dir, state["rank_shards"], rank)
        if not path.is_file():
            raise UserError(
                f"{self.resumed_from} names the per-rank state {path}, which is missing: was {self.dir} "
                "copied without its .ranks folders? Copy them too, or resume with another number of processes"
            )
        shard = load_checkpoint(path)
        if (shard.get("rank"), shard.get("total_iters")) != (rank, state["total_iters"]):
            raise UserError(f"{path} does not belong to {self.resumed_from} (another rank or iteration)")
        return shard

    def _rank_state(self) -> dict:
        """What differs from rank to rank: image pools, random state, the epoch's loss sums."""
        return {
            "pools": self.model.pools_state(),
            "tracker": self.tracker.state_dict(),
            "rng": rng_state(self.model.device),
        }

    def save(self, saves: list[Save], position: RunPosition) -> Path:
        """Write ``saves`` of the current position (atomically; with several processes each rank
        first writes its shard of the full saves, then rank 0 commits them, see the module's
        note), then every rank waits (so none reads a half-written file); returns the path of
        ``latest``. Every rank calls it with the same ``saves``."""
        if not saves:
            return checkpoint_path(self.dir, "latest")
        self.tracker.check_all_ranks()  # never overwrite a good checkpoint with NaN weights
        world, rank = distributed.world_size(), distributed.rank()
        token = distributed.broadcast_object(f"it{position.total_iters}-{uuid.uuid4().hex[:8]}") if world > 1 else ""
        sharded = {save.tag for save in saves if save.full and world > 1}
        if sharded and rank > 0:
            shard = {"rank": rank, "world_size": world, "total_iters": position.total_iters, **self._rank_state()}
            for tag in sharded:
                try:
                    save_checkpoint(shard_file(self.dir, shard_folder(tag, token), rank), shard)
                except WriteFailed as e:
                    raise UserError(f"{e}; {self._what_is_kept(e)}") from e
        if sharded:
            distributed.barrier()  # every shard is on disk before a checkpoint names it
        if rank == 0:
            state = {
                **position.state_dict(),
                "options": self.opt.to_dict(),
                **self.model.state_dict(),
                "tracker": self.tracker.state_dict(),
                "rng": rng_state(self.model.device),
                # with several processes: the position in the epoch counts one rank's samples
                **({"world_size": world} if world > 1 else {}),
            }
            lean = lean_state(state)
            for save in saves:
                content = state if save.full else lean
                if save.tag in sharded:  # the rename of this file commits the shards it names
                    content = {**state, "rank_shards": shard_folder(save.tag, token)}
                try:
                    save_checkpoint(checkpoint_path(self.dir, save.tag), content)
                except WriteFailed as e:
                    raise UserError(f"{e}; {self._what_is_kept(e)}") from e
                if save.tag == "latest":
                    self.latest_iters = position.total_iters
            for save in saves:  # the sets no checkpoint names any more
                keep = shard_folder(save.tag, token) if save.tag in sharded else None
                remove_shard_sets(self.dir, save.tag, keep)
        distributed.barrier()
        return checkpoint_path(self.dir, "latest")

    def _what_is_kept(self, failure: WriteFailed) -> str:
        """What a user whose save failed still has, and what to do (the save was atomic)."""
        latest = checkpoint_path(self.dir, "latest")
        fix = "free space" if failure.disk_full else "make the folder writable"
        if not latest.is_file():
            return f"nothing of this run was saved yet: {fix} (or pick another --checkpoints_dir) and start again"
        which = f" (iteration {self.latest_iters})" if self.latest_iters is not None else ""
        return (
            f"{latest}{which} is intact: {fix} (or move the run folder to another disk and pass that "
            "--checkpoints_dir) and resume with --continue_train"
        )

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
        if distributed.is_main():
            print(
                f"stopped at iteration {position.total_iters}; saved {saved}; resume with --continue_train",
                file=sys.stderr,
            )
        return 128 + signum


def check_world_size(state: dict, source: str) -> bool:
    """Whether this run resumes ``state`` exactly: with as many processes as saved it. With
    another number it still resumes the weights, optimizers and schedule exactly, and every rank
    starts its pools and random stream afresh (said); but a checkpoint's position inside an
    epoch counts the samples of one of its processes, so mid-epoch it needs as many processes
    as wrote it (a one-line error otherwise); at an epoch's end any number will do."""
    saved, now = state.get("world_size", 1), distributed.world_size()
    if saved != now and state["epoch_samples"] > 0:
        raise UserError(
            f"{source} was saved by {saved} process(es) in the middle of epoch {state['epoch']}; resume it "
            f"with {saved} (this run has {now}: e.g. --nproc_per_node {saved}, or as many --gpu_ids), or from a "
            "checkpoint saved at an epoch's end"
        )
    if saved == now:
        return True
    distributed.print0(
        f"note: resuming with {now} process(es) ({source}: {saved}): weights, optimizers, schedule and "
        "position resume exactly; every rank's image pools and random state start afresh (reseeded)"
    )
    return False


def describe(model: BaseModel, epoch_length: int, iterations: int, opt: Options) -> None:
    """On rank 0: the dataset, the parameters, and with several processes the effective batch."""
    if not distributed.is_main():
        return
    counts = ", ".join(f"{name} {n / 1e6:.3f} M" for name, n in model.parameter_counts().items())
    world = distributed.world_size()
    per_rank = f" per process, {world} processes" if world > 1 else ""
    print(f"dataset: {epoch_length} items per epoch{per_rank} ({iterations} iterations); parameters: {counts}")
    if (slow := model.fast.warning()) is not None:
        print(f"train.py: warning: {slow}", file=sys.stderr)
    if world > 1:
        print(
            f"batch: --batch_size {opt.batch_size} per process x {world} processes = {opt.batch_size * world} "
            "per step (the learning rate is not scaled)"
        )
    if opt.verbose:
        for name, net in model.nets.items():
            print(f"[{name}]\n{net}")
