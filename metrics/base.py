"""The metric interface and the ``METRICS`` registry.

A metric is a small frozen record: its CLI name, whether it compares two *unpaired* sets of
images (FID, KID: translations vs real images of the target domain), *paired* images
(L1, PSNR, SSIM: each translation vs its ground truth) or a *stylised* image with its content
and style images (content_loss, style_loss), which direction is better, and a ``compute``
function returning a dict of floats (one metric may report several numbers, e.g.
``{"kid": ..., "kid_std": ...}``).

- ``UnpairedMetric.compute(fake_features, real_features)`` takes Inception features
  (float arrays (N, D)), so all unpaired metrics share one feature extraction per folder.
- ``PairedMetric.compute(pred, gt)`` scores one image pair (tensors in [0, 1] of shape
  (1, 3, H, W)); the caller averages over images, so pairs stream from disk one at a time
  and every paired metric shares one read of each pair.
- ``StyleMetric.compute(sample)`` scores one stylised image from a ``StyleSample``: the VGG
  features of the output and of its content input, and the Gram matrices of its style image(s)
  with their blend weights, at the layers the metric declares (``content_layers``,
  ``style_layers``) of the feature network it names (``backbone``). The caller extracts the
  features once for all style metrics and averages over images (``metrics.style.StyleScorer``).

The registry lives here rather than in ``metrics/__init__.py`` so metric modules can import
it without importing their own package's half-initialised ``__init__``.

Callers run ``compute`` through ``compute_metric``, which turns any exception a metric raises
(a LinAlgError, a bug) into a one-line ``MetricError`` naming the metric: test.py prints it like
bad input, and ``train.py --eval_freq`` skips that evaluation instead of dying.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from util.errors import UserError, one_line
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


@dataclass(frozen=True)
class StyleSample:
    """One stylised image and its references, as features of the style metrics' network.

    ``output`` and ``content``: layer -> features of shape (1, C, H, W) (the output at every
    layer a style metric reads, the content input at the ``content_layers``); ``style_grams``:
    one dict per style image, layer -> its normalised Gram matrix (1, C, C) at the
    ``style_layers`` (a style is compared through its statistics only, so only those are kept);
    ``weights``: the blend weight of each style (non-negative, summing to 1)."""

    output: dict[str, torch.Tensor]
    content: dict[str, torch.Tensor]
    style_grams: list[dict[str, torch.Tensor]]
    weights: list[float]


@dataclass(frozen=True)
class StyleMetric:
    name: str
    higher_is_better: bool
    compute: Callable[[StyleSample], dict[str, float]]
    backbone: str  # the feature network (a ``models.networks.perceptual.BACKBONES`` name)
    content_layers: tuple[str, ...] = ()  # features of the output and of the content input
    style_layers: tuple[str, ...] = ()  # Gram matrices of the output and of the style images
    description: str = ""
    protocol: str = ""  # how it is computed, recorded with its values
    kind: Literal["style"] = "style"


Metric = UnpairedMetric | PairedMetric | StyleMetric


def register_metric(metric: Metric) -> Metric:
    """Register ``metric`` under ``metric.name`` (duplicates are rejected by the registry)."""
    return METRICS.register(metric.name)(metric)


class MetricError(UserError):
    """A metric could not be computed; the message names the metric and the cause, in one line."""


def compute_metric(metric: Metric, *inputs: Any) -> dict[str, float]:
    """``metric.compute(*inputs)``, with any failure raised as a one-line ``UserError``.

    A ``UserError`` (e.g. too few images) already says what is wrong and passes unchanged;
    anything else becomes a ``MetricError`` (the original stays chained as ``__cause__`` for
    debugging). ``KeyboardInterrupt`` and other non-``Exception`` exits are not caught.
    """
    try:
        return metric.compute(*inputs)
    except UserError:
        raise
    except Exception as exc:
        raise MetricError(f"metric {metric.name} failed: {type(exc).__name__}: {one_line(exc)}") from exc
