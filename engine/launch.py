"""Several processes without torchrun: ``python train.py --gpu_ids 0,1,2,3`` (the reference's
habit) or ``--gpu_ids -1 --nproc_per_node 2`` (CPU processes on gloo) starts one DDP process
per GPU (or per ``--nproc_per_node``) on this machine through torch's own launcher API, the
elastic agent that torchrun runs: ``elastic_launch`` with a ``LaunchConfig`` like torchrun's
``--standalone`` one (one node, a c10d rendezvous on a port the store picks itself, a fresh run
id, no restarts). Every worker is a fresh ``python -u train.py ARGV`` with the user's argv and
torchrun's variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ...), so ``distributed.launched()``
is true there and it trains exactly as under torchrun (``cuda:LOCAL_RANK`` of the GPUs made
visible to it) instead of launching again.

This process only waits: it does not touch CUDA (it counts the GPUs without creating a
context). A worker that fails prints its own ``train.py: error: rank N: ...``; the agent then
stops the others and this process adds one line and exits with that worker's status. A signal
(Ctrl-C, SIGTERM) is passed on to the workers by the agent, which waits up to 30 s
(``TORCH_ELASTIC_SHUTDOWN_TIMEOUT``) for them before killing them; this process exits with
128+N.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine import distributed
from options import Options, gpu_ids
from util.errors import UserError, one_line

if TYPE_CHECKING:
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

# torchrun's --standalone rendezvous: c10d on this machine, port 0 = the TCP store binds a free
# port itself (no race between finding a port and binding it)
ENDPOINT = "127.0.0.1:0"


def processes(opt: Options) -> int:
    """How many processes the options ask for on this machine: one per GPU of ``--gpu_ids``
    when it lists several, else ``--nproc_per_node`` (options.resolve checks that they agree)."""
    gpus = gpu_ids(opt.gpu_ids)
    return len(gpus) if len(gpus) > 1 else opt.nproc_per_node


def wanted(opt: Options) -> bool:
    """Whether this process should start the workers: several asked for, and not already one
    of a launcher's processes (under torchrun, or a worker started here, it trains itself)."""
    return processes(opt) > 1 and not distributed.launched()


def worker_environment(opt: Options, visible_gpus: int, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables the workers get on top of this process's environment ``environ``.

    GPUs: ``CUDA_VISIBLE_DEVICES`` = the ``--gpu_ids`` (ids among the GPUs visible here, so
    ``CUDA_VISIBLE_DEVICES=4,5,6,7 ... --gpu_ids 0,1`` gives GPUs 4 and 5), so that the worker of
    LOCAL_RANK r trains on the r-th of them. ``visible_gpus``: how many GPUs torch sees here; a
    one-line ``UserError`` when ``--gpu_ids`` names one beyond them. Like torchrun,
    ``OMP_NUM_THREADS=1`` unless it is set."""
    gpus, count = gpu_ids(opt.gpu_ids), processes(opt)
    env = {} if "OMP_NUM_THREADS" in environ else {"OMP_NUM_THREADS": "1"}
    if not gpus:
        return env
    repeated = sorted({i for i in gpus if gpus.count(i) > 1})
    if repeated:
        raise UserError(f"--gpu_ids {opt.gpu_ids} lists GPU {repeated[0]} more than once (one process per GPU)")
    if max(gpus) >= visible_gpus:
        sees = f"only {visible_gpus} GPU(s)" if visible_gpus else "no GPU (CUDA is not available)"
        raise UserError(
            f"--gpu_ids {opt.gpu_ids} asks for {count} GPUs but torch sees {sees}; "
            f"--gpu_ids -1 --nproc_per_node {count} trains {count} CPU processes instead"
        )
    inherited = environ.get("CUDA_VISIBLE_DEVICES")
    if inherited is not None:  # ids count among the GPUs this process sees
        names = [name.strip() for name in inherited.split(",")]
        return {**env, "CUDA_VISIBLE_DEVICES": ",".join(names[i] for i in gpus)}
    return {**env, "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))}


def launch_config(opt: Options, run_id: str | None = None):  # -> LaunchConfig (torch imported lazily)
    """torchrun --standalone's ``LaunchConfig`` for ``processes(opt)`` workers on this machine."""
    from torch.distributed.launcher.api import LaunchConfig

    return LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=processes(opt),
        run_id=run_id or str(uuid.uuid4()),
        role="train",
        rdzv_backend="c10d",
        rdzv_endpoint=ENDPOINT,
        local_addr="127.0.0.1",  # the workers' MASTER_ADDR: no host name lookup, one machine
        max_restarts=0,  # a failing worker ends the job, as --max_restarts 0 does under torchrun
    )


