"""Atomic file writes: a crash or a full disk never leaves a half-written checkpoint or page."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from util.errors import UserError

# Why a write can fail that the user, not the code, must fix: the disk (or quota) is full, the
# folder is on a read-only mount, or it belongs to someone else.
_UNWRITABLE = {
    getattr(errno, name): reason
    for name, reason in (
        ("ENOSPC", "the disk is full"),
        ("EDQUOT", "the disk quota is exceeded"),  # not on every platform
        ("EROFS", "the file system is read-only"),
        ("EACCES", "permission denied"),
        ("EPERM", "permission denied"),
    )
    if hasattr(errno, name)
}
_DISK_FULL = {getattr(errno, name) for name in ("ENOSPC", "EDQUOT") if hasattr(errno, name)}


class WriteFailed(UserError, OSError):
    """A file could not be written for a reason the user must fix (``_UNWRITABLE``); one line.
    ``disk_full``: no space (or quota) left, as opposed to a folder that cannot be written. Also
    an OSError, so that callers for whom a failed write is not fatal (a cache) still catch it."""

    def __init__(self, message: str, disk_full: bool) -> None:
        super().__init__(message)
        self.disk_full = disk_full


def unwritable_reason(exc: BaseException) -> tuple[str, bool] | None:
    """``(reason, disk_full)`` when ``exc``, or an exception it was raised from or while handling,
    is an OSError of ``_UNWRITABLE``; else None. The chain matters: ``torch.save`` turns the
    OSError of a full disk into a RuntimeError ("unexpected pos ...") raised while handling it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _UNWRITABLE:
            return _UNWRITABLE[current.errno], current.errno in _DISK_FULL
        current = current.__cause__ or current.__context__
    return None


def _free_space(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.1f} MB free there"
    except OSError:
        return "free space unknown"


def check_writable(folder: str | os.PathLike, what: str, hint: str, keep: bool = False) -> Path:
    """Whether a file can be created in ``folder``: a one-line ``WriteFailed`` naming ``what``
    (e.g. "the checkpoints folder") and ``hint`` (what to do) if not. Called before long work
    whose results could not be kept (training, translating a test set). The probe file is
    removed, and so are the folders it had to create unless ``keep`` (several processes checking
    one folder at once must keep it: one would remove it under the other's probe)."""
    folder = Path(folder)
    missing = [] if keep else [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        found = unwritable_reason(e)
        reason = found[0] if found else (e.strerror or type(e).__name__)
        raise WriteFailed(f"cannot write to {what} {folder}: {reason}; {hint}", bool(found and found[1])) from None
    finally:
        for created in missing:  # deepest first
            try:
                created.rmdir()
            except OSError:
                pass
    return folder


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None], fsync: bool = True) -> Path:
    """Call ``write(f)`` on a temporary file next to ``path``, fsync it, then rename over ``path``.

    ``os.replace`` is atomic on POSIX and Windows, so readers see either the old file or the
    new one, never a partial one. ``fsync=False`` keeps the rename but leaves the flush to the
    caller (``flush_to_disk`` once after many files): a killed process still leaves each file
    whole or absent, only a power cut before that flush can lose the newest files, and the
    per-file fsync costs 15-40 ms here, more than encoding a 256² PNG.

    A full disk, a read-only folder or a missing permission is a one-line ``WriteFailed`` (a
    ``UserError``); the temporary file is removed and ``path``, if it existed, is untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        _raise_if_unwritable(path, e)
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        _raise_if_unwritable(path, e)
        raise
    return path


def _raise_if_unwritable(path: Path, exc: BaseException) -> None:
    found = unwritable_reason(exc)
    if found is None:
        return
    reason, disk_full = found
    if disk_full:  # measured after the temporary file is gone: what the next try would have
        reason = f"{reason} ({_free_space(path.parent)}, not enough for this file)"
    raise WriteFailed(f"cannot write {path}: {reason}", disk_full) from exc


# The name ``atomic_write`` gives its temporary file: ``.<target name>.<mkstemp's 8 random characters>.tmp``.
_PARTIAL_WRITE = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


def remove_partial_writes(*folders: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that ``atomic_write`` calls killed mid-write (SIGKILL, a
    pre-empted machine, the OOM killer) left in ``folders`` (not their sub-folders), and return
    them. Nothing else can clean them up, and each is as big as the file it was becoming (a
    whole checkpoint): on a pre-emptible machine they would pile up. Only call it on folders
    no other live process is writing to (a run's folder as its run starts, a results folder
    as test.py starts): a live writer's temporary file has the same name shape."""
    removed = []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if _PARTIAL_WRITE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                removed.append(Path(entry.path))
    return removed


def flush_to_disk() -> None:
    """Write every file this process left to ``atomic_write(..., fsync=False)`` to disk, in one
    call (``os.sync``: one journal commit for all of them instead of one per file)."""
    if hasattr(os, "sync"):
        os.sync()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def name_hash_prefix(path: str | os.PathLike) -> str | None:
    """The SHA-256 prefix a torch.hub checkpoint name carries: the hex digits after the last '-'
    of the stem (``pt_inception-2015-12-05-6726825d.pth`` -> ``6726825d``); None if there are
    fewer than 8 (too few to be a hash, e.g. the ``05`` of a date)."""
    tail = Path(path).stem.rsplit("-", 1)[-1]
    return tail.lower() if "-" in Path(path).stem and re.fullmatch(r"[0-9a-fA-F]{8,64}", tail) else None


def load_torch_file(path: str | os.PathLike, what: str = "", map_location: object = "cpu") -> object:
    """``torch.load(path, weights_only=True)``, or a one-line ``UserError`` saying why the file cannot
    be read: not a torch.save file at all (a text file, an HTML page: torch's own message is then
    unhelpful, e.g. "list index out of range"), or torch's first line (truncated, pickled objects).
    ``what`` names the file in the message (e.g. "checkpoint")."""
    import torch  # here: the download scripts import util without torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        with open(path, "rb") as f:
            head = f.read(4)
        if not head.startswith(b"PK\x03\x04") and head[:1] != b"\x80":  # torch's zip format, or a legacy pickle
            reason = "it is empty" if not head else "not a file written by torch.save"
        else:
            text = str(e).strip()
            reason = text.splitlines()[0][:200] if text else type(e).__name__
        raise UserError(f"cannot read {what + ' ' if what else ''}{path}: {reason}") from None
