"""Tests for imagegen.metrics: FID (Heusel et al. 2017) and the classifier scores."""

from __future__ import annotations

import numpy as np
import pytest

from imagegen.metrics import (
    class_accuracy,
    confident_fraction,
    fid,
    frechet_distance,
    gaussian_stats,
)


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _reference_fd(mu1, s1, mu2, s2) -> float:
    """The standard (pytorch-fid) formula with scipy.linalg.sqrtm."""
    linalg = pytest.importorskip("scipy.linalg")
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("d", [1, 3, 16, 64])
def test_frechet_distance_matches_scipy_sqrtm(d: int) -> None:
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(_reference_fd(mu1, s1, mu2, s2), rel=1e-6, abs=1e-9)


def test_frechet_distance_closed_form_diagonal() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 5, size=10), rng.uniform(0.1, 5, size=10)
    mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_is_symmetric_and_zero_on_itself() -> None:
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    s1, s2 = _random_spd(rng, 8), _random_spd(rng, 8)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-9)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_singular_covariance_is_finite_and_nonnegative() -> None:
    # fewer samples than dimensions: rank-deficient covariances, as with few generated images
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(10, 32)), rng.normal(size=(10, 32))
    value = fid(a, b)
    assert np.isfinite(value) and value >= 0


def test_gaussian_stats_unbiased_covariance() -> None:
    x = np.random.default_rng(3).normal(size=(50, 4))
    mu, sigma = gaussian_stats(x)
    assert mu.dtype == np.float64 and sigma.shape == (4, 4)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False))
    np.testing.assert_allclose(sigma, (x - mu).T @ (x - mu) / 49)


def test_fid_self_zero_halves_small_shift_large() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4000, 8))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-8)
    half = fid(x[:2000], x[2000:])
    shifted = fid(x[:2000], x[2000:] + 1.0)  # expected 8 * 1^2 = 8
    assert half < 0.1
    assert shifted == pytest.approx(8.0, rel=0.1)
    assert shifted > 50 * half


def test_fid_invariant_to_sample_order() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(300, 6)), rng.normal(size=(200, 6)) * 1.5
    assert fid(a, b) == pytest.approx(fid(a[rng.permutation(300)], b[rng.permutation(200)]), rel=1e-9)


def test_fid_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        fid(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(ValueError):
        fid(np.zeros((1, 3)), np.zeros((10, 3)))


def test_confident_fraction_and_class_accuracy() -> None:
    probs = np.array([
        [0.95, 0.03, 0.02],  # confident, class 0
        [0.10, 0.85, 0.05],  # not confident (0.85 <= 0.9), class 1
        [0.00, 0.01, 0.99],  # confident, class 2
        [0.90, 0.05, 0.05],  # exactly 0.9 is not above the threshold
    ])
    assert confident_fraction(probs) == pytest.approx(0.5)
    assert confident_fraction(probs, threshold=0.8) == pytest.approx(1.0)
    assert class_accuracy(probs, np.array([0, 1, 2, 0])) == pytest.approx(1.0)
    assert class_accuracy(probs, np.array([0, 0, 2, 1])) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        class_accuracy(probs, np.array([0, 1]))
