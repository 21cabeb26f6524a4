"""The process group of a multi-process run (edm's ``distributed.py`` shape).

``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``) starts one process per GPU; ``init`` joins them into one group: NCCL when
the processes train on GPUs, gloo on the CPU. Without those variables nothing is initialised,
the world size is 1 and every helper here is a no-op, so a single-process run is exactly what it
was before DDP. ``destroy`` is safe to call in any state (train.py calls it on every exit path).
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


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
    dist.init_process_group(
        backend="nccl" if cuda else "gloo",
        init_method="env://",
        timeout=timedelta(seconds=timeout_s),
        **({"device_id": torch.device("cuda", local_rank())} if cuda else {}),
    )


def destroy() -> None:
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


def process_gpu_ids(gpu_ids: list[int]) -> list[int]:
    """The GPU this process trains on: under a launcher, ``cuda:LOCAL_RANK`` of the visible GPUs
    (choose them with ``CUDA_VISIBLE_DEVICES``) whenever ``--gpu_ids`` asks for a GPU; else
    ``--gpu_ids`` itself (one id, or none for the CPU)."""
    return [local_rank()] if active() and gpu_ids else gpu_ids
