"""Sample-quality metrics on feature vectors and pixels (pure numpy; CAS uses torch lazily).

The Fréchet Inception Distance (FID) of Heusel et al. 2017, "GANs Trained by a Two Time-Scale
Update Rule Converge to a Local Nash Equilibrium" (NeurIPS), fits a Gaussian to the features of
each image set and reports the Fréchet (2-Wasserstein) distance between the two Gaussians:

    FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})

As in the reference implementation the covariance is the unbiased sample covariance
(``np.cov(features, rowvar=False)``). Instead of ``scipy.linalg.sqrtm`` of the non-symmetric
product S1 S2 (which can return complex noise), the trace term is computed from symmetric
eigendecompositions: ``Tr((S1 S2)^{1/2}) = sum_i sqrt(lambda_i)`` where ``lambda_i`` are the
eigenvalues of the symmetric PSD matrix ``sqrt(S1) S2 sqrt(S1)`` (similar to S1 S2).

Also: KID (:func:`kid`, Binkowski et al. 2018), improved precision and recall
(:func:`precision_recall`, Kynkäänniemi et al. 2019), the training-copy rate on pixels
(:func:`memorization_rate`, Carlini et al. 2023) and CAS (:func:`cas`, Ravuri & Vinyals 2019;
imports torch lazily). Pairwise distances are computed in blocks of ``batch`` rows (float64).

The features come from any extractor (the data set's evaluator classifier, or the standard
FID Inception-v3 of :mod:`imagegen.features.inception`); apart from the pixel metrics and
CAS these functions never see images.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "gaussian_stats",
    "frechet_distance",
    "fid",
    "confident_fraction",
    "class_accuracy",
    "kid",
    "kid_subset_indices",
    "knn_radii",
    "precision_recall",
    "nearest_train",
    "memorization_ratios",
    "memorization_rate",
    "cas",
]


def _as_features(features: np.ndarray, name: str = "features", min_rows: int = 2,
                 purpose: str = "to estimate a covariance") -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, D), got shape {x.shape}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows {purpose}, got {x.shape[0]}")
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


def fid_groups(features: np.ndarray, mu_ref: np.ndarray, sigma_ref: np.ndarray, groups: int) -> list[float]:
    """FID against the reference ``(mu_ref, sigma_ref)`` of each of ``groups`` contiguous, equal
    parts of ``features`` (N, D): one FID per independent set of samples.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> f = rng.normal(size=(400, 2))
        >>> [round(v) for v in fid_groups(np.concatenate([f[:200], f[200:] + 3]), np.zeros(2), np.eye(2), 2)]
        [0, 18]
    """
    feats = _as_features(features)
    if not 1 <= groups <= len(feats) // 2:
        raise ValueError(f"groups must be between 1 and {len(feats) // 2} for {len(feats)} rows, got {groups}")
    return [frechet_distance(*gaussian_stats(part), mu_ref, sigma_ref) for part in np.array_split(feats, groups)]


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


def _same_dim(a: np.ndarray, b: np.ndarray, what: str = "feature dimensions") -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{what} differ: {a.shape[1]} vs {b.shape[1]}")


def _sq_dists(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Squared L2 distances (len(a), len(b)) as ||a||^2 + ||b||^2 - 2 a.b, clipped at 0."""
    d = (a * a).sum(axis=1)[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0, out=d)


# -- Kernel Inception Distance -----------------------------------------------------------------

