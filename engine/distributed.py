"""The process group of a multi-process run (edm's ``distributed.py`` shape).

``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``) starts one process per GPU; ``init`` joins them into one group: NCCL when
the processes train on GPUs, gloo on the CPU. Without those variables nothing is initialised,
the world size is 1 and every helper here is a no-op, so a single-process run is exactly what it
was before DDP. ``destroy`` is safe to call in any state (train.py calls it on every exit path).

Control messages (``Vote``: "has any rank been asked to stop?", ``broadcast_object``) travel on
gloo: with NCCL ``init`` opens a small gloo group for them, so that a question the host asks
never waits behind GPU work; on the CPU the group itself is gloo.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta

import torch
import torch.distributed as dist

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

_control: dist.ProcessGroup | None = None  # gloo, for Vote


def launched() -> bool:
    """Whether a launcher (torchrun) started this process as one rank of a group (of any size:
    ``--nproc_per_node 1`` joins a group of 1, which then trains exactly as a plain process)."""
    return all(name in os.environ for name in LAUNCHER_VARIABLES)


def init(timeout_s: float, cuda: bool) -> None:
    """Join the launcher's process group (nothing when not launched). ``cuda``: this process
    trains on a GPU (then ``cuda:LOCAL_RANK`` is made the current device and NCCL is used);
    ``timeout_s``: how long a collective (a barrier while rank 0 evaluates, say) may wait."""
    if not launched() or dist.is_initialized():
        return
    if cuda:
        torch.cuda.set_device(local_rank())
    timeout = timedelta(seconds=timeout_s)
    store, rank, world = next(dist.rendezvous("env://", timeout=timeout))
    # torchrun's agent keeps one store for every attempt of a job (--max_restarts), and the
    # addresses that gloo (or NCCL) publishes there outlive the ranks that wrote them: a
    # restarted rank could read its dead predecessor's and fail with "Connection refused" (it
    # did, one restart in two, on torch 2.14). A prefix per attempt keeps attempts apart.
    store = dist.PrefixStore(f"cyclegan/attempt_{restart_count()}", store)
    dist.init_process_group(
        backend="nccl" if cuda else "gloo",
        store=store,
        rank=rank,
        world_size=world,
        timeout=timeout,
        **({"device_id": torch.device("cuda", local_rank())} if cuda else {}),
    )
    global _control
    _control = dist.new_group(backend="gloo") if cuda else dist.group.WORLD


def restart_count() -> int:
    """How often torchrun's agent has restarted this job's processes (``--max_restarts``): 0 on
    the first attempt and without a launcher."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def destroy() -> None:
    global _control
    _control = None
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    """Whether there are other processes to work with (a group of more than one)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def print0(*args: object, **kwargs: object) -> None:
    """``print`` on rank 0 only."""
    if is_main():
        print(*args, **kwargs)  # type: ignore[call-overload]


def barrier() -> None:
    if active():
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``tensor`` over all ranks (in place; returned). Every rank must
    call it, in the same order."""
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def lost_peer(error: BaseException) -> str | None:
    """If ``error`` is a collective failing because another rank is gone (killed, crashed, its
    node lost, or silent past ``--dist_timeout``), what the backend said, in one line; else None.
    gloo says it with a RuntimeError ("Connection reset by peer"), NCCL with a DistError."""
    if not active() or not isinstance(error, RuntimeError):
        return None
    text = " ".join(str(error).split())
    if not isinstance(error, dist.DistError) and not any(
        word in text for word in ("gloo", "Connection reset", "Connection closed", "NCCL", "Timed out", "timed out")
    ):
        return None
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)  # the C++ source location
    return text.split(". ")[0].rstrip(".")


def broadcast_object(value: object) -> object:
    """Rank 0's ``value`` on every rank (a small picklable object)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, group=_control)
    return box[0]


class Vote:
    """The maximum over the ranks of a small non-negative integer, started now and read later
    (``result``), on the gloo control group: nothing waits for it meanwhile. Every rank must
    start the same votes in the same order. A single process: the value itself."""

    def __init__(self, value: int) -> None:
        self._value = torch.tensor([value], dtype=torch.int64)
        self._work = (
            dist.all_reduce(self._value, op=dist.ReduceOp.MAX, group=_control, async_op=True) if active() else None
        )

    def result(self) -> int:
        if self._work is not None:
            self._work.wait()
            self._work = None
        return int(self._value.item())


def process_gpu_ids(gpu_ids: list[int]) -> list[int]:
    """The GPU this process trains on: under a launcher, ``cuda:LOCAL_RANK`` of the visible GPUs
    (choose them with ``CUDA_VISIBLE_DEVICES``) whenever ``--gpu_ids`` asks for a GPU; else
    ``--gpu_ids`` itself (one id, or none for the CPU)."""
    return [local_rank()] if active() and gpu_ids else gpu_ids
