"""Image-quality metrics: one file per metric, one ``METRICS`` registry, one entry point.

Call ``evaluate_dirs(fake_dir, real_dir, ["fid", "kid"], ...)`` (see ``metrics/evaluate.py``).
Registered metrics: ``fid``, ``kid`` (unpaired, on Inception features), ``l1``, ``psnr``,
``ssim`` (paired with ground truth by file stem) and ``content_loss``, ``style_loss`` (a stylised
image against its content and style images, on VGG-19 features: ``metrics/style.py``; scored
during translation by ``metrics.style.StyleScorer``, since folders of files do not say which
content and style each output was made from).

Adding a metric takes one file:

1. create ``metrics/<name>.py`` with a function computing it, and at its bottom::

       MY_METRIC = register_metric(
           UnpairedMetric(name="my_metric", higher_is_better=False,
                          compute=lambda fake_feats, real_feats: {"my_metric": ...})
       )

   (``PairedMetric`` instead, with ``compute(pred, gt)`` scoring one image pair, for metrics
   against ground truth; ``StyleMetric``, with ``compute(sample)`` scoring one stylised image
   from the features of it and of its content and style images; see ``metrics/base.py``);
2. add ``from metrics import <name>`` below, so it registers when the package is imported.

The CLI's ``--metrics`` choices come from ``METRICS.names()``, test.py and ``--eval_freq`` score
every chosen metric through ``evaluate_dirs``, and no existing test needs an edit (give the new
metric its own test against an independent computation, as ``tests/test_metrics_ssim.py`` does).
"""

# Each metric module registers itself in METRICS when imported: these imports are the list of
# available metrics, written out (no package scanning).
from metrics import fid, kid, paired, style  # noqa: F401  (registers fid, kid, l1, psnr, ssim, content_loss, style_loss)
from metrics.base import (
    METRICS,
    Metric,
    MetricError,
    PairedMetric,
    StyleMetric,
    StyleSample,
    UnpairedMetric,
    compute_metric,
    register_metric,
)
from metrics.evaluate import evaluate_dirs, get_metrics, pair_files, score_pairs
from metrics.features import cached_features, default_cache_dir, extract_features, list_images
from metrics.inception import FIDInceptionV3, InceptionWeights, load_inception, resolve_inception_weights
from metrics.style import StyleScorer

__all__ = [
    "METRICS",
    "FIDInceptionV3",
    "InceptionWeights",
    "Metric",
    "MetricError",
    "PairedMetric",
    "StyleMetric",
    "StyleSample",
    "StyleScorer",
    "UnpairedMetric",
    "cached_features",
    "compute_metric",
    "default_cache_dir",
    "evaluate_dirs",
    "extract_features",
    "get_metrics",
    "list_images",
    "load_inception",
    "pair_files",
    "register_metric",
    "resolve_inception_weights",
    "score_pairs",
]
