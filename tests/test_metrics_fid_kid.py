"""FID and KID on feature arrays with known answers (no network, no images)."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest
import scipy.linalg
from metrics_testutils import mmd2_by_loops
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
    # fewer samples than dimensions, as with a small test set and 2048-d features; both routes,
    # silently (no fallback to announce) and never below 0, where rounding would put a plain formula
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(20, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = [fid_from_features(feats, feats, route=route) for route in ("features", "statistics")]
    for value in values:
        assert 0.0 <= value < 1e-9 * np.trace(np.cov(feats, rowvar=False))


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


def _pytorch_fid(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    fid_score = pytest.importorskip("pytorch_fid.fid_score", reason="pytorch-fid is not installed")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # it prints its eps retry
        warnings.simplefilter("ignore")  # and passes scipy's deprecated `disp`
        return float(fid_score.calculate_frechet_distance(mu1, s1, mu2, s2))


def _skewed_features(rng: np.random.Generator, n: int, d: int, scale: float) -> np.ndarray:
    """Non-negative, skewed and correlated, like pool3 activations (averages of ReLU outputs)."""
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return np.maximum(rng.normal(scale, 1.0, size=(n, d)) @ mixing, 0.0) + rng.exponential(0.05, size=(n, d))


@pytest.mark.parametrize(
    ("n_fake", "n_real", "d"),
    [
        (200, 300, 64),  # more images than dimensions: full-rank covariances
        (2000, 1500, 16),
        (20, 30, 64),  # fewer: singular covariances, pytorch-fid's sqrtm on a singular product
        (7, 5, 64),
        (40, 40, 256),
    ],
)
def test_fid_agrees_with_pytorch_fid_where_it_succeeds(n_fake: int, n_real: int, d: int):
    rng = np.random.default_rng(n_fake * 1000 + d)
    x, y = _skewed_features(rng, n_fake, d, 0.0), _skewed_features(rng, n_real, d, 0.3)
    (mu1, s1), (mu2, s2) = feature_statistics(x), feature_statistics(y)
    theirs = _pytorch_fid(mu1, s1, mu2, s2)
    assert np.isfinite(theirs) and theirs > 0  # a case pytorch-fid handles
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(theirs, rel=1e-4)
    for route in ("auto", "features", "statistics"):
        assert fid_from_features(x, y, route=route) == pytest.approx(theirs, rel=1e-4), route


@pytest.mark.slow  # pytorch-fid's 2048x2048 sqrtm takes ~15 s on one core
def test_fid_agrees_with_pytorch_fid_for_a_test_set_of_2048_d_features():
    rng = np.random.default_rng(12)
    x, y = _skewed_features(rng, 120, 2048, 0.0), _skewed_features(rng, 140, 2048, 0.3)
    (mu1, s1), (mu2, s2) = feature_statistics(x), feature_statistics(y)
    theirs = _pytorch_fid(mu1, s1, mu2, s2)
    assert fid_from_features(x, y) == pytest.approx(theirs, rel=1e-4)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(theirs, rel=1e-4)


def _badly_scaled_features(seed: int, d: int, n_fake: int, n_real: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature dimensions whose scales span ~8 orders of magnitude, fewer images than dimensions:
    the product of the covariances is singular and far from normal, and ``sqrtm`` of it comes
    out with a large imaginary part (this seed: pytorch-fid 0.3.0 on scipy 1.17 raises)."""
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.normal(0.0, 3.0, d))
    return rng.exponential(1.0, size=(n_fake, d)) * scales, rng.exponential(1.1, size=(n_real, d)) * scales


