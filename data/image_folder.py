"""Image files of a dataset: listing and decoding live in ``util.image`` (one decoder for the
whole project); ``make_dataset`` keeps the reference's name for dataset code."""

from __future__ import annotations

from pathlib import Path

from util.image import IMG_EXTENSIONS, is_image_file, list_images, load_image, to_rgb

__all__ = ["IMG_EXTENSIONS", "is_image_file", "list_images", "load_image", "make_dataset", "to_rgb"]


def make_dataset(directory: str | Path, max_dataset_size: float = float("inf")) -> list[Path]:
    """Image files under ``directory`` (recursively, hidden entries skipped), sorted, at most
    ``max_dataset_size`` of them."""
    return list_images(directory, max_count=max_dataset_size)
