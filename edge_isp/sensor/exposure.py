"""How a simulated sensor exposes a scene: analogue gain, digital gain, and the read-noise shape.

The pure, torch-free part both raw simulators share: the batched torch simulator
(:func:`edge_isp.sensor.simulate.simulate`, for training and evaluation) and the numpy
synthesis of the live simulated camera (:mod:`edge_isp.runtime.sources.rawsynth`, which
must not import torch). Each decides its exposure here, so the two cannot drift apart.

Gain ("auto"): the analogue gain that brings white to full scale, ``electrons_at_white
* K(g) = white - black``, clipped to [1, ``profile.max_analogue_gain``]; the digital gain
``d = range_dn / (electrons_at_white * K)`` does the rest, so the scene's white lands at 1.0
after normalization whatever the light level. Brighter than full scale at base gain (the
Nexus 6P's 5,341 e- at white, about 2,000 lux), an auto-exposing camera shortens its
exposure rather than clip: white then collects the full-scale count, not more, so daylight
is the base-gain noise level and not a clipped frame scaled down by a digital gain below 1.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.sensor.profile import SensorProfile


def auto_analogue_gain(profile: SensorProfile, electrons_at_white: float) -> float:
    """The gain g with ``electrons_at_white * K(g) = white - black``, clipped to
    [1, ``profile.max_analogue_gain``].

    K(g) is linear in g between the noise table's entries and proportional to g outside
    the table, so between the breakpoints (1, the entries, the maximum) the inverse is an
    exact linear interpolation.
    """
    if not (math.isfinite(electrons_at_white) and electrons_at_white > 0):
        raise InvalidInputError(f"electrons_at_white must be a positive number, got {electrons_at_white}")
    top = profile.max_analogue_gain
    inner = [n.analogue_gain for n in profile.noise if 1.0 < n.analogue_gain < top]
    gains = np.array(sorted({1.0, top, *inner}))
    # A valid profile's K grows with gain, so np.interp sees increasing abscissae.
    ks = np.array([profile.noise_at(float(g)).gain_dn_per_e for g in gains])
    return float(np.interp(profile.range_dn / electrons_at_white, ks, gains))


@dataclasses.dataclass(frozen=True)
class Exposure:
    """What the simulated sensor did for one frame: gains and light.

    Attributes:
        analogue_gain: the sensor gain used (1.0 = base gain).
        digital_gain: the gain after normalization that puts white at 1.0.
        electrons_at_white: mean photo-electrons for a camera value of 1.0.
    """

    analogue_gain: float
    digital_gain: float
    electrons_at_white: float


def choose_exposure(profile: SensorProfile, electrons_at_white: float, analogue_gain: str | float = "auto") -> Exposure:
    """The analogue gain (``"auto"`` or a number in (0, max]) and the digital gain that
    brings the scene's white to 1.0; with ``"auto"``, light beyond full scale at base gain is
    cut to it (a shorter exposure; see the module docstring)."""
    if not (math.isfinite(electrons_at_white) and electrons_at_white > 0):
        raise InvalidInputError(f"electrons_at_white must be a positive number, got {electrons_at_white}")
    if isinstance(analogue_gain, str):
        if analogue_gain != "auto":
            raise InvalidInputError(f"analogue_gain must be 'auto' or a number, got {analogue_gain!r}")
        full_scale = profile.range_dn / profile.noise_at(1.0).gain_dn_per_e
        electrons_at_white = min(float(electrons_at_white), full_scale)
        gain = auto_analogue_gain(profile, electrons_at_white)
    else:
        gain = float(analogue_gain)
        if not (math.isfinite(gain) and 0 < gain <= profile.max_analogue_gain):
            raise InvalidInputError(
                f"analogue_gain must be in (0, {profile.max_analogue_gain}] (the profile's max_analogue_gain), "
                f"got {analogue_gain!r}"
            )
    k = profile.noise_at(gain).gain_dn_per_e
    return Exposure(gain, profile.range_dn / (electrons_at_white * k), float(electrons_at_white))


def tukey_lambda_std(lam: float) -> float:
    """Standard deviation of the standard Tukey-lambda distribution (finite for lam > -1/2),
    which divides a Tukey-lambda read-noise sample to unit variance."""
    if abs(lam) < 1e-4:
        return math.pi / math.sqrt(3.0)  # the logistic limit
    ratio = math.exp(2 * math.lgamma(lam + 1) - math.lgamma(2 * lam + 2))
    return math.sqrt(2.0 / lam**2 * (1.0 / (1.0 + 2.0 * lam) - ratio))
