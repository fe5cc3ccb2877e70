"""One physical noise model fitted across a camera's darktable entries, read the way darktable
reads them.

darktable's denoiser (src/iop/denoiseprofile.c) uses only the green entry of each profile and
scales it by the white-balance coefficients for red and blue ("only use green channel + wb for
now"). Its R and B slopes are measured on a white-balance-1 export whose demosaicker fills red
and blue from green, so they are not raw-plane gains (they come out 2 to 3 times the green
slope on most cameras, while a sensor's planes share one K). So only green is used here.

Each ISO's green entry alone is a poor read-noise estimate: b is small, noisy and often
negative (14 % of the green b in darktable 4.2.1's file). Instead, one model is fitted to
all ISOs of the camera, the two-stage readout of a CMOS sensor:

    K(ISO) = k * ISO                           (system gain proportional to ISO)
    read(ISO)^2 = (K(ISO) * pre_e)^2 + post_dn^2

with ``pre_e`` the noise before the gain (electrons) and ``post_dn`` after it (DN). On
darktable's scale, with s the band-variance scale and r = white - black:

    a_G(ISO) = s * k * ISO / r,      b_G(ISO) = s * (post_dn^2 + pre_e^2 k^2 ISO^2) / r^2

k is the mean of log(a_G / ISO) (relative errors, so every ISO counts alike), once every
entry lies within 25 % of the line through the median: darktable's tables often include ISOs
that are not the same analogue gain times ISO (extended "Lo" ISOs below base, Canon's
digitally pulled 1/3 stops, pushed top ISOs), and those are refused by name with the subset
that fits, to pass as ``--isos``, rather than dropped silently. b_G is
a non-negative least-squares line in ISO^2 (negative b's pull it down instead of being
dropped or clamped). Read noise in DN then rises with ISO and read noise in electrons falls
towards ``pre_e``, as on real sensors (Wei et al. 2020, "ELD", report the same trend as a
log-linear relation; the log form cannot take b <= 0, the variance form can).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import nnls

from edge_isp.errors import InvalidInputError
from edge_isp.sensor.profile import NoiseAtGain

# Beyond these the model does not describe the camera (or the entry is not raw noise).
MAX_K_DEVIATION = 0.25  # largest |K(ISO) / (median K per ISO x ISO) - 1| accepted
MIN_READ_NOISE_E, MAX_READ_NOISE_E = 0.3, 60.0  # read noise at the lowest ISO


@dataclasses.dataclass(frozen=True)
class DarktableFit:
    """The model fitted to one camera's green entries.

    Attributes:
        isos: the entries' ISOs, ascending.
        k_per_iso: system gain per unit ISO, DN/e- (K at ISO 100 is ``100 * k_per_iso``).
        k_rel_se: relative standard error of ``k_per_iso``.
        k_deviation: per ISO, the entry's own K over the model's, minus 1.
        pre_e: read noise before the gain, electrons.
        post_dn: read noise after the gain, DN.
        b_residual: per ISO, the entry's b minus the model's, over the largest b.
        notes: what was odd about the entries (negative b, large K deviations).
    """

    isos: tuple[float, ...]
    k_per_iso: float
    k_rel_se: float
    k_deviation: tuple[float, ...]
    pre_e: float
    post_dn: float
    b_residual: tuple[float, ...]
    notes: tuple[str, ...]

    def gain_dn_per_e(self, iso: float) -> float:
        return self.k_per_iso * iso

    def read_noise_dn(self, iso: float) -> float:
        return math.hypot(self.gain_dn_per_e(iso) * self.pre_e, self.post_dn)

    def table(self, base_iso: float) -> list[NoiseAtGain]:
        """One profile entry per ISO (analogue gain ``ISO / base_iso``) from the model."""
        return [
            NoiseAtGain(
                analogue_gain=iso / base_iso,
                gain_dn_per_e=self.gain_dn_per_e(iso),
                read_noise_dn=self.read_noise_dn(iso),
            )
            for iso in self.isos
        ]


def entry_iso(entry: dict[str, Any], where: str) -> float:
    """An entry's ISO, or a clear error when it has none usable."""
    value = entry.get("iso") if isinstance(entry, dict) else None
    try:
        iso = float(value)
    except (TypeError, ValueError):
        iso = float("nan")
    if isinstance(value, bool) or not (math.isfinite(iso) and iso > 0):
        name = entry.get("name") if isinstance(entry, dict) else None
        raise InvalidInputError(
            f"{where}: entry {name or '(unnamed)'!r} has no usable ISO: expected a positive number, got {value!r}; "
            "a noise table is indexed by ISO, so the entry cannot be placed (leave it out with --isos)"
        )
    return iso


def _green(entry: dict[str, Any], key: str, iso: float) -> float:
    values = entry.get(key)
    if not isinstance(values, (list, tuple)) or len(values) != 3:
        raise InvalidInputError(f"darktable ISO {iso:g}: {key!r} must list 3 values (R, G, B), got {values!r}")
    try:
        value = float(values[1])
    except (TypeError, ValueError):
        raise InvalidInputError(f"darktable ISO {iso:g}: green {key} must be a number, got {values[1]!r}") from None
    if not math.isfinite(value):
        raise InvalidInputError(f"darktable ISO {iso:g}: green {key} must be finite, got {value}")
    return value


