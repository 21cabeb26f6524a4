"""FID and KID on feature arrays with known answers (no network, no images)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy.stats import special_ortho_group

from metrics.fid import feature_statistics, fid_from_features, frechet_distance
from metrics.kid import kid_from_features, mmd2_unbiased, polynomial_kernel
from util.errors import UserError


def _commuting_covariances(d: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two non-diagonal covariances sharing eigenvectors, so sqrt(S1 S2) = Q sqrt(a b) Q^T."""
    q = special_ortho_group.rvs(d, random_state=int(rng.integers(1 << 31)))
    a, b = rng.uniform(0.2, 3.0, d), rng.uniform(0.2, 3.0, d)
    return q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T, a, b


# ------------------------------------------------------------------------------------------ FID


def test_fid_of_a_set_against_itself_is_zero():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(400, 32)) @ rng.normal(size=(32, 32))
    assert abs(fid_from_features(feats, feats)) < 1e-8 * np.trace(np.cov(feats, rowvar=False))


def test_fid_of_a_set_against_itself_is_zero_with_singular_covariance():
    # fewer samples than dimensions, as with a small test set and 2048-d features
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(20, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the eps fallback may announce itself
        value = fid_from_features(feats, feats)
    assert abs(value) < 1e-3 * np.trace(np.cov(feats, rowvar=False))


def test_frechet_distance_matches_closed_form_for_commuting_covariances():
    rng = np.random.default_rng(2)
    d = 16
    s1, s2, a, b = _commuting_covariances(d, rng)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_matches_symmetric_formula_for_general_covariances():
    # Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2): a different, symmetric route via eigh
    rng = np.random.default_rng(3)
    d = 12
    m1, m2 = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = m1 @ m1.T + 0.1 * np.eye(d), m2 @ m2.T + 0.1 * np.eye(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    w, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(inner))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_fid_of_gaussian_samples_approaches_the_analytic_distance():
    rng = np.random.default_rng(4)
    d, n = 8, 50_000
    s1, s2, a, b = _commuting_covariances(d, rng)
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    x = rng.multivariate_normal(mu1, s1, size=n)
    y = rng.multivariate_normal(mu2, s2, size=n)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert fid_from_features(x, y) == pytest.approx(expected, rel=0.03)


def test_frechet_distance_equals_pytorch_fid_formula():
    fid_score = pytest.importorskip("pytorch_fid.fid_score", reason="pytorch-fid is not installed")
    rng = np.random.default_rng(5)
    for n in (200, 20):  # well-conditioned, then singular (n < d)
        x, y = rng.normal(size=(n, 64)), rng.normal(0.3, 1.2, size=(n, 64))
        (mu1, s1), (mu2, s2) = feature_statistics(x), feature_statistics(y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pytorch-fid passes scipy's deprecated `disp`
            theirs = fid_score.calculate_frechet_distance(mu1, s1, mu2, s2)
            ours = frechet_distance(mu1, s1, mu2, s2)
        assert ours == pytest.approx(theirs, rel=1e-9)


def test_fid_needs_two_samples():
    with pytest.raises(UserError, match="at least 2"):
        fid_from_features(np.ones((1, 4)), np.ones((5, 4)))


# ------------------------------------------------------------------------------------------ KID


def _mmd2_by_loops(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 written as the textbook sums over index pairs, O(n^2) Python."""
    d = x.shape[1]

    def k(u: np.ndarray, v: np.ndarray) -> float:
        return (float(u @ v) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_polynomial_kernel_is_cubic_in_the_scaled_dot_product():
    x, y = np.array([[1.0, 2.0, 0.0]]), np.array([[3.0, -1.0, 4.0]])
    assert polynomial_kernel(x, y)[0, 0] == pytest.approx((1 / 3 + 1) ** 3)


def test_kid_matches_direct_quadratic_computation():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.4, 1.0, size=(15, 5))
    direct = _mmd2_by_loops(x, y)
    assert mmd2_unbiased(x, y) == pytest.approx(direct, rel=1e-10)
    # subsets as large as the smaller set (12): for x every subset is x itself, for y a subset
    # of 12 of the 15 rows; with equal sizes every subset is a permutation: same value, std 0
    mean, std = kid_from_features(x, y[:12], num_subsets=5, subset_size=1000)
    assert mean == pytest.approx(_mmd2_by_loops(x, y[:12]), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_is_unbiased_for_equal_distributions():
    # Average over many independent small draws from one distribution: the U-statistic is
    # centred on 0, while the biased V-statistic (diagonal kept) is clearly positive.
    rng = np.random.default_rng(7)
    m, d, trials = 10, 4, 400
    unbiased, biased = [], []
    for _ in range(trials):
        x, y = rng.normal(size=(m, d)), rng.normal(size=(m, d))
        unbiased.append(kid_from_features(x, y, num_subsets=1, subset_size=m)[0])
        kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
        biased.append(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    stderr = np.std(unbiased) / np.sqrt(trials)
    assert abs(np.mean(unbiased)) < 3 * stderr
    assert np.mean(biased) > 10 * stderr


def test_kid_same_distribution_is_zero_within_its_std_and_different_is_positive():
    rng = np.random.default_rng(8)
    d = 16
    x, y = rng.normal(size=(500, d)), rng.normal(size=(500, d))
    mean, std = kid_from_features(x, y, num_subsets=50, subset_size=100, seed=0)
    assert std > 0
    assert abs(mean) < 2 * std

    z = rng.normal(0.5, 1.0, size=(500, d))
    mean_diff, std_diff = kid_from_features(x, z, num_subsets=50, subset_size=100, seed=0)
    assert mean_diff > 5 * std_diff
    assert mean_diff > 10 * abs(mean)


def test_kid_is_reproducible_with_a_seed():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(60, 8)), rng.normal(size=(70, 8))
    first = kid_from_features(x, y, num_subsets=10, subset_size=30, seed=3)
    assert kid_from_features(x, y, num_subsets=10, subset_size=30, seed=3) == first
    assert kid_from_features(x, y, num_subsets=10, subset_size=30, seed=4) != first


def test_kid_needs_two_samples():
    with pytest.raises(UserError, match="at least 2"):
        kid_from_features(np.ones((1, 4)), np.ones((5, 4)))
