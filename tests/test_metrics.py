"""Tests for imagegen.metrics: FID (Heusel et al. 2017), KID, precision/recall, memorisation, CAS
and the classifier scores."""

from __future__ import annotations

import numpy as np
import pytest

from imagegen.metrics import (
    cas,
    class_accuracy,
    confident_fraction,
    fid,
    fid_groups,
    frechet_distance,
    gaussian_stats,
    kid,
    kid_subset_indices,
    knn_radii,
    memorization_rate,
    memorization_ratios,
    nearest_train,
    precision_recall,
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


def test_fid_groups_scores_each_contiguous_set_against_the_reference() -> None:
    rng = np.random.default_rng(6)
    d = 4
    # three sets of 1,500 from N(shift, I) against the reference N(0, I): FID ~ d * shift^2
    sets = [rng.normal(size=(1500, d)) + s for s in (0.0, 1.0, 2.0)]
    fids = fid_groups(np.concatenate(sets), np.zeros(d), np.eye(d), 3)
    assert fids == pytest.approx([0.0, 4.0, 16.0], rel=0.08, abs=0.05)
    # each equals the Frechet distance of its own part, and one group is the whole set
    assert fids[1] == pytest.approx(frechet_distance(*gaussian_stats(sets[1]), np.zeros(d), np.eye(d)), rel=1e-12)
    whole = np.concatenate(sets)
    assert fid_groups(whole, np.zeros(d), np.eye(d), 1) == [frechet_distance(*gaussian_stats(whole), np.zeros(d), np.eye(d))]
    for bad in (0, 2251):
        with pytest.raises(ValueError, match="groups"):
            fid_groups(whole, np.zeros(d), np.eye(d), bad)


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


# -- KID (Binkowski et al. 2018) ---------------------------------------------------------------

def _naive_mmd2(x: np.ndarray, y: np.ndarray, gamma: float, coef0: float = 1.0, degree: int = 3) -> float:
    """Unbiased MMD^2 of the KID reference code, written as plain double loops over pairs."""
    def k(u, v):
        return (gamma * sum(float(p) * float(q) for p, q in zip(u, v)) + coef0) ** degree

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_kid_single_full_subset_matches_naive_double_loop() -> None:
    rng = np.random.default_rng(10)
    a, b = rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) * 1.3 + 0.2
    mean, std = kid(a, b, subsets=1, subset_size=40)
    assert mean == pytest.approx(_naive_mmd2(a, b, gamma=1 / 8), rel=1e-10, abs=1e-12)
    assert std == 0.0
    # other kernel parameters are honoured
    mean2, _ = kid(a, b, subsets=1, subset_size=40, degree=2, gamma=0.5, coef0=0.3)
    assert mean2 == pytest.approx(_naive_mmd2(a, b, gamma=0.5, coef0=0.3, degree=2), rel=1e-10)


def test_kid_mean_and_std_over_the_same_subsets_as_naive() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(40, 8)), rng.normal(size=(55, 8)) + 0.3
    mean, std = kid(a, b, subsets=5, subset_size=20, seed=3)
    subs = kid_subset_indices(40, 55, subsets=5, subset_size=20, seed=3)
    assert len(subs) == 5
    for ia, ib in subs:
        assert len(ia) == len(set(ia.tolist())) == 20 and len(ib) == len(set(ib.tolist())) == 20
        assert ia.max() < 40 and ib.max() < 55
    naive = [_naive_mmd2(a[ia], b[ib], gamma=1 / 8) for ia, ib in subs]
    assert mean == pytest.approx(np.mean(naive), rel=1e-10)
    assert std == pytest.approx(np.std(naive), rel=1e-8)
    # a Generator may be passed instead of a seed; equal seeds reproduce, subset_size is clipped
    assert kid(a, b, subsets=5, subset_size=20, seed=np.random.default_rng(3)) == (mean, std)
    assert kid(a, b, subsets=5, subset_size=20, seed=4) != (mean, std)
    assert all(len(ia) == 40 for ia, _ in kid_subset_indices(40, 55, subsets=2, subset_size=1000))


def test_kid_same_distribution_near_zero_shifted_clearly_positive() -> None:
    rng = np.random.default_rng(12)
    a, b = rng.normal(size=(600, 16)), rng.normal(size=(600, 16))
    mean, std = kid(a, b, subsets=20, subset_size=200)
    assert abs(mean) < 3 * std + 1e-3
    shifted, s_std = kid(a, b + 0.5, subsets=20, subset_size=200)
    assert shifted > 0.5 and shifted > 5 * s_std and shifted > 100 * abs(mean)


def test_kid_invariant_to_sample_order() -> None:
    rng = np.random.default_rng(13)
    a, b = rng.normal(size=(60, 5)), rng.normal(size=(60, 5)) + 0.2
    ref = kid(a, b, subsets=1, subset_size=60)[0]
    assert kid(a[rng.permutation(60)], b, subsets=1, subset_size=60)[0] == pytest.approx(ref, rel=1e-10)
    assert kid(a, b[rng.permutation(60)], subsets=1, subset_size=60)[0] == pytest.approx(ref, rel=1e-10)


