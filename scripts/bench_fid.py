"""Time one FID value (the Fréchet distance, not the feature extraction) on this machine.

    python scripts/bench_fid.py [--dim 2048] [--fake 120] [--real 140] [--repeat 1]

Draws non-negative random features shaped like Inception pool3 activations (horse2zebra's test
sets by default: 120 and 140 images, 2048-d) and times ``fid_from_features`` (features in, the
route test.py takes) and ``frechet_distance`` (mean and covariance in, the statistics API) on
them, best of ``--repeat`` runs. Prints seconds per value and the values themselves.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python scripts/...`

import numpy as np  # noqa: E402

from metrics.fid import feature_statistics, fid_from_features, frechet_distance  # noqa: E402


def best_time(fn, repeat: int) -> tuple[float, float]:
    """(fastest wall time in seconds, the value returned)."""
    times, value = [], float("nan")
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--fake", type=int, default=120)
    parser.add_argument("--real", type=int, default=140)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    # pool3 features are averages of ReLU outputs: non-negative, skewed, correlated
    mixing = rng.normal(size=(64, args.dim))
    fake = np.maximum(rng.normal(size=(args.fake, 64)) @ mixing, 0) * 0.1
    real = np.maximum(rng.normal(0.2, 1.0, size=(args.real, 64)) @ mixing, 0) * 0.1
    (mu1, s1), (mu2, s2) = feature_statistics(fake), feature_statistics(real)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_feat, v_feat = best_time(lambda: fid_from_features(fake, real), args.repeat)
        t_stat, v_stat = best_time(lambda: frechet_distance(mu1, s1, mu2, s2), args.repeat)
    print(f"D={args.dim}, {args.fake} vs {args.real} features")
    print(f"fid_from_features: {t_feat:.3f} s  (FID {v_feat:.6f})")
    print(f"frechet_distance:  {t_stat:.3f} s  (FID {v_stat:.6f})")


if __name__ == "__main__":
    main()
