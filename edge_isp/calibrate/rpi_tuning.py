"""What a Raspberry Pi tuning file adds to a profile beyond its noise slope: colour, and the
read noise the file lacks, spread over the analogue-gain range by a physical model.

Colour. libcamera's Raspberry Pi tuning files (``rpi.ccm``, ``rpi.awb``) hold colour
matrices by colour temperature, each mapping white-balanced camera RGB to linear sRGB (rows
summing to 1: the profile's convention), and the AWB curve ``ct_curve``: for each colour
temperature, the red and blue of a grey surface relative to green (``r = R/G``, ``b = B/G``),
so the white-balance gains there are ``1/r, 1, 1/b``. :func:`rpi_colour` interpolates both
linearly in colour temperature to one illuminant (D65, 6500 K, by default), clamping at the
ends of the file's range.

Read noise. Every tuning file in Debian's libcamera-ipa 0.0.3 has ``reference_constant`` 0:
the tuning tool's fit of ``std = c + s sqrt(x)`` went negative and was clamped, so the file
says nothing about read noise. It has to come from elsewhere, as two numbers in electrons:
at analogue gain 1 and at the highest gain. :func:`read_noise_table` spreads them with the
usual two-stage model of a CMOS readout: a noise source before the analogue gain
(``pre_e``, electrons) and one after it (``post_dn``, DN, the column amplifier and ADC),

    read_dn(g)^2 = (K(g) * pre_e)^2 + post_dn^2,    K(g) = K(1) * g,

solved exactly through the two given points. Read noise in electrons then falls with gain
towards ``pre_e``, as measured on real sensors (e.g. the IMX477: 3 e- at gain 1, 1.5 e- at
gain 16; Hogan, "Pi HQ Cam Sensor Performance", strollswithmydog.com, 2020).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.sensor.profile import NoiseAtGain

D65_KELVIN = 6500.0


def _algorithm(tuning: dict[str, Any], key: str) -> Any:
    if not isinstance(tuning, dict):
        return None
    if key in tuning:
        return tuning[key]
    for algorithm in tuning.get("algorithms", []):
        if isinstance(algorithm, dict) and key in algorithm:
            return algorithm[key]
    return None


def rpi_colour(
    tuning: dict[str, Any], colour_temperature_k: float = D65_KELVIN
) -> tuple[tuple[tuple[float, ...], ...], tuple[float, float, float], str] | None:
    """``(color_matrix, white_balance, note)`` at ``colour_temperature_k``, or None when the
    file lacks a colour matrix table or an AWB curve (the profile then has no colour)."""
    ccm_block = _algorithm(tuning, "rpi.ccm")
    awb_block = _algorithm(tuning, "rpi.awb")
    ccms = ccm_block.get("ccms") if isinstance(ccm_block, dict) else None
    curve = awb_block.get("ct_curve") if isinstance(awb_block, dict) else None
    if not ccms or not curve or len(curve) % 3:
        return None
    try:
        cts = np.array([float(c["ct"]) for c in ccms])
        matrices = np.array([np.asarray(c["ccm"], dtype=float).reshape(3, 3) for c in ccms])
        points = np.asarray(curve, dtype=float).reshape(-1, 3)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"the tuning file's rpi.ccm or rpi.awb ct_curve is malformed: {exc}") from None
    order = np.argsort(cts)
    cts, matrices = cts[order], matrices[order]
    matrix = np.stack(
        [np.interp(colour_temperature_k, cts, matrices[:, i, j]) for i in range(3) for j in range(3)]
    ).reshape(3, 3)
    points = points[np.argsort(points[:, 0])]
    r = float(np.interp(colour_temperature_k, points[:, 0], points[:, 1]))
    b = float(np.interp(colour_temperature_k, points[:, 0], points[:, 2]))
    if r <= 0 or b <= 0:
        raise InvalidInputError(f"the tuning file's AWB curve gives a non-positive r or b ({r}, {b})")
    clamped = not cts[0] <= colour_temperature_k <= cts[-1] or not points[0, 0] <= colour_temperature_k <= points[-1, 0]
    note = (
        f"colour from the tuning file at {colour_temperature_k:g} K: rpi.ccm interpolated between its "
        f"{len(cts)} matrices ({cts[0]:g} to {cts[-1]:g} K), white balance 1/r, 1, 1/b from rpi.awb ct_curve "
        f"(r {r:.4g}, b {b:.4g})" + (" (clamped at the end of the file's range)" if clamped else "")
    )
    rows = tuple(tuple(float(v) for v in row) for row in matrix)
    return rows, (1.0 / r, 1.0, 1.0 / b), note


def agc_max_gain(tuning: dict[str, Any]) -> float | None:
    """The highest gain the tuning file's AGC asks for in any exposure mode, or None."""
    agc = _algorithm(tuning, "rpi.agc")
    modes = agc.get("exposure_modes") if isinstance(agc, dict) else None
    gains = [float(g) for m in (modes or {}).values() if isinstance(m, dict) for g in m.get("gain", [])]
    return max(gains) if gains else None


def read_noise_table(
    unity: NoiseAtGain, read_noise_e: Sequence[float], max_gain: float, gains: Sequence[float] | None = None
) -> tuple[list[NoiseAtGain], float, float]:
    """The noise table over ``[1, max_gain]`` from K at gain 1 and the read noise in
    electrons at gain 1 and at ``max_gain`` (one number: the same at every gain).

    Returns ``(table, pre_e, post_dn)``: the entries at ``gains`` (default 1, 2, 4, ... and
    ``max_gain``) and the model's two noise sources.
    """
    values = [float(v) for v in read_noise_e]
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise InvalidInputError(
            f"read noise must be one or two positive numbers of electrons (at gain 1 and at the highest gain), "
            f"got {list(read_noise_e)}"
        )
    at_1, at_max = values
    if at_max > at_1:
        raise InvalidInputError(
            f"read noise in electrons cannot rise with analogue gain: expected at most {at_1:g} e- at gain "
            f"{max_gain:g}, got {at_max:g}"
        )
    if not (math.isfinite(max_gain) and max_gain >= 1):
        raise InvalidInputError(f"the highest analogue gain must be >= 1, got {max_gain}")
    k1 = unity.gain_dn_per_e
    if max_gain == 1.0 or at_max == at_1:
        pre_e, post_dn = at_1, 0.0
    else:
        pre_e = math.sqrt((at_max**2 * max_gain**2 - at_1**2) / (max_gain**2 - 1.0))
        post_dn = k1 * math.sqrt(max(at_1**2 - pre_e**2, 0.0))
    if gains is None:
        gains = [2.0**i for i in range(int(math.log2(max_gain)) + 1)]
        gains += [max_gain] if gains[-1] < max_gain else []
    table = [
        NoiseAtGain(
            analogue_gain=float(g),
            gain_dn_per_e=k1 * g,
            read_noise_dn=math.sqrt((k1 * g * pre_e) ** 2 + post_dn**2),
        )
        for g in sorted(gains)
    ]
    return table, pre_e, post_dn