def test_kid_rejects_bad_inputs() -> None:
    ok = np.zeros((10, 3))
    with pytest.raises(ValueError, match="differ"):
        kid(ok, np.zeros((10, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        kid(np.zeros((1, 3)), ok)
    bad = ok.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kid(ok, bad)
    with pytest.raises(ValueError, match="subsets"):
        kid(ok, ok, subsets=0)


# -- improved precision and recall (Kynkäänniemi et al. 2019) ----------------------------------

def _line(*xs: float) -> np.ndarray:
    return np.asarray(xs, dtype=np.float64)[:, None]


def test_knn_radii_by_hand_in_1d() -> None:
    x = _line(0, 1, 3, 7, 8)
    # k=1: nearest other point; k=2: second nearest (the point itself never counts)
    np.testing.assert_allclose(knn_radii(x, k=1), [1, 1, 2, 1, 1])
    np.testing.assert_allclose(knn_radii(x, k=2), [3, 2, 3, 4, 5])
    np.testing.assert_allclose(knn_radii(x, k=2, batch=2), [3, 2, 3, 4, 5])
    # a duplicate is a neighbour at distance 0
    np.testing.assert_allclose(knn_radii(_line(0, 0, 5), k=1), [0, 0, 5])
    with pytest.raises(ValueError, match="at least 3 rows"):
        knn_radii(_line(0, 1), k=2)


def test_precision_recall_identical_grids() -> None:
    g = np.stack(np.meshgrid(np.arange(8.0), np.arange(8.0)), -1).reshape(-1, 2)
    assert precision_recall(g, g.copy()) == (1.0, 1.0)


def test_precision_recall_subset_by_hand() -> None:
    real = _line(*range(10))
    fake = real[:5]  # 0..4
    # k=1: fake radii all 1, fake manifold [-1, 5] (<= radius) holds real 0..5 -> recall 6/10
    assert precision_recall(real, fake, k=1) == (1.0, 0.6)
    # k=2: fake radii [2, 1, 1, 1, 2]: manifold [-2, 6] holds real 0..6 -> recall 7/10
    assert precision_recall(real, fake, k=2) == (1.0, 0.7)
    # every other point: fake {0,2,4,6,8} with k=1 radius 2 covers 0..9 (9 is 1 from 8)
    assert precision_recall(real, real[::2], k=1) == (1.0, 1.0)
    # fake = real shifted by 1.5 (radii 1 on both sides): fake 1.5..9.5 lie within 1 of a real
    # point, 10.5 does not; real 1..9 lie within 1 of a fake point, 0 does not
    assert precision_recall(real, real + 1.5, k=1) == (0.9, 0.9)


def test_precision_recall_far_away_is_zero() -> None:
    rng = np.random.default_rng(20)
    real = rng.normal(size=(200, 4))
    assert precision_recall(real, rng.normal(size=(200, 4)) + 100) == (0.0, 0.0)


def test_precision_recall_mode_collapse_direction() -> None:
    rng = np.random.default_rng(21)
    real = rng.normal(size=(800, 2))
    fake = rng.normal(size=(400, 2)) * 0.1  # all samples in a small region of the real data
    p, r = precision_recall(real, fake)
    assert p > 0.95 and r < 0.1
    assert precision_recall(fake, real) == (r, p)  # swapping the roles swaps the answers
    # the other way round: fake spread far wider than real -> low precision, high recall
    p2, r2 = precision_recall(fake, real * 1.0)
    assert p2 < 0.1 and r2 > 0.95


def test_precision_recall_invariant_to_order_and_batch() -> None:
    rng = np.random.default_rng(22)
    real, fake = rng.normal(size=(300, 6)), rng.normal(size=(250, 6)) * 1.2 + 0.3
    ref = precision_recall(real, fake, k=3)
    assert 0 < ref[0] < 1 and 0 < ref[1] < 1
    assert precision_recall(real[rng.permutation(300)], fake[rng.permutation(250)], k=3) == ref
    assert precision_recall(real, fake, k=3, batch=17) == ref


def test_precision_recall_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="differ"):
        precision_recall(np.zeros((10, 3)), np.zeros((10, 2)))
    with pytest.raises(ValueError, match="at least 4 rows"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)
    with pytest.raises(ValueError, match="NaN"):
        precision_recall(np.full((10, 2), np.nan), np.zeros((10, 2)))


# -- memorisation (Carlini et al. 2023) --------------------------------------------------------

def test_nearest_train_matches_brute_force() -> None:
    rng = np.random.default_rng(30)
    train = rng.random((120, 5, 5))
    samples = rng.random((37, 5, 5))
    full = np.linalg.norm(samples.reshape(37, 1, -1) - train.reshape(1, 120, -1), axis=2)
    order = np.argsort(full, axis=1)[:, :7]
    # the training set searched whole, and in chunks smaller than k and not dividing it
    for chunk in (256, 11, 3):
        idx, dist = nearest_train(samples, train, k=7, batch=10, train_chunk=chunk)
        np.testing.assert_array_equal(idx, order)
        np.testing.assert_allclose(dist, np.take_along_axis(full, order, axis=1), rtol=1e-12)
    # uint8 images are scaled to [0, 1]
    u8 = (train * 255).round().astype(np.uint8)
    _, d8 = nearest_train(u8[:3], u8.astype(np.float64) / 255, k=1)
    np.testing.assert_array_equal(d8[:, 0], 0.0)


def test_memorization_training_copies_with_duplicates_count() -> None:
    rng = np.random.default_rng(31)
    train = rng.random((300, 784))
    train[100:170] = train[5]  # 71 identical copies: all 51 nearest distances of train[5] are 0
    train[200] = train[7]  # a single duplicate
    idx, ratio = memorization_ratios(train, train)
    np.testing.assert_array_equal(ratio, 0.0)
    assert idx[7] == idx[200] == 7  # an exact tie goes to the lower index
    assert all(np.array_equal(train[idx[i]], train[i]) for i in (5, 100, 169))
    assert memorization_rate(train, train) == 1.0
    assert memorization_rate(train[rng.permutation(300)], train[rng.permutation(300)]) == 1.0


def test_memorization_fresh_samples_are_not_copies() -> None:
    rng = np.random.default_rng(32)
    train = rng.random((400, 784))
    assert memorization_rate(rng.random((200, 784)), train) == 0.0
    noisy = np.clip(train[:200] + rng.normal(scale=0.3, size=(200, 784)), 0, 1)
    assert memorization_rate(noisy, train) == 0.0


def test_memorization_hand_built_ratios() -> None:
    d = 784
    rng = np.random.default_rng(33)

    def neighbourhood(base: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
        sample = np.full(d, base)
        near = sample.copy()
        near[0] += offset  # at distance `offset`
        others = np.repeat(sample[None], 60, axis=0)
        for i in range(60):  # 60 others at distance exactly 1: four pixels moved by +-0.5
            others[i, 4 + 4 * i: 8 + 4 * i] += 0.5 * rng.choice([-1, 1], size=4)
        return sample, np.concatenate([others, near[None]])

    s1, t1 = neighbourhood(0.25, 0.1)  # 0.1 away; next 50 at 1 -> ratio 0.1 -> memorised
    s2, t2 = neighbourhood(0.75, 0.5)  # 0.5 away -> ratio 0.5 -> not memorised
    samples, train = np.stack([s1, s2]), np.concatenate([t1, t2])
    idx, ratio = memorization_ratios(samples, train)
    assert idx.tolist() == [60, 121]
    np.testing.assert_allclose(ratio, [0.1, 0.5], rtol=1e-9)
    assert memorization_rate(samples, train) == 0.5
    assert memorization_rate(samples[::-1], train[rng.permutation(len(train))]) == 0.5
    assert memorization_rate(samples, train, ratio=0.6) == 1.0
    assert memorization_rate(samples, train, ratio=0.05) == 0.0


def test_memorization_rejects_bad_inputs() -> None:
    train = np.zeros((60, 4, 4))
    with pytest.raises(ValueError, match="pixel counts"):
        memorization_rate(np.zeros((5, 3, 3)), train)
    with pytest.raises(ValueError, match="training set size"):
        memorization_rate(np.zeros((5, 4, 4)), train[:30])
    with pytest.raises(ValueError, match="NaN"):
        memorization_rate(np.full((5, 4, 4), np.nan), train)


# -- Classification Accuracy Score (Ravuri & Vinyals 2019) -------------------------------------

@pytest.fixture(scope="module")
def digits_split():
    from imagegen.data.builtins import load_digits
    from imagegen.features.evaluator import fixed_split

    d = load_digits()
    train_idx, held_idx = fixed_split(len(d.images))
    return d.images[train_idx], d.labels[train_idx], d.images[held_idx], d.labels[held_idx]


def test_cas_real_training_data_scores_high(digits_split) -> None:
    x, y, xt, yt = digits_split
    acc = cas(x, y, xt, yt, num_classes=10, epochs=12)
    assert acc > 0.85
    assert cas(x[..., 0], y, xt[..., 0], yt, num_classes=10, epochs=12) == acc  # (N, H, W) works


def test_cas_shuffled_labels_near_chance(digits_split) -> None:
    x, y, xt, yt = digits_split
    shuffled = np.random.default_rng(0).permutation(y)
    assert cas(x, shuffled, xt, yt, num_classes=10, epochs=12) < 0.25


def test_cas_rejects_bad_inputs(digits_split) -> None:
    x, y, xt, yt = digits_split
    with pytest.raises(ValueError, match="labels"):
        cas(x, y[:-1], xt, yt, num_classes=10)
    with pytest.raises(ValueError, match="image shapes differ"):
        cas(x, y, xt[:, :4], yt, num_classes=10)
    with pytest.raises(ValueError, match="uint8"):
        cas(x.astype(np.float32), y, xt, yt, num_classes=10)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        cas(x, y + 1, xt, yt, num_classes=10)
