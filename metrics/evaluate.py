"""``evaluate_dirs``: the one call the rest of the code makes to score a folder of translations.

Unpaired metrics (FID, KID) compare the translated images in ``fake_dir`` with the real
images of the target domain in ``real_dir``; paired metrics (L1, PSNR, SSIM) compare each
translated image with the ground-truth image of the same stem in ``gt_dir``. Style metrics
(content_loss, style_loss) need each output's content and style images, which a folder does not
name: they are scored during translation (``metrics.style.StyleScorer``) and refused here.

test.py writes every visual of an image into one folder (``<stem>_real_A.png``,
``<stem>_fake_B.png``, ...), so ``fake_suffix`` both selects the translated images
(``fake_suffix="_fake_B"`` keeps only ``*_fake_B.*``) and maps them to ground-truth stems
(``horse1_fake_B.png`` is paired with ``horse1.<any extension>`` in ``gt_dir``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from metrics.base import METRICS, Metric, PairedMetric, StyleMetric, UnpairedMetric, compute_metric
from metrics.features import cached_features, extract_features, list_images
from metrics.inception import FIDInceptionV3, load_inception
from metrics.paired import load_pair
from util.errors import UserError
from util.registry import RegistryError


def get_metrics(names: Sequence[str]) -> list[Metric]:
    """The registered metrics for ``names``; an unknown name raises ``UserError`` listing the valid ones."""
    if isinstance(names, str):  # a lone "fid" would otherwise be read as "f", "i", "d"
        names = [names]
    try:
        return [METRICS.get(name) for name in names]
    except RegistryError as exc:
        raise UserError(str(exc)) from None


def pair_files(fake_files: Sequence[Path], gt_dir: str | os.PathLike, fake_suffix: str = "") -> list[tuple[Path, Path]]:
    """(fake, ground truth) pairs: ``<stem><fake_suffix>.*`` in the fake list <-> ``<stem>.*`` in ``gt_dir``."""
    by_stem: dict[str, Path] = {}
    for path in list_images(gt_dir):
        if path.stem in by_stem:
            raise UserError(f"two ground-truth images share the stem '{path.stem}' in {gt_dir}")
        by_stem[path.stem] = path
    pairs, missing = [], []
    for fake in fake_files:
        stem = fake.stem[: len(fake.stem) - len(fake_suffix)] if fake_suffix else fake.stem
        if stem in by_stem:
            pairs.append((fake, by_stem[stem]))
        else:
            missing.append(stem)
    if missing:
        raise UserError(f"{len(missing)} images have no ground truth in {gt_dir} (e.g. {', '.join(missing[:3])})")
    return pairs


def evaluate_dirs(
    fake_dir: str | os.PathLike,
    real_dir: str | os.PathLike | Sequence[str | os.PathLike] | None,
    metric_names: Sequence[str],
    *,
    gt_dir: str | os.PathLike | None = None,
    fake_suffix: str = "",
    device: str | torch.device = "cpu",
    batch_size: int = 50,
    num_workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    inception: FIDInceptionV3 | None = None,
    inception_weights: str | os.PathLike | None = None,
) -> dict[str, float]:
    """Score the images in ``fake_dir``; returns e.g. ``{"fid": 61.2, "kid": 0.012, "kid_std": 0.001}``.

    - ``metric_names``: registered names (``metrics.METRICS.names()``), validated before any work.
    - ``real_dir``: real target-domain images, needed by unpaired metrics (may be None otherwise);
      a list of folders pools their images (e.g. a domain's train and test splits).
    - ``gt_dir``: ground truth for paired metrics, matched by stem (see ``fake_suffix``).
    - ``cache_dir``: where features of ``real_dir`` are cached (None: no cache;
      ``metrics.default_cache_dir()`` is the usual choice). Fake images are never cached.
    - ``inception``: an already loaded network on ``device`` (e.g. kept across evaluations during
      training); otherwise one is loaded with ``inception_weights`` (see ``metrics.inception``).

    Features are extracted once per folder and shared by all unpaired metrics. A metric that
    fails raises a one-line ``UserError`` naming it (``metrics.base.compute_metric``).
    """
    chosen = get_metrics(metric_names)
    unpaired = [m for m in chosen if isinstance(m, UnpairedMetric)]
    paired = [m for m in chosen if isinstance(m, PairedMetric)]
    style = [m for m in chosen if isinstance(m, StyleMetric)]
    if style:
        raise UserError(
            f"{', '.join(m.name for m in style)} compare each output with its content and style images: "
            "they are scored while translating (test.py, train.py --eval_freq), not from a folder"
        )
    if unpaired and real_dir is None:
        raise UserError(f"{', '.join(m.name for m in unpaired)} need a folder of real images (real_dir)")
    if paired and gt_dir is None:
        raise UserError(f"{', '.join(m.name for m in paired)} need a ground-truth folder (gt_dir)")

    fake_files = list_images(fake_dir, stem_suffix=fake_suffix)
    results: dict[str, float] = {}

    if unpaired:
        assert real_dir is not None
        real_dirs = [real_dir] if isinstance(real_dir, (str, os.PathLike)) else list(real_dir)
        net = inception if inception is not None else load_inception(inception_weights, device)
        options = {"device": device, "batch_size": batch_size, "num_workers": num_workers}
        fake_features, real_features = folder_features(fake_dir, fake_files, real_dirs, net, cache_dir, options)
        for metric in unpaired:
            results.update(compute_metric(metric, fake_features, real_features))

    if paired:
        assert gt_dir is not None
        results.update(score_pairs(pair_files(fake_files, gt_dir, fake_suffix), [m.name for m in paired]))

    return results


def folder_features(
    fake_dir: str | os.PathLike,
    fake_files: list[Path],
    real_dirs: list[str | os.PathLike],
    net: FIDInceptionV3,
    cache_dir: str | os.PathLike | None,
    options: dict,
) -> tuple[np.ndarray, np.ndarray]:
    """Features of the translations and of the real images (those through the cache)."""
    real_files = [path for folder in real_dirs for path in list_images(folder)]
    fake_features = extract_features(fake_files, net, **options)
    if cache_dir is not None:
        real_features, _hit = cached_features(real_files, net, cache_dir, **options)
    else:
        real_features = extract_features(real_files, net, **options)
    for features, folders in ((fake_features, [fake_dir]), (real_features, real_dirs)):
        if not np.isfinite(features).all():  # every metric would be NaN, or fail less clearly
            where = ", ".join(str(folder) for folder in folders)
            raise UserError(f"the Inception features of {where} contain NaN or inf: broken weights?")
    return fake_features, real_features


def score_pairs(pairs: Sequence[tuple[Path, Path]], metric_names: Sequence[str]) -> dict[str, float]:
    """Mean of each paired metric over (prediction, ground truth) files, e.g. ``{"l1": 0.08, "psnr": 21.3}``.

    For callers that already hold the pairs (test.py saves ground truth preprocessed like its inputs).
    """
    chosen = get_metrics(metric_names)
    if not all(isinstance(m, PairedMetric) for m in chosen):
        raise UserError(f"not paired metrics: {', '.join(m.name for m in chosen if not isinstance(m, PairedMetric))}")
    if not pairs:
        raise UserError("no (translation, ground truth) pairs to score")
    sums: dict[str, float] = {}
    for fake, gt in pairs:  # one pair in memory at a time, read once for all paired metrics
        pred, target = load_pair(fake, gt)
        for metric in chosen:
            for key, value in compute_metric(metric, pred, target).items():
                sums[key] = sums.get(key, 0.0) + value
    return {key: total / len(pairs) for key, total in sums.items()}
