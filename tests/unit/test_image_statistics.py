"""The fast statistics of the preprocessing give numpy's answers bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from text_recognizer.images import _percentile, _shear_scores


@pytest.mark.parametrize("seed", range(4))
def test_percentile_is_numpys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for n in (1, 2, 3, 17, 1000, 29_000):
        a = (rng.random(n) ** rng.uniform(0.5, 8)).astype(np.float32)
        a[rng.random(n) < 0.4] = 0.0  # ties, as blank paper gives
        for q in (0, 25, 60, 90, 99.7, 100):
            assert _percentile(a, q) == float(np.percentile(a, q))
    page = rng.random((40, 70)).astype(np.float32)
    assert _percentile(page, 60) == float(np.percentile(page, 60))


def test_shear_scores_are_each_slopes_own_histogram() -> None:
    rng = np.random.default_rng(0)
    ys, xs = rng.integers(0, 300, 5000), rng.integers(0, 800, 5000)
    xc = xs.astype(np.float32) - 400
    slopes = np.tan(np.deg2rad(np.arange(-10, 10 + 1e-6, 0.5)))
    pad = 150
    expected = []
    for s in slopes:
        counts = np.bincount(np.rint(ys - s * xc).astype(np.int64) + pad)
        expected.append(int((counts * counts).sum()))
    assert _shear_scores(ys, xc, slopes, pad).tolist() == expected


@pytest.mark.parametrize("k", [1, 3, 9, 15])
def test_box_mean_pads_its_edges_as_numpy_does(k: int) -> None:
    from text_recognizer.images import _box_mean

    a = np.random.default_rng(k).random((23, 41)).astype(np.float32)
    r = k // 2
    padded = np.pad(a, r, mode="edge").astype(np.float64)
    expected = np.array(
        [[padded[i : i + k, j : j + k].sum() for j in range(a.shape[1])] for i in range(a.shape[0])]
    ) / (k * k)
    np.testing.assert_allclose(_box_mean(a, k), expected.astype(np.float32), rtol=1e-6, atol=1e-7)