def test_fid_is_finite_where_sqrtm_of_the_product_fails():
    x, y = _badly_scaled_features(seed=209, d=128, n_fake=90, n_real=37)
    (mu1, s1), (mu2, s2) = feature_statistics(x), feature_statistics(y)
    with pytest.raises(ValueError, match="Imaginary component"):  # the case is a hard one
        _pytorch_fid(mu1, s1, mu2, s2)

    value = frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(value) and value > 0
    swapped = frechet_distance(mu2, s2, mu1, s1)  # Tr sqrt(S1 S2) = Tr sqrt(S2 S1): the other eigh
    assert np.isfinite(swapped) and swapped > 0
    # From the features (singular values of the 90 x 37 cross product) the value is exact: 2e-15
    # from a 40-digit mpmath computation when this test was written. The covariances themselves,
    # with entries spanning 16 orders of magnitude, only hold it to ~1e-6.
    from_features = fid_from_features(x, y)
    assert value == pytest.approx(from_features, rel=1e-5)
    assert swapped == pytest.approx(from_features, rel=1e-5)
    # FID does not change when the feature space is rotated
    q = special_ortho_group.rvs(128, random_state=0)
    assert fid_from_features(x @ q, y @ q) == pytest.approx(from_features, rel=1e-9)


def test_fid_of_identical_sets_is_not_negative_where_pytorch_fid_is():
    rng = np.random.default_rng(0)
    feats = _skewed_features(rng, 3, 256, 0.0)
    (mu, sigma) = feature_statistics(feats)
    assert _pytorch_fid(mu, sigma, mu, sigma.copy()) < 0  # rounding below zero
    assert frechet_distance(mu, sigma, mu, sigma.copy()) >= 0
    assert 0 <= fid_from_features(feats, feats.copy()) < 1e-9 * np.trace(sigma)


@pytest.mark.parametrize("route", ["features", "statistics"])
def test_fid_of_rank_deficient_features_equals_fid_in_their_subspace(route: str):
    # Features spanning a 3-d subspace of a 512-d space, with 40 images: FID is invariant under
    # rotations and zero padding, so it equals the FID of the 3-d coordinates, which is well
    # conditioned and checked against the closed form of scipy's sqrtm on 3x3 matrices.
    rng = np.random.default_rng(13)
    z1, z2 = rng.normal(size=(40, 3)) * [1.0, 2.0, 0.5], rng.normal(0.4, 1.0, size=(40, 3))
    basis = np.linalg.qr(rng.normal(size=(512, 3)))[0]  # orthonormal columns
    (m1, c1), (m2, c2) = feature_statistics(z1), feature_statistics(z2)
    expected = np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real)
    assert fid_from_features(z1 @ basis.T, z2 @ basis.T, route=route) == pytest.approx(expected, rel=1e-9)


def test_non_finite_features_are_refused():
    feats = np.ones((4, 8))
    feats[1, 2] = np.nan
    with pytest.raises(UserError, match="NaN or inf"):
        fid_from_features(feats, np.ones((4, 8)))


def test_fid_needs_two_samples():
    with pytest.raises(UserError, match="at least 2"):
        fid_from_features(np.ones((1, 4)), np.ones((5, 4)))


# ------------------------------------------------------------------------------------------ KID


def test_polynomial_kernel_is_cubic_in_the_scaled_dot_product():
    x, y = np.array([[1.0, 2.0, 0.0]]), np.array([[3.0, -1.0, 4.0]])
    assert polynomial_kernel(x, y)[0, 0] == pytest.approx((1 / 3 + 1) ** 3)


def test_kid_matches_direct_quadratic_computation():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.4, 1.0, size=(15, 5))
    direct = mmd2_by_loops(x, y)
    assert mmd2_unbiased(x, y) == pytest.approx(direct, rel=1e-10)
    # subsets as large as the smaller set (12): for x every subset is x itself, for y a subset
    # of 12 of the 15 rows; with equal sizes every subset is a permutation: same value, std 0
    mean, std = kid_from_features(x, y[:12], num_subsets=5, subset_size=1000)
    assert mean == pytest.approx(mmd2_by_loops(x, y[:12]), rel=1e-10)
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