def kid_subset_indices(n_a: int, n_b: int, *, subsets: int = 100, subset_size: int = 1000,
                       seed: int | np.random.Generator = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """The row subsets :func:`kid` averages over: ``subsets`` pairs (idx_a, idx_b).

    Each holds ``min(subset_size, n_a, n_b)`` distinct rows drawn with
    ``np.random.default_rng(seed)`` (``seed`` may be a Generator).

    Example:
        >>> [len(i) for i in kid_subset_indices(50, 30, subsets=1, subset_size=1000)[0]]
        [30, 30]
    """
    if int(subsets) < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    m = min(int(subset_size), int(n_a), int(n_b))
    if m < 2:
        raise ValueError(f"KID needs subsets of at least 2 samples per side, got {m}")
    rng = np.random.default_rng(seed)
    return [(rng.choice(n_a, m, replace=False), rng.choice(n_b, m, replace=False))
            for _ in range(int(subsets))]


def kid(features_a: np.ndarray, features_b: np.ndarray, *, subsets: int = 100,
        subset_size: int = 1000, degree: int = 3, gamma: float | None = None, coef0: float = 1,
        seed: int | np.random.Generator = 0) -> tuple[float, float]:
    """Kernel Inception Distance: (mean, std) of the unbiased MMD^2 over random subsets.

    Binkowski, Sutherland, Arbel & Gretton 2018, "Demystifying MMD GANs" (ICLR). With the
    polynomial kernel ``k(x, y) = (gamma x.y + coef0) ** degree`` (gamma defaults to 1/D) and
    subsets X, Y of m rows each (see :func:`kid_subset_indices`), as in the reference code:

        MMD^2_u = sum_{i!=j} [k(x_i,x_j) + k(y_i,y_j)] / (m (m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2

    Unbiased, so it can be slightly negative for equal distributions. The std is over subsets
    (ddof=0), as in torch-fidelity.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> mean, std = kid(rng.normal(size=(300, 4)), rng.normal(size=(300, 4)) + 1)
        >>> mean > 10 * std
        True
    """
    a = _as_features(features_a, "features_a", purpose="for the unbiased MMD")
    b = _as_features(features_b, "features_b", purpose="for the unbiased MMD")
    _same_dim(a, b)
    if int(degree) != degree or degree < 1:
        raise ValueError(f"degree must be a positive integer, got {degree}")
    g = 1.0 / a.shape[1] if gamma is None else float(gamma)
    values = []
    for ia, ib in kid_subset_indices(len(a), len(b), subsets=subsets, subset_size=subset_size,
                                     seed=seed):
        x, y, m = a[ia], b[ib], len(ia)
        kxx, kyy, kxy = ((g * (u @ v.T) + coef0) ** degree for u, v in ((x, x), (y, y), (x, y)))
        within = kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)
        values.append(within / (m * (m - 1)) - 2.0 * kxy.sum() / (m * m))
    return float(np.mean(values)), float(np.std(values))


# -- improved precision and recall -------------------------------------------------------------

def knn_radii(features: np.ndarray, *, k: int = 3, batch: int = 1024) -> np.ndarray:
    """Distance from each row to its k-th nearest *other* row (float64 (N,)): the ball radii
    of :func:`precision_recall`. A duplicate row counts as a neighbour at distance 0.

    Example:
        >>> knn_radii(np.array([[0.0], [1.0], [3.0]]), k=1)
        array([1., 1., 2.])
    """
    x = _as_features(features, "features", min_rows=int(k) + 1,
                     purpose=f"to find a {k}-th nearest neighbour")
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    batch = max(1, int(batch))
    x_sq = (x * x).sum(axis=1)
    out = np.empty(len(x))
    for s in range(0, len(x), batch):
        d = _sq_dists(x[s:s + batch], x, x_sq)
        d[np.arange(len(d)), np.arange(s, s + len(d))] = np.inf  # a point is not its own neighbour
        out[s:s + batch] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return np.sqrt(out)


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = 3,
                     batch: int = 1024) -> tuple[float, float]:
    """Improved precision and recall of ``fake`` features against ``real`` features.

    Kynkäänniemi, Karras, Laine, Lehtinen & Aila 2019, "Improved Precision and Recall Metric
    for Assessing Generative Models" (NeurIPS). A set's manifold is the union of balls around
    its rows, each with radius = distance to its k-th nearest other row (:func:`knn_radii`).

    - precision = fraction of fake rows inside the *real* manifold (are samples realistic?)
    - recall = fraction of real rows inside the *fake* manifold (is the data covered?)

    "Inside" means distance <= radius, as in the reference code. Mode collapse gives high
    precision and low recall. ``precision_recall(fake, real)`` swaps the two numbers.

    Example:
        >>> line = np.arange(10.0)[:, None]
        >>> precision_recall(line, line[:5], k=1)  # real points 0..5 lie within 1 of a fake point
        (1.0, 0.6)
    """
    r = _as_features(real, "real", min_rows=int(k) + 1, purpose=f"for k={k} nearest neighbours")
    f = _as_features(fake, "fake", min_rows=int(k) + 1, purpose=f"for k={k} nearest neighbours")
    _same_dim(r, f)
    batch = max(1, int(batch))
    r2, f2 = knn_radii(r, k=k, batch=batch) ** 2, knn_radii(f, k=k, batch=batch) ** 2
    r_sq = (r * r).sum(axis=1)
    fake_in_real, real_in_fake = np.zeros(len(f), dtype=bool), np.zeros(len(r), dtype=bool)
    for s in range(0, len(f), batch):
        d = _sq_dists(f[s:s + batch], r, r_sq)  # (fake block, real)
        fake_in_real[s:s + batch] = (d <= r2[None, :]).any(axis=1)
        real_in_fake |= (d <= f2[s:s + batch, None]).any(axis=0)
    return float(fake_in_real.mean()), float(real_in_fake.mean())


# -- memorisation (copies of training images) --------------------------------------------------

