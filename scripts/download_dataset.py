"""Download and unpack a published CycleGAN dataset into ``datasets/NAME``.

    bash scripts/download_cyclegan_dataset.sh horse2zebra
    python scripts/download_dataset.py horse2zebra [--datasets_dir ./datasets]

The archive is downloaded to a temporary file next to the destination, every member is
checked (no absolute paths, no ``..``, no links) before anything is extracted, and the folder
is renamed into place only when complete, so an interrupted download never leaves a dataset
that looks whole. ``CYCLEGAN_DATASETS_URL`` overrides the server (a mirror, or file:// in tests).
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from util.catalog import CYCLEGAN_DATASETS  # noqa: E402  (no torch import: works before any install)

DEFAULT_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets"


class DownloadError(Exception):
    pass


def check_members(archive: zipfile.ZipFile) -> None:
    """Refuse archives whose members would land outside the extraction folder."""
    for info in archive.infolist():
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
            raise DownloadError(f"unsafe path in archive: {info.filename}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DownloadError(f"archive holds a symbolic link: {info.filename}")


def download(url: str, dest: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(dest, "wb") as f:
            shutil.copyfileobj(response, f, length=1 << 20)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"could not download {url} ({reason}); check the network connection") from None


def fetch_dataset(name: str, datasets_dir: Path, base_url: str) -> Path:
    target = datasets_dir / name
    if target.exists():
        print(f"{target} already exists; nothing to do")
        return target
    datasets_dir.mkdir(parents=True, exist_ok=True)
    url = f"{base_url.rstrip('/')}/{name}.zip"
    with tempfile.TemporaryDirectory(prefix=f".download-{name}-", dir=datasets_dir) as tmp:
        archive_path = Path(tmp) / f"{name}.zip"
        print(f"downloading {url} ...")
        download(url, archive_path)
        try:
            with zipfile.ZipFile(archive_path) as archive:
                check_members(archive)
                archive.extractall(Path(tmp) / "extract")
        except zipfile.BadZipFile:
            raise DownloadError(f"{url} did not return a zip archive") from None
        extracted = Path(tmp) / "extract"
        inner = extracted / name
        source = inner if inner.is_dir() else extracted
        os.replace(source, target)
    folders = ", ".join(sorted(p.name for p in target.iterdir() if p.is_dir()))
    print(f"{name} is in {target} ({folders})")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=CYCLEGAN_DATASETS, metavar="NAME", help=", ".join(CYCLEGAN_DATASETS))
    parser.add_argument("--datasets_dir", type=Path, default=Path("datasets"))
    args = parser.parse_args(argv)
    if args.name == "cityscapes":
        print(
            "error: the Cityscapes licence forbids redistribution: download it from "
            "https://www.cityscapes-dataset.com and arrange it as trainA/trainB/testA/testB",
            file=sys.stderr,
        )
        return 1
    try:
        fetch_dataset(args.name, args.datasets_dir, os.environ.get("CYCLEGAN_DATASETS_URL", DEFAULT_URL))
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