# A worker whose collective failed because another worker is gone (distributed.lost_peer)
# stops with this status and one line instead of a traceback (train.main); the launcher reports
# the worker that failed first on its own.
PEER_LEFT = 4
PEER_LEFT_GRACE_S = 5.0  # how long it waits before exiting (train.main says why)


def root_cause(failures: Mapping[int, ProcessFailure]) -> tuple[int, ProcessFailure]:
    """The failed worker to report, ``(rank, ProcessFailure)``: one that failed on its own
    before one killed by a signal, before one that only lost its peers (``PEER_LEFT``), before
    one the agent stopped with SIGTERM; then the earliest, then the lowest rank."""

    def order(item: tuple[int, ProcessFailure]) -> tuple[int, int, int]:
        rank, failure = item
        code = failure.exitcode
        kind = 3 if code == -signal.SIGTERM else 2 if code == PEER_LEFT else 1 if code < 0 else 0
        return kind, failure.timestamp, rank

    return min(failures.items(), key=order)


def visible_gpu_count() -> int:
    """The GPUs torch sees here, counted without initialising CUDA (NVML where it can)."""
    import torch

    return torch.cuda.device_count()


def launch(opt: Options, argv: Sequence[str], script: str | Path) -> int:
    """Run ``python -u script *argv`` as ``processes(opt)`` workers and wait for them. Returns 0
    when all succeeded, else the status of the first worker that failed (128+N for a signal N),
    or 128+N when this process was stopped by signal N."""
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous import RendezvousError
    from torch.distributed.launcher.api import elastic_launch

    env = worker_environment(opt, visible_gpu_count() if gpu_ids(opt.gpu_ids) else 0, os.environ)
    config, count = launch_config(opt), processes(opt)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the agent starts every worker with this process's environment
    # the agent's log lines (whom it signals, who failed) say what the one line below says;
    # LOGLEVEL (torchrun's variable, e.g. INFO) shows them
    quiet = "LOGLEVEL" not in os.environ
    if quiet:
        logging.disable(logging.CRITICAL)
    try:
        elastic_launch(config, entrypoint=sys.executable)("-u", str(Path(script).resolve()), *argv)
        return 0
    except ChildFailedError as e:
        rank, failure = root_cause(e.failures)
        code = failure.exitcode
        status = 128 - code if code < 0 else code
        how = f"was killed by {signal_name(-code)}" if code < 0 else f"exited with status {status}"
        print(f"train.py: rank {rank} of {count} {how}; the other processes were stopped", file=sys.stderr)
        return status
    except SignalException as e:  # the agent has passed the signal on and waited for the workers
        print(f"train.py: {signal_name(e.sigval)} received: the {count} processes were stopped", file=sys.stderr)
        return 128 + int(e.sigval)
    except KeyboardInterrupt:  # Ctrl-C before the agent installed its handlers
        print("train.py: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except RendezvousError as e:
        print(f"train.py: error: the processes could not meet: {one_line(e)}", file=sys.stderr)
        return 1
    finally:  # as it was (train.main may run inside a longer-lived process)
        if quiet:
            logging.disable(logging.NOTSET)
        for key, value in saved.items():
            if value is None:
                del os.environ[key]
            else:
                os.environ[key] = value


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
