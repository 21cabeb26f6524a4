"""Inception features of image folders, with an on-disk cache for reference (real) folders.

FID and KID both work on pool3 features, so a folder is read and run through the network
once per evaluation (``extract_features``) and both metrics use the same array.

Real-image folders rarely change between evaluations (e.g. FID every few epochs against
``testB``), so their features can be cached (``cached_features``). The cache key covers
everything that changes the features:

- the folder content: every image's name, size and modification time (ns);
- the protocol: the network's weight fingerprint, the feature dimension, the image decoding
  and resizing rule and a version number for this file's code.

Files are written atomically, so concurrent evaluations never read a half-written cache.
An edit that keeps both a file's size and its mtime is not noticed (touch the file to force).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from metrics.inception import INPUT_SIZE
from util import image as util_image
from util.errors import UserError
from util.fileio import atomic_write

# Bump when anything below changes the features computed for the same files and weights.
FEATURE_PROTOCOL = {
    "version": 2,
    "decode": "util.image.load_image (EXIF orientation, alpha on white), uint8 / 255",
    "resize": f"bilinear {INPUT_SIZE}x{INPUT_SIZE} align_corners=False, per image",
    "layer": "pool3",
}


class FeatureNet(Protocol):
    """What feature extraction needs from a network (``FIDInceptionV3`` is one)."""

    feature_dim: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...

    def fingerprint(self) -> str: ...


def list_images(folder: str | os.PathLike, stem_suffix: str = "") -> list[Path]:
    """Image files of ``folder`` as training and test.py list them (``util.image.list_images``:
    sub-folders included, the same extensions), sorted; with ``stem_suffix`` only those whose
    stem ends with it. Raises ``UserError`` for a missing folder or one without images, so a typo
    in a path never yields a metric over zero images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"image folder not found: {folder}")
    files = util_image.list_images(folder, stem_suffix=stem_suffix)
    if not files:
        what = f"images named *{stem_suffix}.<ext>" if stem_suffix else "images"
        raise UserError(f"no {what} in {folder}")
    return files


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """One image file -> (3, H, W) float32 in [0, 1], decoded as the networks' inputs are."""
    return util_image.load_image_01(path)


class _ResizedImages(torch.utils.data.Dataset):
    """Images resized to the network's input size here, so images of any size batch together.

    The network resizes again, but 299 -> 299 is an exact identity.
    """

    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = load_image(self.files[index]).unsqueeze(0)
        resized = F.interpolate(image, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return resized[0]


@torch.inference_mode()
def extract_features(
    files: list[Path],
    net: FeatureNet,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 50,
    num_workers: int = 0,
) -> np.ndarray:
    """Features of ``files`` in order: float32 array (len(files), net.feature_dim).

    ``net`` must already be on ``device``. ``num_workers`` > 0 decodes images in
    background processes (worth it on a GPU; on a small CPU the network dominates).
    """
    loader = torch.utils.data.DataLoader(
        _ResizedImages(files), batch_size=batch_size, shuffle=False, num_workers=num_workers
    )
    out = np.empty((len(files), net.feature_dim), dtype=np.float32)
    start = 0
    for batch in loader:
        feats = net(batch.to(device)).float().cpu().numpy()
        out[start : start + len(feats)] = feats
        start += len(feats)
    return out


def cache_key(files: list[Path], net: FeatureNet) -> str:
    """Hash of the files' names/sizes/mtimes and of the feature protocol (see module docstring)."""
    entries = []
    for path in files:
        stat = path.stat()
        entries.append([path.name, stat.st_size, stat.st_mtime_ns])
    record = {
        "protocol": FEATURE_PROTOCOL,
        "weights": net.fingerprint(),
        "feature_dim": net.feature_dim,
        "files": entries,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:32]


def cached_features(
    files: list[Path],
    net: FeatureNet,
    cache_dir: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 50,
    num_workers: int = 0,
) -> tuple[np.ndarray, bool]:
    """``extract_features`` through a cache in ``cache_dir``; returns (features, cache_hit)."""
    path = Path(cache_dir) / f"features-{cache_key(files, net)}.npy"
    if path.is_file():
        try:
            feats = np.load(path, allow_pickle=False)
            if feats.shape == (len(files), net.feature_dim):
                return feats, True
        except (OSError, ValueError):
            pass  # unreadable cache entry: recompute and overwrite it
    feats = extract_features(files, net, device=device, batch_size=batch_size, num_workers=num_workers)
    buffer = io.BytesIO()
    np.save(buffer, feats, allow_pickle=False)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return feats, False


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cyclegan-lab/metric_features`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cyclegan-lab" / "metric_features"