def _flat_images(images: np.ndarray, name: str) -> np.ndarray:
    """``images`` (N, ...) as (N, D) without converting them (a view when possible)."""
    x = np.asarray(images)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty array (N, ...) of images, got shape {x.shape}")
    return x.reshape(len(x), -1)


def _to_float(flat: np.ndarray) -> np.ndarray:
    """Rows of :func:`_flat_images` as float64 pixels (uint8 scaled to [0, 1]), unchecked."""
    return flat.astype(np.float64) / 255.0 if flat.dtype == np.uint8 else flat.astype(np.float64)


def _as_pixels(flat: np.ndarray, name: str) -> np.ndarray:
    """:func:`_to_float`, refusing NaN and infinite values with an error naming ``name``."""
    x = _to_float(flat)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


# Rows converted to float64 at a time: a 128x128 RGB training set of 3,300 images is 1.3 GB
# in float64, a chunk of 128 of them 50 MB (the search stays exact; only its blocking changes).
TRAIN_CHUNK = 128


def nearest_train(samples: np.ndarray, train: np.ndarray, *, k: int = 51,
                  batch: int = 256, train_chunk: int = TRAIN_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest training images of each sample by L2 distance on pixels.

    Images (N, ...) are flattened; uint8 is scaled to [0, 1], floats are used as given (put
    both sets on the same scale). Returns ``(indices, distances)``, both (N, k), nearest first
    (exact ties among the candidates: lower training index first). Candidates come from a blocked
    ||a||^2 + ||b||^2 - 2ab search (float64) over ``train_chunk`` training images at a time, so
    memory stays bounded whatever the size of the training set; their distances are then
    recomputed exactly from the pixel differences, so an exact copy has distance 0.0.

    Example:
        >>> train = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
        >>> idx, dist = nearest_train(np.array([[0.9, 0.0]]), train, k=2)
        >>> idx.tolist(), np.round(dist, 6).tolist()
        ([[1, 0]], [[0.1, 0.9]])
    """
    s_flat, t_flat = _flat_images(samples, "samples"), _flat_images(train, "train")
    _same_dim(s_flat, t_flat, "pixel counts per image")
    n_t, k, batch, chunk = len(t_flat), int(k), max(1, int(batch)), max(1, int(train_chunk))
    if not 1 <= k <= n_t:
        raise ValueError(f"k must lie in [1, {n_t}] (the training set size), got {k}")
    # one checked pass over the training set; the search below converts its chunks again unchecked
    t_sq = np.concatenate([np.einsum("ij,ij->i", x, x) for x in
                           (_as_pixels(t_flat[i:i + chunk], "train") for i in range(0, n_t, chunk))])
    c = min(n_t, k + 8)  # a few spare candidates against rounding in the screening step
    indices, distances = np.empty((len(s_flat), k), dtype=np.int64), np.empty((len(s_flat), k))
    for start in range(0, len(s_flat), batch):
        s = _as_pixels(s_flat[start:start + batch], "samples")
        best_d = best_i = None
        for t0 in range(0, n_t, chunk):  # keep the c smallest screening distances seen so far
            tc = _to_float(t_flat[t0:t0 + chunk])
            d = _sq_dists(s, tc, t_sq[t0:t0 + len(tc)])
            i = np.broadcast_to(np.arange(t0, t0 + len(tc)), d.shape)
            if best_d is not None:
                d, i = np.concatenate([best_d, d], axis=1), np.concatenate([best_i, i], axis=1)
            if d.shape[1] > c:
                part = np.argpartition(d, c - 1, axis=1)[:, :c]
                d, i = np.take_along_axis(d, part, axis=1), np.take_along_axis(i, part, axis=1)
            best_d, best_i = d, np.array(i)
        cand = np.sort(best_i, axis=1)  # index order, so the stable sort below breaks ties by index
        for r0 in range(0, len(cand), 2):  # exact distances, two rows at a time (memory)
            rows = cand[r0:r0 + 2]
            t_rows = _to_float(t_flat[rows.ravel()]).reshape(len(rows), rows.shape[1], -1)
            diff = s[r0:r0 + len(rows), None, :] - t_rows
            exact = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
            order = np.argsort(exact, axis=1, kind="stable")[:, :k]
            sl = slice(start + r0, start + r0 + len(rows))
            indices[sl] = np.take_along_axis(rows, order, axis=1)
            distances[sl] = np.take_along_axis(exact, order, axis=1)
    return indices, distances


def memorization_ratios(samples: np.ndarray, train: np.ndarray, *, neighbours: int = 50,
                        batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: (index of the nearest training image, d_1 / mean(d_2 .. d_{neighbours+1})).

    d_i is the L2 pixel distance to the i-th nearest training image (:func:`nearest_train`); an
    exact copy (d_1 = 0) has ratio 0 even when its next neighbours are copies too.

    Example:
        >>> train = np.random.default_rng(0).random((60, 16))
        >>> idx, ratio = memorization_ratios(train[:2], train)
        >>> idx.tolist(), ratio.tolist()
        ([0, 1], [0.0, 0.0])
    """
    if int(neighbours) < 1:
        raise ValueError(f"neighbours must be >= 1, got {neighbours}")
    idx, dist = nearest_train(samples, train, k=int(neighbours) + 1, batch=batch)
    d1, rest = dist[:, 0], dist[:, 1:].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(d1 == 0.0, 0.0, d1 / rest)
    return idx[:, 0], ratio


def memorization_rate(samples: np.ndarray, train: np.ndarray, *, ratio: float = 1 / 3,
                      neighbours: int = 50, batch: int = 256) -> float:
    """Fraction of generated ``samples`` that are near-copies of a ``train`` image.

    Carlini et al. 2023, "Extracting Training Data from Diffusion Models" (USENIX Security):
    a sample counts as memorised when its L2 pixel distance to its nearest training image is
    less than ``ratio`` times the mean distance to its next ``neighbours`` nearest training
    images (2nd..51st by default) -- close to one image, not merely in a dense region.
    Images are flattened (uint8 -> [0, 1]); exact search, see :func:`nearest_train`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> train = rng.random((100, 64))
        >>> memorization_rate(np.concatenate([train[:5], rng.random((15, 64))]), train)
        0.25
    """
    _, r = memorization_ratios(samples, train, neighbours=neighbours, batch=batch)
    return float(np.mean(r < ratio))


# -- Classification Accuracy Score -------------------------------------------------------------

def _labelled(images: np.ndarray, labels: np.ndarray, name: str,
              num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(images)
    x = x[..., None] if x.ndim == 3 else x
    y = np.asarray(labels).reshape(-1)
    if x.ndim != 4 or x.dtype != np.uint8 or len(x) == 0:
        raise ValueError(f"{name}_images must be non-empty uint8 (N, H, W, C), got {x.dtype} {x.shape}")
    if len(y) != len(x):
        raise ValueError(f"{len(x)} {name}_images but {len(y)} {name}_labels")
    if y.min() < 0 or y.max() >= num_classes or not np.all(y == np.round(y)):
        raise ValueError(f"{name}_labels must be integers in [0, {num_classes - 1}]")
    return x, y.astype(np.int64)


def cas(gen_images: np.ndarray, gen_labels: np.ndarray, real_images: np.ndarray,
        real_labels: np.ndarray, *, num_classes: int, arch: str = "mlp", seed: int = 0,
        epochs: int | None = None) -> float:
    """Classification Accuracy Score: train on generated images, test on real ones.

    Ravuri & Vinyals 2019, "Classification Accuracy Score for Conditional Generative Models"
    (NeurIPS). A classifier of the evaluator's architecture and training recipe
    (:mod:`imagegen.features.evaluator`: ``"mlp"`` or ``"cnn"``) is trained on all of
    ``gen_images`` with their conditioning labels, then scored on held-out ``real_images``.
    Images are uint8 (N, H, W, C) or (N, H, W). Deterministic for a seed; one torch thread.

    Example:
        >>> cas(gen, gen_y, real_test, real_test_y, num_classes=10)  # doctest: +SKIP
        0.93
    """
    import torch

    from .features.evaluator import (
        ARCHITECTURES, DEFAULT_LR, Evaluator, _fit, _to_tensor, default_epochs, torch_threads)

    if arch not in ARCHITECTURES or num_classes < 2:
        raise ValueError(f"need arch in {sorted(ARCHITECTURES)} and num_classes >= 2, "
                         f"got {arch!r}, {num_classes}")
    (xg, yg), (xr, yr) = (_labelled(gen_images, gen_labels, "gen", num_classes),
                          _labelled(real_images, real_labels, "real", num_classes))
    if xg.shape[1:] != xr.shape[1:]:
        raise ValueError(f"image shapes differ: generated {xg.shape[1:]} vs real {xr.shape[1:]}")
    shape = tuple(int(v) for v in xg.shape[1:])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = ARCHITECTURES[arch](shape, num_classes)
    with torch_threads(1):
        _fit(module, _to_tensor(xg), torch.from_numpy(yg), lr=DEFAULT_LR[arch], seed=seed,
             epochs=default_epochs(arch, len(xg)) if epochs is None else int(epochs),
             batch_size=64, desc=f"CAS classifier ({arch})", progress=False)
    clf = Evaluator(arch=arch, input_shape=shape, num_classes=num_classes, module=module)
    return class_accuracy(clf.probs(xr, progress=False), yr)
