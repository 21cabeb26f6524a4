"""Graceful stop on SIGINT/SIGTERM: the loop saves ``latest`` and exits instead of dying mid-write."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterable, Iterator
from types import FrameType


class GracefulStop:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each iteration, so it can save
    ``latest`` and exit cleanly instead of dying mid-write. A second signal while stopping
    is ignored: the save is atomic and short."""

    def __init__(self) -> None:
        self.signum: int | None = None
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
        return self.signum is not None

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

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
