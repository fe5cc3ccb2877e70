"""The few distribution functions calibration needs, straight from ``scipy.special``.

``scipy.stats`` computes these with the same special functions (``chi2.ppf`` is ``2 *
gammaincinv(df / 2, p)``, ``chi2.cdf`` is ``chdtr(df, x)``, ``norm.cdf``/``norm.ppf`` are
``ndtr``/``ndtri``), so the values are identical (tests/calibrate/test_distributions.py checks
it); importing ``scipy.stats`` costs more than a whole photon-transfer analysis of a small sweep
(it loads every distribution and statistical test), ``scipy.special`` a fraction of that.
"""

from __future__ import annotations

import numpy as np
from scipy import special


def chi2_ppf(p: float | np.ndarray, dof: float) -> float | np.ndarray:
    """Quantile function of the chi-square law with ``dof`` degrees of freedom."""
    return 2 * special.gammaincinv(dof / 2, p)


def chi2_median(dof: float) -> float:
    return float(chi2_ppf(0.5, dof))


def chi2_cdf(x: float | np.ndarray, dof: float) -> float | np.ndarray:
    return special.chdtr(dof, x)


def norm_cdf(x: float | np.ndarray) -> float | np.ndarray:
    """The standard normal cumulative distribution."""
    return special.ndtr(x)


def norm_ppf(p: float | np.ndarray) -> float | np.ndarray:
    """The standard normal quantile function."""
    return special.ndtri(p)
