"""`detrend_quadratic` solves its 6x6 normal equations from separable sums; the surface it removes
must be the least-squares quadratic of a plain design-matrix solve (numpy's lstsq), on a masked
plane and on one large enough that every other masked pixel is fitted."""

from __future__ import annotations

import numpy as np
import pytest

from edge_isp.calibrate.fitting import detrend_quadratic


def lstsq_detrend(plane: np.ndarray, mask: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    yy, xx = np.mgrid[0:h, 0:w]
    y, x = (yy / (h - 1) - 0.5).ravel(), (xx / (w - 1) - 0.5).ravel()
    basis = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
    rows = np.flatnonzero(mask.ravel())
    rows = rows[:: max(1, rows.size // 200_000)]
    coef, *_ = np.linalg.lstsq(basis[rows], plane.ravel()[rows].astype(np.float64), rcond=None)
    return plane - (basis @ coef).reshape(h, w)


@pytest.mark.parametrize("shape", [(96, 128), (700, 720)])
def test_detrend_equals_the_design_matrix_solve(shape):
    rng = np.random.default_rng(3)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    shading = 200.0 + 30.0 * (xx / w) - 45.0 * (yy / h) ** 2 + 12.0 * (xx / w) * (yy / h)
    plane = (shading + rng.normal(0.0, 2.0, shape)).astype(np.float32)
    mask = rng.random(shape) > 0.1
    mask[: h // 5, : w // 3] = False  # a region left out of the fit
    got, want = detrend_quadratic(plane, mask), lstsq_detrend(plane, mask)
    assert np.count_nonzero(mask) // 200_000 == (2 if h > 500 else 0)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert abs(float(got[mask].mean())) < 0.05 and float(got[mask].std()) == pytest.approx(2.0, rel=0.02)
