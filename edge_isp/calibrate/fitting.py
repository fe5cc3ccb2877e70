"""Weighted fits the calibration's analyses share: a straight line with honest errors
(:func:`fit_line`), the inverse-variance mean (:func:`weighted_mean`) and a plane's quadratic
trend (:func:`detrend_quadratic`)."""

from __future__ import annotations

import dataclasses

import numpy as np

from edge_isp.errors import InvalidInputError


@dataclasses.dataclass(frozen=True)
class LineFit:
    """A weighted least-squares line ``y = slope * x + intercept``.

    Attributes:
        slope, intercept: the parameters (intercept 0 for a fit through the origin).
        slope_se, intercept_se: standard errors from the covariance of the fit, scaled by
            sqrt(reduced chi-square) when that exceeds 1 (the scatter is then larger than the
            stated errors, and the covariance alone would be optimistic).
        cov: 2x2 covariance of (slope, intercept), scaled likewise.
        chi2_reduced: chi-square per degree of freedom (~1 when the errors are right).
        dof: points minus parameters.
        residuals: y - fit at each point (same order as the input).
        r2: coefficient of determination (weighted).
    """

    slope: float
    intercept: float
    slope_se: float
    intercept_se: float
    cov: np.ndarray
    chi2_reduced: float
    dof: int
    residuals: np.ndarray
    r2: float


def fit_line(x: np.ndarray, y: np.ndarray, sigma: np.ndarray, *, through_origin: bool = False) -> LineFit:
    """Weighted least squares of ``y`` on ``x`` with standard errors ``sigma`` per point."""
    x, y, sigma = (np.asarray(a, dtype=np.float64) for a in (x, y, sigma))
    n_params = 1 if through_origin else 2
    if x.size < n_params or np.any(~np.isfinite(sigma)) or np.any(sigma <= 0):
        raise InvalidInputError(
            f"a line fit needs at least {n_params} points with positive errors, got {x.size} points"
        )
    design = x[:, None] if through_origin else np.stack([x, np.ones_like(x)], axis=1)
    w = 1.0 / sigma**2
    normal = design.T @ (design * w[:, None])
    cov = np.linalg.inv(normal)
    params = cov @ (design.T @ (w * y))
    fitted = design @ params
    residuals = y - fitted
    dof = x.size - n_params
    chi2_red = float(np.sum(w * residuals**2) / dof) if dof > 0 else float("nan")
    if dof > 0 and chi2_red > 1.0:
        cov = cov * chi2_red
    ybar = np.sum(w * y) / np.sum(w)
    ss_tot = float(np.sum(w * (y - ybar) ** 2))
    r2 = 1.0 - float(np.sum(w * residuals**2)) / ss_tot if ss_tot > 0 else float("nan")
    full = np.zeros((2, 2))
    full[:n_params, :n_params] = cov
    return LineFit(
        slope=float(params[0]),
        intercept=0.0 if through_origin else float(params[1]),
        slope_se=float(np.sqrt(full[0, 0])),
        intercept_se=float(np.sqrt(full[1, 1])),
        cov=full,
        chi2_reduced=chi2_red,
        dof=dof,
        residuals=residuals,
        r2=r2,
    )


def weighted_mean(values: np.ndarray, se: np.ndarray) -> tuple[float, float, float]:
    """Inverse-variance weighted mean, its standard error, and the chi-square per dof of
    the values about it (> ~3 means they disagree beyond their errors)."""
    values, se = np.asarray(values, np.float64), np.asarray(se, np.float64)
    ok = np.isfinite(values) & np.isfinite(se) & (se > 0)
    if not ok.any():
        return float(np.nanmean(values)), float("nan"), float("nan")
    w = 1.0 / se[ok] ** 2
    mean = float(np.sum(w * values[ok]) / np.sum(w))
    chi2 = float(np.sum(w * (values[ok] - mean) ** 2) / max(ok.sum() - 1, 1))
    err = float(np.sqrt(1.0 / np.sum(w) * max(chi2, 1.0)))
    return mean, err, chi2


def detrend_quadratic(plane: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``plane`` minus its least-squares quadratic surface fitted over ``mask``.

    Removes illumination fall-off and vignetting before a spatial (PRNU/DSNU) variance,
    which should measure pixel-to-pixel differences, not the optics.

    The surface is ``1, x, y, x², xy, y²`` on [-0.5, 0.5] (x across, y down). Its normal
    equations need only sums of ``x^a y^b`` (and of the plane times them) over the mask, and
    each such sum is a row-power matrix times the mask (or masked plane) times a column-power
    matrix: two small matrix products instead of a least-squares solve on a ``(pixels, 6)``
    design matrix. With x and y centred the 6x6 system is well conditioned (the surface agrees
    with the design-matrix solve to ~1e-13 relative).
    """
    h, w = plane.shape
    m = mask.ravel()
    count = int(np.count_nonzero(m))
    step = max(1, count // 200_000)
    if step > 1:  # every step-th masked pixel (row-major), as a mask
        m = np.zeros(m.size, dtype=bool)
        m[np.flatnonzero(mask.ravel())[::step]] = True
    weights = m.reshape(h, w).astype(np.float64)
    x = np.arange(w) / max(w - 1, 1) - 0.5
    y = np.arange(h) / max(h - 1, 1) - 0.5
    x_pow = x[:, None] ** np.arange(5)  # (w, 5): x^0 .. x^4
    y_pow = y[:, None] ** np.arange(5)
    moments = y_pow.T @ (weights @ x_pow)  # moments[b, a] = sum over the mask of x^a y^b
    weighted = y_pow[:, :3].T @ ((weights * plane) @ x_pow[:, :3])
    powers = ((0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2))  # (a, b) of each basis term x^a y^b
    normal = np.array([[moments[bi + bj, ai + aj] for aj, bj in powers] for ai, bi in powers])
    rhs = np.array([weighted[b, a] for a, b in powers])
    c1, cx, cy, cxx, cxy, cyy = np.linalg.lstsq(normal, rhs, rcond=None)[0]
    surface = (c1 + cy * y + cyy * y * y)[:, None] + (cx * x + cxx * x * x)[None, :] + cxy * np.outer(y, x)
    return plane - surface
