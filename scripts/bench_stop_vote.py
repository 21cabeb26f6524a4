"""What the ranks' per-iteration stop vote (engine.signals.GracefulStop.poll) costs a step.

    OMP_NUM_THREADS=1 python scripts/bench_stop_vote.py [--polls 300] [--step_ms 20]

Starts 2 gloo ranks on this machine (torch.multiprocessing) and times iterations of a stand-in
step (``--step_ms`` of sleep, which leaves the CPU to gloo as a GPU step would) with and without
``poll`` (read the vote the previous poll started, start the next). Prints, on rank 0, the
time per iteration of both and the difference: what the vote adds to a step. Also the vote's
round trip alone (polls back to back), which a step hides.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rank_main(rank: int, port: int, polls: int, step_ms: float) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    from engine import distributed
    from engine.signals import GracefulStop

    distributed.init(60, cuda=False)
    try:
        stop = GracefulStop()

        def timed(step_s: float, vote: bool) -> float:
            distributed.barrier()
            started = time.perf_counter()
            for _ in range(polls):
                time.sleep(step_s)
                if vote:
                    stop.poll()
            return (time.perf_counter() - started) / polls * 1e3

        timed(0.0, True)  # warm-up
        step_s = step_ms / 1e3
        plain, voting, alone = timed(step_s, False), timed(step_s, True), timed(0.0, True)
        if rank == 0:
            print(
                f"2 gloo ranks, {polls} iterations of a {step_ms} ms step: {plain:.3f} ms without the vote, "
                f"{voting:.3f} ms with it ({(voting - plain) * 1e3:+.0f} us per step); polls back to back: "
                f"{alone * 1e3:.0f} us each (the round trip)"
            )
    finally:
        distributed.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=300)
    parser.add_argument("--step_ms", type=float, default=20.0)
    args = parser.parse_args()
    from tests.conftest import find_free_port

    mp.spawn(rank_main, args=(find_free_port(), args.polls, args.step_ms), nprocs=2, join=True)


if __name__ == "__main__":
    main()
