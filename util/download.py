"""Downloads that survive bad networks and bad servers: what the download scripts share.

* ``fetch(url, dest)`` writes to ``dest.part`` and renames it to ``dest`` only once complete (and,
  optionally, validated), so an interrupted download never looks whole. Run again, it resumes a
  ``.part`` with an HTTP ``Range`` request; a server that answers 200 instead of 206 (no resume
  support) is read from the start. A body shorter than its ``Content-Length`` is an error that
  keeps the ``.part`` for the next run.
* ``unpack(archive, dest, name)`` extracts a ``.zip`` or ``.tar.gz`` only after checking every
  member (no absolute paths, no ``..``, no links, no device files, nothing outside the folder),
  with tarfile's ``data`` filter on top where Python has it, into a temporary folder that is
  renamed into place when complete. Sizes are checked first too (``ArchiveLimits``): an archive
  whose members claim more than 64 GiB in all, more than 100x its own size beyond 256 MiB (a
  decompression bomb), more than a million members, or more than the free space of the target
  disk is refused before a byte is written.
* ``check_state_dict(path)`` refuses a "model" that is not a PyTorch state dict (an HTML error
  page from a proxy, a truncated file).

Everything raises ``DownloadError`` with a one-line message. Standard library only, except that
``check_state_dict`` uses torch when it is importable (the scripts also run before any install).
"""

from __future__ import annotations

import gzip
import http.client
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CHUNK = 1 << 20
TIMEOUT_S = 30  # per connection attempt and per read; a stalled server is an error, not a hang
USER_AGENT = "cyclegan-lab-download/1"


class DownloadError(Exception):
    """A download, archive or file that cannot be used; the message is one line for the user."""


class NotEnoughSpace(DownloadError):
    """The archive is fine but the disk it unpacks to is too small: it is kept for the next run."""


class _StartOver(Exception):
    """The server did not continue the partial file where it ends: download it from the start."""


def part_path(dest: Path) -> Path:
    """Where ``dest`` is written until it is complete: ``<dest>.part`` in the same folder (so the
    final rename never crosses file systems)."""
    return dest.with_name(dest.name + ".part")


