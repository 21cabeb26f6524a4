"""User-facing errors.

``UserError`` is raised for bad input (missing folders, unreadable images, bad checkpoints).
The entry points (``train.main``, ``test.main``) catch it and print one line, never a
traceback, then exit with status 2.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user; printed as one line by the entry points."""


class UnreadableImage(UserError):
    """An image file that cannot be decoded (not an image, truncated, corrupt, or larger than PIL's
    decompression-bomb limit). Its own type so the data layer can apply the one policy for such
    files (``data.readable``: replaced at training, skipped at test) instead of stopping the run."""

    def __init__(self, message: str, path: str = "", reason: str = "") -> None:
        # one positional argument suffices to rebuild it (pickling, DataLoader workers)
        super().__init__(message)
        self.path, self.reason = path, reason


def one_line(exc: BaseException) -> str:
    """The last meaningful line of an exception message.

    Errors raised inside DataLoader worker processes come back wrapped with the worker's
    traceback in the message; the original one-line message is its last line.
    """
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    last = lines[-1].strip()
    for prefix in ("util.errors.UserError: ", "UserError: "):
        if last.startswith(prefix):
            return last[len(prefix) :]
    return last
