"""Sample-quality metrics on feature vectors (pure numpy).

The Fréchet Inception Distance (FID) of Heusel et al. 2017, "GANs Trained by a Two Time-Scale
Update Rule Converge to a Local Nash Equilibrium" (NeurIPS), fits a Gaussian to the features of
each image set and reports the Fréchet (2-Wasserstein) distance between the two Gaussians:

    FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})

As in the reference implementation the covariance is the unbiased sample covariance
(``np.cov(features, rowvar=False)``). Instead of ``scipy.linalg.sqrtm`` of the non-symmetric
product S1 S2 (which can return complex noise), the trace term is computed from symmetric
eigendecompositions: ``Tr((S1 S2)^{1/2}) = sum_i sqrt(lambda_i)`` where ``lambda_i`` are the
eigenvalues of the symmetric PSD matrix ``sqrt(S1) S2 sqrt(S1)`` (similar to S1 S2).

The features come from any extractor (the data set's evaluator classifier here, Inception-v3
later); these functions never see images.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "gaussian_stats",
    "frechet_distance",
    "fid",
    "confident_fraction",
    "class_accuracy",
]


def _as_features(features: np.ndarray, name: str = "features") -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, D), got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows to estimate a covariance, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of ``features`` (N, D), both float64.

    Example:
        >>> mu, sigma = gaussian_stats(np.random.default_rng(0).normal(size=(100, 3)))
        >>> mu.shape, sigma.shape
        ((3,), (3, 3))
    """
    x = _as_features(features)
    mu = x.mean(axis=0)
    sigma = np.cov(x, rowvar=False)
    return mu, np.atleast_2d(sigma)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    sym = (matrix + matrix.T) / 2.0
    w, v = np.linalg.eigh(sym)
    w = np.clip(w, 0.0, None)
    return (v * np.sqrt(w)) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    Computed as ``||mu1-mu2||^2 + Tr(S1) + Tr(S2) - 2 sum sqrt(eig(sqrt(S1) S2 sqrt(S1)))``,
    which is stable for singular covariances (more features than samples) and never complex.

    Example:
        >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))
        4.0
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors have different shapes: {mu1.shape} vs {mu2.shape}")
    d = mu1.shape[0]
    if s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"covariances must be ({d}, {d}), got {s1.shape} and {s2.shape}")
    diff = mu1 - mu2
    root1 = _sqrt_psd(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    # Rounding can push an exact zero slightly negative; a distance is never negative.
    return max(value, 0.0)


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets (N_a, D) and (N_b, D).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> 17 < fid(rng.normal(size=(500, 2)), rng.normal(size=(500, 2)) + 3) < 20  # ~ 2 * 3^2
        True
    """
    a = _as_features(features_a, "features_a")
    b = _as_features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def _as_probs(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"probs must be a non-empty 2-D array (N, classes), got shape {p.shape}")
    return p


def confident_fraction(probs: np.ndarray, threshold: float = 0.9) -> float:
    """Fraction of rows of ``probs`` (N, classes) whose largest probability exceeds ``threshold``.

    A recognisability score: generated digits the evaluator is sure about look like digits.

    Example:
        >>> confident_fraction(np.array([[0.95, 0.05], [0.6, 0.4]]))
        0.5
    """
    p = _as_probs(probs)
    return float(np.mean(p.max(axis=1) > threshold))


def class_accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose most probable class equals ``labels`` (N,).

    For class-conditional generation: does the evaluator recognise the requested class?

    Example:
        >>> class_accuracy(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 0]))
        0.5
    """
    p = _as_probs(probs)
    y = np.asarray(labels).reshape(-1)
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"{p.shape[0]} probability rows but {y.shape[0]} labels")
    return float(np.mean(p.argmax(axis=1) == y))