def fetch(
    url: str,
    dest: Path,
    validate: Callable[[Path], None] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming a ``.part`` left by an
    interrupted run. ``validate(part)`` (raising ``DownloadError``) runs on the complete file
    before it is renamed to ``dest``; a file it refuses is deleted, since resuming it would only
    rebuild the same bad file."""
    dest = Path(dest)
    part = part_path(dest)
    for _ in range(2):
        offset = part.stat().st_size if part.is_file() else 0
        try:
            _transfer(url, part, offset, log)
            break
        except _StartOver:
            part.unlink(missing_ok=True)
    else:  # pragma: no cover - a server that refuses even a plain request's range
        raise DownloadError(f"could not download {url}: the server keeps refusing the requested range")
    if validate is not None:
        try:
            validate(part)
        except DownloadError:
            part.unlink(missing_ok=True)
            raise
    os.replace(part, dest)
    return dest


def _open(url: str, offset: int):
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:  # the .part is not a prefix of the file (it changed, or is whole)
            raise _StartOver from None
        raise DownloadError(f"could not download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise DownloadError(f"could not download {url} ({reason}); check the network connection") from None


def _content_range_start(value: str | None) -> int | None:
    """The first byte of ``Content-Range: bytes START-END/TOTAL`` (None when unreadable)."""
    if not value or not value.startswith("bytes "):
        return None
    first = value[len("bytes ") :].split("-", 1)[0]
    return int(first) if first.strip().isdigit() else None


def _transfer(url: str, part: Path, offset: int, log: Callable[[str], None]) -> None:
    response = _open(url, offset)
    with response:
        status = getattr(response, "status", None)  # None for file:// URLs (a local mirror)
        length_header = response.headers.get("Content-Length", "")
        length = int(length_header) if length_header.strip().isdigit() else None
        if offset and status == 206:
            if _content_range_start(response.headers.get("Content-Range")) != offset:
                raise _StartOver
            log(f"resuming {url} at byte {offset:,}")
            mode = "ab"
        else:
            if offset:
                answer = f" (HTTP {status})" if status else ""
                log(f"the server does not resume downloads{answer}: downloading {url} from the start")
            offset, mode = 0, "wb"
            log(f"downloading {url}")
        expected = offset + length if length is not None else None
        received = offset
        progress = _Progress(expected)
        part.parent.mkdir(parents=True, exist_ok=True)  # only now: a failed request leaves no empty folder
        try:
            # read1: whatever has arrived (read(n) would wait for all n bytes, and a Ctrl-C would lose
            # them); flushed at once, so even a killed process keeps every byte it received
            read = getattr(response, "read1", response.read)
            with open(part, mode) as f:
                while chunk := read(CHUNK):
                    f.write(chunk)
                    f.flush()
                    received += len(chunk)
                    progress.show(received)
        except (OSError, http.client.HTTPException) as e:  # reset, timeout, IncompleteRead, disk full
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DownloadError(
                f"download of {url} stopped after {received:,} of {_size(expected)} bytes ({reason}); "
                f"run the same command again to resume"
            ) from None
        finally:
            progress.done()  # end the progress line, also before a Ctrl-C message
    if expected is not None and received < expected:
        raise DownloadError(
            f"download of {url} stopped after {received:,} of {expected:,} bytes (the server closed the "
            f"connection); run the same command again to resume"
        )
    if expected is not None and received > expected:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url} sent {received:,} bytes but announced {expected:,}; nothing was kept")


def _size(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


class _Progress:
    """A one-line progress counter on an interactive stderr (nothing in logs or tests)."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.enabled = sys.stderr.isatty()
        self.last = 0.0

    def show(self, received: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.5:
            return
        self.last = now
        total = f" of {self.total / 1e6:.1f}" if self.total else ""
        sys.stderr.write(f"\r  {received / 1e6:.1f}{total} MB")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.last:
            sys.stderr.write("\n")


# ---- archives ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may claim before anything is unpacked (all checked from the member headers,
    before the data they describe is read, so a bomb costs neither disk nor decompression time).

    * ``max_bytes`` 64 GiB: several times the largest published dataset (pix2pix's
      edges2handbags, commonly reported at about 8 GB; not measured here, offline), small enough
      that a bad or malicious archive cannot take a whole data disk.
    * ``max_ratio`` 100 beyond ``ratio_floor`` 256 MiB: the datasets are JPEG/PNG images, which
      deflate hardly shrinks (about 1:1); only padding or runs of zeros reach 100:1. Below the floor
      the ratio is not checked: small archives of text or test files may well compress 100:1, and
      256 MiB threatens no disk.
    * ``max_members`` 1,000,000 (inodes; the biggest published dataset has tens of thousands).
    * the free space of the target disk: a truncated dataset on a full disk helps nobody.
    """

    max_bytes: int = 64 << 30
    max_ratio: float = 100.0
    ratio_floor: int = 256 << 20
    max_members: int = 1_000_000


DEFAULT_LIMITS = ArchiveLimits()


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


class _SizeCheck:
    """Running totals of an archive's members against ``ArchiveLimits``, checked member by member
    as each header is read (a tar.gz has no table of contents: its headers come with the data)."""

    def __init__(self, archive: Path, limits: ArchiveLimits) -> None:
        self.archive = archive
        self.limits = limits
        self.packed = max(archive.stat().st_size, 1)
        self.total = 0
        self.count = 0

    def add(self, name: str, size: int) -> None:
        self.total += max(size, 0)
        self.count += 1
        lim = self.limits
        if self.total > lim.max_bytes:
            raise DownloadError(
                f"{self.archive.name} claims more than {_gib(lim.max_bytes)} unpacked ({_gib(self.total)} up to "
                f"{name}), over the limit for a dataset; nothing was unpacked"
            )
        if self.total > lim.ratio_floor and self.total > lim.max_ratio * self.packed:
            raise DownloadError(
                f"{self.archive.name} claims {_gib(self.total)} unpacked from {_gib(self.packed)} "
                f"(over {lim.max_ratio:g}:1): a decompression bomb, not image data; nothing was unpacked"
            )
        if self.count > lim.max_members:
            raise DownloadError(
                f"{self.archive.name} holds more than {lim.max_members:,} members; nothing was unpacked"
            )

    def check_space(self, root: Path) -> None:
        """Refuse when the claimed size (plus a 4 KiB block per member) exceeds the free space."""
        needed = self.total + 4096 * self.count
        free = shutil.disk_usage(root).free
        if needed > free:
            raise NotEnoughSpace(
                f"{self.archive.name} unpacks to {_gib(needed)} but only {_gib(free)} is free in {root.parent.parent}; "
                f"free some space and run the same command again (the archive is kept)"
            )


def _unsafe_name(name: str) -> bool:
    """Absolute (``/x``, ``C:\\x``), or climbing out (``..``)."""
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or bool(path.parts and ":" in path.parts[0])


def _check_inside(root: Path, name: str) -> None:
    """Belt and braces after the name checks: the member's path must resolve inside ``root``."""
    target = (root / name.replace("\\", "/")).resolve()
    if target != root and root not in target.parents:
        raise DownloadError(f"unsafe path in archive: {name}")


def _check_zip(archive: zipfile.ZipFile, root: Path, sizes: _SizeCheck) -> None:
    for info in archive.infolist():
        sizes.add(info.filename, info.file_size)  # zipfile never writes more than this claim
        if _unsafe_name(info.filename):
            raise DownloadError(f"unsafe path in archive: {info.filename}")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise DownloadError(f"archive holds a symbolic link: {info.filename}")
        if mode and stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise DownloadError(f"archive holds a device or special file: {info.filename}")
        _check_inside(root, info.filename)


def _check_tar(archive: tarfile.TarFile, root: Path, sizes: _SizeCheck) -> list[tarfile.TarInfo]:
    """Every member, checked as its header is read (before the next one, and so before its data is
    decompressed: a bomb's first header is enough to refuse it)."""
    members = []
    for member in archive:
        sizes.add(member.name, member.size)
        if _unsafe_name(member.name):
            raise DownloadError(f"unsafe path in archive: {member.name}")
        if member.issym() or member.islnk():
            raise DownloadError(f"archive holds a link: {member.name} -> {member.linkname}")
        if not (member.isfile() or member.isdir()):
            raise DownloadError(f"archive holds a device or special file: {member.name}")
        _check_inside(root, member.name)
        members.append(member)
    return members


_FILTER_ERROR = getattr(tarfile, "FilterError", ())  # what the data filter raises, where it exists


def _extract(archive: Path, root: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> None:
    """Check every member of ``archive``, then extract it into ``root``. A damaged, unsafe or
    oversized archive raises ``DownloadError`` before anything is written."""
    sizes = _SizeCheck(archive, limits)
    if archive.name.endswith(".zip"):
        try:
            with zipfile.ZipFile(archive) as zf:
                _check_zip(zf, root, sizes)
                sizes.check_space(root)
                zf.extractall(root)
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise DownloadError(f"{archive.name} is not a readable zip archive ({e})") from None
        return
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = _check_tar(tf, root, sizes)
            sizes.check_space(root)
            if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.8.17 / 3.9.17 / 3.10.12 / 3.11.4 on
                tf.extractall(root, members, filter="data")
            else:  # pragma: no cover - older Pythons: our own checks above are the only guard
                tf.extractall(root, members)
    except _FILTER_ERROR as e:
        raise DownloadError(f"unsafe member in archive: {e}") from None
    except (tarfile.TarError, zlib.error, EOFError, gzip.BadGzipFile) as e:
        raise DownloadError(f"{archive.name} is not a readable tar.gz archive ({e})") from None


def unpack(archive: Path, dest: Path, name: str, limits: ArchiveLimits = DEFAULT_LIMITS) -> Path:
    """Extract ``archive`` and move its ``name/`` folder (or, without one, everything in it) to
    ``dest``, replacing an old ``dest`` only once the new one is complete. A damaged or unsafe
    archive is deleted (downloading it again is the only fix); after any other failure (a full
    disk) it is kept, so the next run unpacks it without downloading. ``limits``: see
    ``ArchiveLimits``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".unpack-{name}-*"):  # left by a run killed while unpacking
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".unpack-{name}-", dir=dest.parent)).resolve()
    try:
        root = work / "extract"
        root.mkdir()
        try:
            _extract(Path(archive), root, limits)
        except NotEnoughSpace:
            raise  # the archive is fine: keep it for the run after space is freed
        except DownloadError:
            Path(archive).unlink(missing_ok=True)
            raise
        except OSError as e:
            raise DownloadError(f"could not unpack {archive}: {e}") from None
        inner = root / name
        replace_dir(inner if inner.is_dir() else root, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(archive).unlink(missing_ok=True)
    return dest


def replace_dir(source: Path, dest: Path) -> None:
    """Move the folder ``source`` to ``dest``; an existing ``dest`` is moved aside first and
    deleted only after the new one is in place (put back if the move fails)."""
    aside = None
    if dest.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".old-{dest.name}-", dir=dest.parent))
        os.replace(dest, aside / dest.name)
    try:
        os.replace(source, dest)
    except OSError:
        if aside is not None:
            os.replace(aside / dest.name, dest)
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


# ---- model files ---------------------------------------------------------------------------------


def _looks_like(path: Path) -> str:
    """A short, one-line description of a file's start, for error messages (HTML pages mostly)."""
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "it is empty"
    text = head.decode("utf-8", errors="replace")
    if sum(c.isprintable() or c.isspace() for c in text) >= 0.9 * len(text):
        return "it starts with " + repr(" ".join(text.split())[:40])
    return f"{path.stat().st_size:,} bytes of binary data"


def _check_signature(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return f"{path.stat().st_size:,} bytes (torch is not installed: only the file signature was checked)"
    raise DownloadError(f"the downloaded file is not a PyTorch state dict ({_looks_like(path)}); nothing was saved")


def check_state_dict(path: Path) -> str:
    """Raise ``DownloadError`` unless ``path`` holds a PyTorch state dict: with torch, loaded with
    ``weights_only=True`` (a dict of tensors, nothing executable); without torch, at least the
    file format's signature (a zip archive, torch's format since 1.6, or a pickle, the legacy
    one). Returns a short description for the log."""
    try:
        import torch
    except ImportError:
        return _check_signature(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, truncated, or pickled objects weights_only refuses
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise DownloadError(
            f"the downloaded file is not a PyTorch state dict ({_looks_like(path)}: {first}); nothing was saved"
        ) from None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DownloadError(
            f"the downloaded file holds a {type(state).__name__}, not a state dict of tensors; nothing was saved"
        )
    count = sum(v.numel() for v in state.values() if v.is_floating_point())
    return f"{len(state)} tensors, {count:,} values"
