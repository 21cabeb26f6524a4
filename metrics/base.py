"""The metric interface and the ``METRICS`` registry.

A metric is a small frozen record: its CLI name, whether it compares two *unpaired* sets of
images (FID, KID: translations vs real images of the target domain) or *paired* images
(L1, PSNR, SSIM: each translation vs its ground truth), which direction is better, and a
``compute`` function returning a dict of floats (one metric may report several numbers,
e.g. ``{"kid": ..., "kid_std": ...}``).

- ``UnpairedMetric.compute(fake_features, real_features)`` takes Inception features
  (float arrays (N, D)), so all unpaired metrics share one feature extraction per folder.
- ``PairedMetric.compute(pred, gt)`` scores one image pair (tensors in [0, 1] of shape
  (1, 3, H, W)); the caller averages over images, so pairs stream from disk one at a time
  and every paired metric shares one read of each pair.

The registry lives here rather than in ``metrics/__init__.py`` so metric modules can import
it without importing their own package's half-initialised ``__init__``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from util.registry import Registry

METRICS = Registry("metric")


@dataclass(frozen=True)
class UnpairedMetric:
    name: str
    higher_is_better: bool
    compute: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    description: str = ""
    kind: Literal["unpaired"] = "unpaired"


@dataclass(frozen=True)
class PairedMetric:
    name: str
    higher_is_better: bool
    compute: Callable[[torch.Tensor, torch.Tensor], dict[str, float]]
    description: str = ""
    kind: Literal["paired"] = "paired"


Metric = UnpairedMetric | PairedMetric


def register_metric(metric: Metric) -> Metric:
    """Register ``metric`` under ``metric.name`` (duplicates are rejected by the registry)."""
    return METRICS.register(metric.name)(metric)