def fit_darktable(
    entries: Sequence[dict[str, Any]], *, range_dn: float, variance_scale: float, where: str = "darktable"
) -> DarktableFit:
    """Fit the module docstring's model to one camera's entries (each with ``iso``, ``a``, ``b``).

    ``range_dn`` is the raw's white minus black level (DN), which darktable's scale spans.

    Raises:
        InvalidInputError: fewer than two usable ISOs, an entry without a usable ISO, a
            green slope that is not positive, or a result no sensor could have (K far from
            proportional to ISO, read noise outside 0.3 to 60 e- at the lowest ISO, or none).
    """
    isos = np.array([entry_iso(e, where) for e in entries])
    order = np.argsort(isos)
    isos = isos[order]
    entries = [entries[i] for i in order]
    if len(isos) < 2 or len(set(isos.tolist())) != len(isos):
        raise InvalidInputError(
            f"{where}: fitting K and read noise across ISO needs at least two entries at different ISOs, "
            f"got ISOs {isos.tolist()}"
        )
    a = np.array([_green(e, "a", iso) for e, iso in zip(entries, isos, strict=True)])
    b = np.array([_green(e, "b", iso) for e, iso in zip(entries, isos, strict=True)])
    if np.any(a <= 0):
        bad = isos[a <= 0].tolist()
        raise InvalidInputError(
            f"{where}: the green slope a must be positive at every ISO (darktable marks unusable channels "
            f"with 0), got a <= 0 at ISO {bad}; leave those ISOs out"
        )
    notes = []
    if np.any(b < 0):
        notes.append(
            f"green b is negative at ISO {', '.join(f'{i:g}' for i in isos[b < 0])} (darktable's fit went below "
            "zero); the model's line in ISO^2 takes them as they are"
        )
    k_each = a / variance_scale * range_dn / isos
    off = np.abs(k_each / np.median(k_each) - 1.0) > MAX_K_DEVIATION
    if np.any(off):
        keep = ", ".join(f"{i:g}" for i in isos[~off])
        raise InvalidInputError(
            f"{where}: K is not proportional to ISO at ISO {', '.join(f'{i:g}' for i in isos[off])}: their K per "
            f"ISO is more than {MAX_K_DEVIATION:.0%} off the median of the others (expected one analogue gain "
            "per ISO; extended, digitally pulled or pushed ISOs break it). Import the consistent ISOs with "
            f"isos (--isos), e.g. {keep}"
        )
    logs = np.log(k_each)
    k_per_iso = float(np.exp(logs.mean()))
    k_rel_se = float(logs.std(ddof=1) / math.sqrt(len(logs))) if len(logs) > 2 else float("nan")
    deviation = k_each / k_per_iso - 1.0
    # b_G r^2 / s = post^2 + pre^2 (k ISO)^2: non-negative least squares, each ISO weighted by
    # the size of its own b (darktable's b scatters in proportion to itself).
    y = b * range_dn**2 / variance_scale
    x = (k_per_iso * isos) ** 2
    weight = 1.0 / np.maximum(np.abs(y), np.max(np.abs(y)) * 1e-3)
    design = np.stack([np.ones_like(x), x], axis=1) * weight[:, None]
    (post_var, pre_var), _ = nnls(design, y * weight)
    pre_e, post_dn = math.sqrt(pre_var), math.sqrt(post_var)
    if post_var == 0.0 or pre_var == 0.0:
        notes.append(
            f"the fit put the read noise {'after' if post_var == 0 else 'before'} the gain at 0 (its b values do not "
            "rise as the model expects): read noise at " + ("low" if post_var == 0 else "high") + " ISO is likely "
            "understated"
        )
    model_b = (post_var + pre_var * x) * variance_scale / range_dn**2
    residual = (b - model_b) / np.max(np.abs(b))
    fit = DarktableFit(
        tuple(isos.tolist()), k_per_iso, k_rel_se, tuple(deviation.tolist()), pre_e, post_dn,
        tuple(residual.tolist()), tuple(notes),
    )  # fmt: skip
    _check_plausible(fit, where)
    return fit


def _check_plausible(fit: DarktableFit, where: str) -> None:
    lowest = fit.isos[0]
    read_e = fit.read_noise_dn(lowest) / fit.gain_dn_per_e(lowest)
    if fit.read_noise_dn(fit.isos[-1]) == 0 or not MIN_READ_NOISE_E <= read_e <= MAX_READ_NOISE_E:
        raise InvalidInputError(
            f"{where}: the fitted read noise at ISO {lowest:g} is {read_e:.3g} e-, outside what a sensor has "
            f"(expected {MIN_READ_NOISE_E:g} to {MAX_READ_NOISE_E:g} e-); darktable's b values for this camera "
            "do not determine it"
        )
