"""The target halves of A | B files as a folder of whole images, for FID/KID of pix2pix runs.

FID and KID compare the translations with a folder of real images of the target domain (the
metrics' feature cache is keyed on a folder's files). Aligned data keeps those images as one half
of each A | B file, so ``extract_halves`` cuts that half out of every file of ``<dataroot>/<split>/``,
whole and at its stored resolution (the metrics resize to Inception's input themselves; training
crops are not applied), and writes it as a lossless PNG with the source file's stem, so an error
about a real image names the file it came from.

The halves are extracted once, under ``<cache>/aligned_halves/<source>/<content>/<split>/``:

- ``<source>``: a hash of the folder's resolved path, the half (left/right) and the channels, so
  each source folder has one current extraction per half;
- ``<content>``: a hash of every file's relative path, size and mtime (ns) and of this file's
  extraction rule (``VERSION``): a file added, removed or edited gives a new folder.

A folder is built under a hidden temporary name and renamed into place, so a folder without a
leading dot is always complete: an interrupted extraction leaves only a hidden leftover, and of two
concurrent extractions one renames its folder in and the other uses it. After a new extraction
the older ones of the same source are deleted, and hidden leftovers older than a day. As in the
feature cache, an edit that keeps a file's size and mtime is not noticed (touch the file).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

from util.errors import UserError
from util.fileio import flush_to_disk
from util.image import list_images, load_image

# Bump when the pixels written for the same source files change (decoding, halving, channels).
VERSION = 1
ROOT = "aligned_halves"
# A hidden build folder this old was left by an interrupted extraction (a live one is minutes old).
LEFTOVER_AGE_S = 24 * 3600


def split_halves(ab: Image.Image) -> tuple[Image.Image, Image.Image]:
    """(left, right) halves of an A | B image, each ``w // 2`` wide. With an odd width the last
    column is dropped (the reference gives it to the right half; equal halves keep one crop and one
    resize valid for both)."""
    w, h = ab.size
    half = w // 2
    if half < 1:
        raise ValueError(f"is {w} pixel wide: an A | B image needs at least 2 columns")
    return ab.crop((0, 0, half, h)), ab.crop((half, 0, 2 * half, h))


def as_channels(img: Image.Image, channels: int) -> Image.Image:
    """An RGB half as ``channels`` channels (1: greyscale, as ``util.image.load_image`` converts)."""
    return img.convert("L") if channels == 1 else img


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _digest(record: object) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:24]


def _outputs(source: Path, files: list[Path]) -> list[tuple[Path, Path]]:
    """(source file, relative output path): the same relative path and stem, as ``.png``. Two
    sources with one stem in one folder (``a.jpg``, ``a.png``) would write one file: an error."""
    pairs, seen = [], {}
    for path in files:
        out = path.relative_to(source).with_suffix(".png")
        if out in seen:
            raise UserError(f"{seen[out]} and {path} have the same stem: FID/KID name each real half after its file")
        seen[out] = path
        pairs.append((path, out))
    return pairs


def extract_halves(source: Path, split: str, right: bool, channels: int, cache_dir: str | os.PathLike) -> Path:
    """The folder of the right (``right``) or left halves of ``source``'s images, as ``channels``
    channels, named ``split``; extracted on the first call, reused while ``source`` is unchanged
    (see the module's note). Prints one line when it extracts."""
    if not source.is_dir():
        raise UserError(f"{source} does not exist: FID/KID compare with the target halves of its A | B images")
    files = list_images(source)
    if not files:
        raise UserError(f"no images in {source}: FID/KID compare with the target halves of its A | B images")
    resolved = source.resolve()
    half = "right" if right else "left"
    entries = []
    for path in files:
        stat = path.stat()
        entries.append([path.relative_to(source).as_posix(), stat.st_size, stat.st_mtime_ns])
    source_key = _digest({"source": str(resolved), "half": half, "channels": channels})
    content_key = _digest({"version": VERSION, "files": entries})
    home = Path(cache_dir) / ROOT / source_key
    done = home / content_key / split
    if done.is_dir():
        return done

    what = f"--metrics_cache_dir {cache_dir}"
    try:
        home.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=f".{content_key}.", dir=home))
    except OSError as e:
        raise UserError(
            f"{what} is not writable ({e.strerror or e}): FID/KID of --dataset_mode aligned extract the "
            f"{half} halves of {source} into it"
        ) from None
    try:
        for path, out in _outputs(source, files):
            try:
                left_half, right_half = split_halves(load_image(path, 3))
            except ValueError as e:
                raise UserError(f"{path}: {e}") from None
            target = build / split / out
            target.parent.mkdir(parents=True, exist_ok=True)
            as_channels(right_half if right else left_half, channels).save(target, format="PNG")
        flush_to_disk()  # the files are on disk before the folder is renamed in as complete
        try:
            build.rename(home / content_key)
        except OSError:
            if not done.is_dir():  # not a concurrent extraction that finished first
                raise
    except OSError as e:
        raise UserError(f"{what}: cannot extract the {half} halves of {source} ({e.strerror or e})") from None
    finally:
        shutil.rmtree(build, ignore_errors=True)  # gone after the rename; a leftover otherwise
    for older in home.iterdir():  # earlier extractions of this source: stale now
        hidden = older.name.startswith(".")  # a build in progress, or one left by a killed process
        if older.name != content_key and (not hidden or _age_s(older) > LEFTOVER_AGE_S):
            shutil.rmtree(older, ignore_errors=True)
    print(f"FID/KID: the {half} halves of {source} ({len(files)} images) extracted to {done}")
    return done
