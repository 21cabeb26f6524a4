"""Graceful stop on SIGINT/SIGTERM: the loop saves ``latest`` and exits instead of dying mid-write.

With several processes the ranks must stop at the same iteration (a save is a collective, and a
rank that left early would leave the others waiting in the next step's gradient all-reduce):
``poll`` makes them agree. torchrun's agent forwards a signal to every rank, but not at the same
instant, and a user may signal one rank only: any rank's signal stops all of them.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterable, Iterator
from types import FrameType

from engine import distributed


class GracefulStop:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each iteration, so it can save
    ``latest`` and exit cleanly instead of dying mid-write. A second signal while stopping
    is ignored: the save is atomic and short."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the signal this process received
        self.agreed: int | None = None  # the signal every rank stops for (see ``poll``)
        self._vote: distributed.Vote | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulStop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a notebook's worker): no handlers
                pass
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            print(
                f"\n{signal.Signals(signum).name} received: saving 'latest' after this iteration ...", file=sys.stderr
            )
        self.signum = signum

    @property
    def requested(self) -> bool:
        """This process received a signal."""
        return self.signum is not None

    def poll(self) -> bool:
        """Whether the loop stops after this iteration: every rank calls it once per iteration
        and all get the same answer. A single process stops after the iteration in which the
        signal arrived. With several, each poll starts a vote (the largest signal number any
        rank has received, 0 for none) and reads the one the previous poll started, which has
        long arrived, so no step waits for it: the ranks stop together one iteration after the
        first of them was signalled."""
        if not distributed.active():
            self.agreed = self.signum
            return self.requested
        if self._vote is not None:
            self.agreed = self._vote.result() or self.agreed
        self._vote = distributed.Vote(self.signum or 0)
        return self.stopping

    @property
    def stopping(self) -> bool:
        """The ranks agreed to stop (the last ``poll`` said so)."""
        return self.agreed is not None

    def batches(self, loader: Iterable) -> Iterator:
        """Iterate ``loader``. Once a stop was requested, a failure to fetch the next batch ends
        the iteration instead of propagating: the signal may also have reached a data worker,
        which then left, possibly halfway through handing over a batch (RuntimeError, EOFError,
        ConnectionResetError, ... depending on the moment). The loop saves and exits anyway."""
        iterator = iter(loader)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except Exception:
                if self.requested:
                    return
                raise
            yield batch

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if self._vote is not None and exc_type is None:
            self._vote.result()  # nothing may be in flight when the group is torn down
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
