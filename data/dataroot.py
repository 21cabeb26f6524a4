"""Finding ``--dataroot`` and explaining what to do when it is missing."""

from __future__ import annotations

from pathlib import Path

from util.catalog import CYCLEGAN_DATASETS, PIX2PIX_DATASETS
from util.errors import UserError


def download_hint(name: str) -> str:
    """A download command when ``name`` is (or reverses to) a published CycleGAN or pix2pix
    dataset; both when it is published in both layouts (facades, maps: unpaired trainA/trainB, and
    aligned A|B pairs in train/ val/)."""
    cyclegan = f"bash scripts/download_cyclegan_dataset.sh {name}"
    pix2pix = f"bash scripts/download_pix2pix_dataset.sh {name}"
    if name in CYCLEGAN_DATASETS and name in PIX2PIX_DATASETS:
        return (
            f" It is published as a CycleGAN dataset (trainA/ trainB/ testA/ testB/: {cyclegan}) and as a "
            f"pix2pix dataset (aligned A|B images in train/ val/ test/: {pix2pix})"
        )
    if name in CYCLEGAN_DATASETS:
        return f" It is a published CycleGAN dataset: {cyclegan}"
    if name in PIX2PIX_DATASETS:
        return f" It is a published pix2pix dataset: {pix2pix}"
    if "2" in name:
        a, _, b = name.partition("2")
        for candidate in {
            f"{b}2{a}",
            f"{b.rstrip('s')}2{a}",
            f"{b}2{a.rstrip('s')}",
            f"{b.rstrip('s')}2{a.rstrip('s')}",
        }:
            if candidate in CYCLEGAN_DATASETS:
                return (
                    f" The published dataset {candidate} has the domains the other way round: "
                    f"bash scripts/download_cyclegan_dataset.sh {candidate}, then train with "
                    f"--dataroot ./datasets/{candidate} --direction BtoA"
                )
    return ""


def resolve_dataroot(value: str, expected: str) -> Path:
    """``value`` if it exists, else ``./datasets/<value>``; otherwise a ``UserError`` saying
    which folders are expected (``expected``, e.g. "trainA/ and trainB/") and how to get a
    published dataset."""
    path = Path(value).expanduser()
    if path.exists():
        return path
    fallback = Path("datasets") / value
    if not path.is_absolute() and fallback.exists():
        return fallback
    name = path.name or value
    raise UserError(
        f"--dataroot {value} does not exist (looked in {path} and {fallback}); "
        f"expected a folder holding {expected}.{download_hint(name)}"
    )
