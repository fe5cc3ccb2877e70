"""The Tukey-lambda distribution: quantiles, variance, sampling, and a PPCC shape fit.

Wei et al. 2020 ("A Physics-based Noise Formation Model for Extreme Low-light Raw
Denoising", the ELD paper) found that the read noise of real sensors has heavier tails
than a Gaussian and is fitted better by a Tukey-lambda distribution, whose shape ``lam``
they chose by maximizing the probability-plot correlation coefficient (PPCC, Filliben
1975). ``lam`` near 0.14 is close to a Gaussian, 0 is the logistic, negative values have
heavier tails. The distribution is defined by its quantile function

    Q(p; lam) = (p**lam - (1 - p)**lam) / lam        (lam != 0)
    Q(p; 0)   = log(p / (1 - p))

so sampling is ``Q(U)`` for uniform ``U``, and the variance has a closed form (finite for
``lam > -1/2``). The sensor profile stores ``read_noise_dn`` as the standard deviation and
``read_noise_lambda`` as the shape, so :func:`sample` draws with a given standard deviation.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from edge_isp.calibrate.distributions import norm_ppf
from edge_isp.errors import InvalidInputError

# The shape whose PPCC against a Gaussian sample is highest: Tukey-lambda's best
# approximation of the normal distribution (Joiner and Rosenblatt 1971).
GAUSSIAN_LAMBDA = 0.1349
LAMBDA_BOUNDS = (-0.45, 1.0)


def quantile(p: np.ndarray, lam: float) -> np.ndarray:
    """Q(p; lam) for probabilities ``p`` in (0, 1); any array shape, float64."""
    p = np.asarray(p, dtype=np.float64)
    if abs(lam) < 1e-9:
        return np.log(p) - np.log1p(-p)
    return (np.power(p, lam) - np.power(1.0 - p, lam)) / lam


def variance(lam: float) -> float:
    """Variance of the unit-scale Tukey-lambda distribution; finite for ``lam > -1/2``."""
    if not lam > -0.5:
        raise InvalidInputError(f"the Tukey-lambda variance is finite only for lambda > -0.5, got {lam}")
    if abs(lam) < 1e-9:
        return math.pi**2 / 3.0
    beta = math.exp(2.0 * math.lgamma(lam + 1.0) - math.lgamma(2.0 * lam + 2.0))
    return 2.0 / lam**2 * (1.0 / (1.0 + 2.0 * lam) - beta)


def sample(rng: np.random.Generator, shape: tuple[int, ...], std: float, lam: float) -> np.ndarray:
    """Zero-mean Tukey-lambda noise of standard deviation ``std``, float64 of ``shape``."""
    u = rng.random(shape)
    # Keep U off 0 and 1, where Q is infinite for lam <= 0.
    u = np.clip(u, 1e-12, 1.0 - 1e-12)
    return quantile(u, lam) * (std / math.sqrt(variance(lam)))


def _plotting_positions(n: int) -> np.ndarray:
    # Filliben's uniform order-statistic medians.
    m = (np.arange(1, n + 1) - 0.3175) / (n + 0.365)
    m[-1] = 0.5 ** (1.0 / n)
    m[0] = 1.0 - m[-1]
    return m


def ppcc(sorted_sample: np.ndarray, lam: float, positions: np.ndarray | None = None) -> float:
    """Correlation of a sorted sample with the Tukey-lambda quantiles at its plotting positions."""
    if positions is None:
        positions = _plotting_positions(sorted_sample.size)
    q = quantile(positions, lam)
    return float(np.corrcoef(sorted_sample, q)[0, 1])


@dataclasses.dataclass(frozen=True)
class ShapeFit:
    """The PPCC fit of a Tukey-lambda shape to a noise sample.

    Attributes:
        lam: the shape maximizing the PPCC.
        lam_se: its standard error from a bootstrap over the sample (``n_boot`` resamples).
        ppcc: the PPCC at ``lam`` (1 = a perfect straight probability plot).
        ppcc_gaussian: the PPCC of the same sample against a Gaussian.
        n: the number of values fitted.
        n_boot: bootstrap resamples used for ``lam_se``.
    """

    lam: float
    lam_se: float
    ppcc: float
    ppcc_gaussian: float
    n: int
    n_boot: int

    @property
    def departs_from_gaussian(self) -> bool:
        """True when the shape differs from the Gaussian one by more than 3 standard errors."""
        return abs(self.lam - GAUSSIAN_LAMBDA) > 3.0 * max(self.lam_se, 1e-6)


class _Quantiles:
    """The Tukey-lambda quantiles at a fit's plotting positions, as :func:`quantile` gives them,
    kept for the first few shapes asked for: every fit of one sample size starts with the same
    shapes (Brent's first steps do not depend on the function), a quarter of a bootstrap's."""

    KEEP = 4

    def __init__(self, positions: np.ndarray) -> None:
        self.p, self.one_minus_p = positions, 1.0 - positions
        self.other = np.empty(positions.size)
        self.kept: dict[float, np.ndarray] = {}

    def into(self, q: np.ndarray, lam: float) -> None:
        """Q(p; lam) written into ``q``."""
        kept = self.kept.get(lam)
        if kept is not None:
            np.copyto(q, kept)
            return
        if abs(lam) < 1e-9:
            np.log(self.p, out=q)
            q -= np.log1p(-self.p, out=self.other)
        else:
            np.power(self.p, lam, out=q)
            q -= np.power(self.one_minus_p, lam, out=self.other)
            q /= lam
        if len(self.kept) < self.KEEP:
            self.kept[lam] = q.copy()


class _Correlator:
    """The PPCC of one sorted sample at any shape, as :func:`ppcc` computes it, bit for bit, with
    what does not depend on the shape done once: the quantiles' ``1 - p`` (and the first shapes'
    quantiles, :class:`_Quantiles`), the sample's centred row, and the buffers. The shape fit
    evaluates it some 11 times per sample, 21 samples a dark stack.

    ``np.corrcoef(x, q)`` is ``c = X @ X.T / (n - 1)`` for ``X`` the rows ``x`` and ``q``, each
    less its mean (``X.mean(axis=1)``), then ``c[0, 1] / sqrt(c[0, 0]) / sqrt(c[1, 1])``
    clipped to [-1, 1]; here the same operations on the same ``(2, n)`` array.
    """

    def __init__(self, sorted_sample: np.ndarray, quantiles: np.ndarray | _Quantiles) -> None:
        n = sorted_sample.size
        self.quantiles = quantiles if isinstance(quantiles, _Quantiles) else _Quantiles(quantiles)
        self.rows = np.empty((2, n))
        self.rows[0] = sorted_sample
        self.rows[1] = 0.0
        self.rows[0] -= self.rows.mean(axis=1)[0]
        self.scale = np.true_divide(1, n - 1)

    def __call__(self, lam: float) -> float:
        q = self.rows[1]
        self.quantiles.into(q, lam)
        q -= self.rows[1:].mean(axis=1)[0]
        c = np.dot(self.rows, self.rows.T)
        c *= self.scale
        std = np.sqrt(np.diag(c))
        return float(np.clip(c[0, 1] / std[0] / std[1], -1.0, 1.0))


def _best_lambda(sorted_sample: np.ndarray, positions: np.ndarray | _Quantiles) -> tuple[float, float]:
    from scipy.optimize import minimize_scalar

    correlation = _Correlator(sorted_sample, positions)
    res = minimize_scalar(lambda lam: -correlation(lam), bounds=LAMBDA_BOUNDS, method="bounded",
                          options={"xatol": 1e-4})  # fmt: skip
    return float(res.x), float(-res.fun)


def fit_shape(values: np.ndarray, *, n_boot: int = 20, seed: int = 0) -> ShapeFit:
    """Fit the Tukey-lambda shape of a 1-D noise sample by maximizing the PPCC.

    Args:
        values: noise values (any scale and offset: the PPCC ignores both), at least 500.
        n_boot: bootstrap resamples for the standard error of the shape.
        seed: seed of the bootstrap's random generator, so the result is reproducible.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if x.size < 500:
        raise InvalidInputError(f"a Tukey-lambda shape fit needs at least 500 noise values, got {x.size}")
    if not np.all(np.isfinite(x)) or x[-1] == x[0]:
        raise InvalidInputError("a Tukey-lambda shape fit needs finite values that are not all equal")
    positions = _plotting_positions(x.size)
    quantiles = _Quantiles(positions)  # one sample size: the same positions for every fit
    lam, r = _best_lambda(x, quantiles)
    r_gauss = float(np.corrcoef(x, norm_ppf(positions))[0, 1])
    rng = np.random.default_rng(seed)
    boots = [_best_lambda(np.sort(rng.choice(x, x.size)), quantiles)[0] for _ in range(n_boot)]
    lam_se = float(np.std(boots, ddof=1)) if n_boot > 1 else float("nan")
    return ShapeFit(lam=lam, lam_se=lam_se, ppcc=r, ppcc_gaussian=r_gauss, n=int(x.size), n_boot=n_boot)
