"""Noise against gain, and the sensor profile built from the measurements.

Measured at a few analogue gains, the noise must cover every gain a camera may use:

- system gain K against analogue gain: a straight line, ``K = slope * gain + intercept``
  (through the origin with only two gains), as an amplifier's gain is linear in its
  setting;
- read noise against K: a straight line in log-log, ``log(read) = slope * log(K) +
  intercept``, the relation Wei et al. 2020 (ELD) found for the read noise of real
  sensors (noise from before the amplifier grows with it, noise after it does not).

Both are weighted least squares with each point's standard error (in the log for the
read noise); the fits' residuals per gain go in the report. The profile's noise table keeps
the measured values at the measured gains (they are the truth there; the profile
interpolates between entries the same way the fits model it) and adds entries from the
fits at gain 1 and at the highest gain, so that extrapolation follows the fits too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from edge_isp.calibrate.fitting import LineFit, fit_line
from edge_isp.errors import InvalidInputError
from edge_isp.sensor.cfa import CFA
from edge_isp.sensor.profile import NoiseAtGain, SensorProfile

IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


@dataclasses.dataclass(frozen=True)
class GainPoint:
    """Noise measured at one analogue gain: K (DN/e-) and read noise (DN) with standard errors."""

    analogue_gain: float
    gain_dn_per_e: float
    gain_se: float
    read_noise_dn: float
    read_noise_se: float
    row_noise_dn: float = 0.0
    read_noise_lambda: float | None = None


@dataclasses.dataclass(frozen=True)
class GainFit:
    """The fits of K against gain and read noise against K (None where too few points).

    Attributes:
        points: the measurements, sorted by gain.
        k_fit: K = slope * gain + intercept.
        read_fit: log(read_dn) = slope * log(K) + intercept.
    """

    points: tuple[GainPoint, ...]
    k_fit: LineFit | None
    read_fit: LineFit | None

    def k_at(self, analogue_gain: float) -> float:
        """K from the fit at a gain, DN/e-."""
        if self.k_fit is None:
            raise InvalidInputError("K against gain needs measurements at 2 or more gains")
        return self.k_fit.slope * analogue_gain + self.k_fit.intercept

    def read_at(self, gain_dn_per_e: float) -> float:
        """Read noise from the log-linear fit at a K, DN."""
        if self.read_fit is None:
            raise InvalidInputError("read noise against K needs measurements at 2 or more gains")
        return math.exp(self.read_fit.slope * math.log(gain_dn_per_e) + self.read_fit.intercept)

    def k_residuals_pct(self) -> np.ndarray:
        """(measured - fitted) / fitted K at each point, percent."""
        return np.array([(p.gain_dn_per_e / self.k_at(p.analogue_gain) - 1) * 100 for p in self.points])

    def read_residuals_pct(self) -> np.ndarray:
        """(measured - fitted) / fitted read noise at each point, percent."""
        return np.array([(p.read_noise_dn / self.read_at(p.gain_dn_per_e) - 1) * 100 for p in self.points])


def fit_gains(points: Sequence[GainPoint]) -> GainFit:
    """Fit K against gain and read noise against K (see the module docstring)."""
    pts = tuple(sorted(points, key=lambda p: p.analogue_gain))
    if not pts:
        raise InvalidInputError("no gains measured")
    k_fit = read_fit = None
    if len(pts) >= 2:
        g = np.array([p.analogue_gain for p in pts])
        k = np.array([p.gain_dn_per_e for p in pts])
        k_se = np.array([max(p.gain_se, 1e-6 * p.gain_dn_per_e) for p in pts])
        k_fit = fit_line(g, k, k_se, through_origin=len(pts) == 2)
        usable = [p for p in pts if p.read_noise_dn > 0]
        if len(usable) >= 2:
            log_k = np.log([p.gain_dn_per_e for p in usable])
            log_r = np.log([p.read_noise_dn for p in usable])
            log_se = np.array([max(p.read_noise_se / p.read_noise_dn, 1e-6) for p in usable])
            read_fit = fit_line(log_k, log_r, log_se)
    return GainFit(points=pts, k_fit=k_fit, read_fit=read_fit)


def noise_table(fit: GainFit, *, max_gain: float | None = None, min_gain: float = 1.0) -> tuple[NoiseAtGain, ...]:
    """The profile's noise table: measured gains, plus fitted entries at the range's ends."""
    pts = fit.points
    entries = [
        NoiseAtGain(
            analogue_gain=p.analogue_gain,
            gain_dn_per_e=p.gain_dn_per_e,
            read_noise_dn=p.read_noise_dn,
            row_noise_dn=p.row_noise_dn,
            read_noise_lambda=p.read_noise_lambda,
        )
        for p in pts
    ]
    if fit.k_fit is not None and fit.read_fit is not None:
        ends = []
        if min_gain < pts[0].analogue_gain * 0.98:
            ends.append((min_gain, pts[0]))
        if max_gain is not None and max_gain > pts[-1].analogue_gain * 1.02:
            ends.append((max_gain, pts[-1]))
        for gain, nearest in ends:
            k = fit.k_at(gain)
            if k <= 0:
                continue  # the line crosses zero before this gain: leave it to the profile's rule
            scale = k / nearest.gain_dn_per_e
            entries.append(
                NoiseAtGain(
                    analogue_gain=float(gain),
                    gain_dn_per_e=k,
                    read_noise_dn=fit.read_at(k),
                    row_noise_dn=nearest.row_noise_dn * scale,
                    read_noise_lambda=nearest.read_noise_lambda,
                )
            )
    return tuple(sorted(entries, key=lambda n: n.analogue_gain))


def build_profile(
    fit: GainFit,
    *,
    name: str,
    cfa: CFA | str,
    bit_depth: int,
    black_level: Sequence[float],
    white_level: float,
    base: SensorProfile | None = None,
    max_gain: float | None = None,
    base_iso: float | None = None,
    description: str = "",
) -> SensorProfile:
    """A sensor profile from the gain fit and the measured levels.

    Colour (matrix, white balance) and the lux conversion are not measured by a noise
    calibration: they come from ``base`` when given, else identity / 1 / none. The base
    ISO is ``base_iso`` (the files' own ISO scale) when given, else ``base``'s, else 100.
    """
    top = max(max_gain or 0.0, fit.points[-1].analogue_gain, base.max_analogue_gain if base else 0.0)
    black = tuple(float(max(b, 0.0)) for b in black_level)
    return SensorProfile(
        name=name,
        cfa=CFA.parse(cfa),
        bit_depth=int(bit_depth),
        black_level=black,
        white_level=float(white_level),
        color_matrix=base.color_matrix if base else IDENTITY,
        white_balance=base.white_balance if base else (1.0, 1.0, 1.0),
        noise=noise_table(fit, max_gain=top),
        base_iso=float(base_iso) if base_iso else base.base_iso if base else 100.0,
        max_analogue_gain=float(top),
        electrons_at_white_per_lux=base.electrons_at_white_per_lux if base else None,
        description=description,
    )
