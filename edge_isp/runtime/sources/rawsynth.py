"""Raw synthesis in numpy for the live simulated camera: the torch simulator's noise model,
one frame at a time, without torch.

This is the numpy twin of :func:`edge_isp.sensor.simulate.simulate` with ``unprocess="fixed"``,
no blur and ``quantize=True``: the same tone curve, colour inverse, Poisson shot noise, read
noise (Gaussian or Tukey-lambda), row noise, black level, rounding and clipping, and the same
automatic analogue gain. ``tests/runtime/test_sources.py`` checks its statistics against the
torch simulator's. The runtime cannot import that module (it imports torch at load time).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.sensor.cfa import CFA, colour_mask, per_channel_map
from edge_isp.sensor.profile import SensorProfile


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """Inverse sRGB tone curve (IEC 61966-2-1), any shape, float32 out."""
    srgb = np.asarray(srgb, dtype=np.float32)
    power = ((np.maximum(srgb, 0.04045) + 0.055) / 1.055) ** 2.4
    return np.where(srgb <= 0.04045, srgb / 12.92, power).astype(np.float32)


def rgb_to_camera_matrix(profile: SensorProfile) -> np.ndarray:
    """``(3, 3)``: linear sRGB -> linear camera RGB, the inverse colour matrix followed by the
    division by the white balance (white becomes ``1 / white_balance``)."""
    inverse = np.linalg.inv(np.asarray(profile.color_matrix, dtype=np.float64))
    return (inverse / np.asarray(profile.white_balance, dtype=np.float64)[:, None]).astype(np.float32)


def srgb_to_camera(srgb: np.ndarray, profile: SensorProfile) -> np.ndarray:
    """``(..., 3)`` sRGB on [0, 1] -> ``(..., 3)`` float32 linear camera RGB."""
    return srgb_to_linear(srgb) @ rgb_to_camera_matrix(profile).T


def channel_index(cfa: CFA | str, height: int, width: int) -> np.ndarray:
    """``(H, W)`` int8: which RGB channel (0, 1, 2) the sensor measures at each pixel."""
    return np.argmax(colour_mask(cfa, height, width), axis=0).astype(np.int8)


def auto_analogue_gain(profile: SensorProfile, electrons_at_white: float) -> float:
    """The gain g with ``electrons_at_white * K(g) = white - black``, clipped to
    [1, ``profile.max_analogue_gain``]; as :func:`edge_isp.sensor.simulate.auto_analogue_gain`.

    K(g) is piecewise linear in g between 1, the table's gains and the maximum, so the
    inverse is an interpolation through those breakpoints.
    """
    if not (math.isfinite(electrons_at_white) and electrons_at_white > 0):
        raise InvalidInputError(f"electrons_at_white must be a positive number, got {electrons_at_white}")
    top = profile.max_analogue_gain
    inner = [n.analogue_gain for n in profile.noise if 1.0 < n.analogue_gain < top]
    gains = np.array(sorted({1.0, top, *inner}))
    ks = np.array([profile.noise_at(float(g)).gain_dn_per_e for g in gains])
    return float(np.interp(profile.range_dn / electrons_at_white, ks, gains))


def _tukey_lambda_std(lam: float) -> float:
    """Standard deviation of the standard Tukey-lambda distribution (finite for lam > -1/2)."""
    if abs(lam) < 1e-4:
        return math.pi / math.sqrt(3.0)  # the logistic limit
    ratio = math.exp(2 * math.lgamma(lam + 1) - math.lgamma(2 * lam + 2))
    return math.sqrt(2.0 / lam**2 * (1.0 / (1.0 + 2.0 * lam) - ratio))


def unit_read_noise(rng: np.random.Generator, shape: tuple[int, ...], lam: float | None) -> np.ndarray:
    """Zero-mean, unit-variance read noise: Gaussian, or Tukey-lambda with shape ``lam``."""
    if lam is None:
        return rng.standard_normal(shape, dtype=np.float32)
    eps = np.finfo(np.float32).eps
    u = np.clip(rng.random(shape, dtype=np.float32), eps, 1 - eps)
    logistic = abs(lam) < 1e-4
    sample = np.log(u) - np.log1p(-u) if logistic else (u**lam - (1 - u) ** lam) / lam
    return (sample / _tukey_lambda_std(lam)).astype(np.float32)


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
    brings the scene's white to 1.0, as the torch simulator chooses them."""
    if not (math.isfinite(electrons_at_white) and electrons_at_white > 0):
        raise InvalidInputError(f"electrons_at_white must be a positive number, got {electrons_at_white}")
    if isinstance(analogue_gain, str):
        if analogue_gain != "auto":
            raise InvalidInputError(f"analogue_gain must be 'auto' or a number, got {analogue_gain!r}")
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


def synthesize_raw(
    camera_mosaic: np.ndarray,
    profile: SensorProfile,
    exposure: Exposure,
    rng: np.random.Generator,
    black_map: np.ndarray | None = None,
) -> np.ndarray:
    """One noisy raw frame from a clean linear camera mosaic.

    Args:
        camera_mosaic: ``(H, W)`` linear camera values through the CFA (1.0 = the
            exposure's white before white balance); negatives are treated as 0.
        profile: the sensor's levels and noise.
        exposure: from :func:`choose_exposure`.
        rng: the random source.
        black_map: ``(H, W)`` black level per pixel in DN, if precomputed.

    Returns:
        ``(H, W)`` uint16 DN: ``black + K * Poisson(e * x) + read + row``, rounded and
        clipped to [0, white level].
    """
    height, width = camera_mosaic.shape
    noise = profile.noise_at(exposure.analogue_gain)
    if black_map is None:
        black_map = per_channel_map(profile.black_level, profile.cfa, height, width).astype(np.float32)
    mean_electrons = np.maximum(camera_mosaic, 0.0, dtype=np.float64) * exposure.electrons_at_white
    signal = rng.poisson(mean_electrons).astype(np.float32) * np.float32(noise.gain_dn_per_e)
    signal += unit_read_noise(rng, (height, width), noise.read_noise_lambda) * np.float32(noise.read_noise_dn)
    if noise.row_noise_dn > 0:
        signal += rng.standard_normal((height, 1), dtype=np.float32) * np.float32(noise.row_noise_dn)
    signal += black_map
    return np.clip(np.rint(signal), 0, profile.white_level).astype(np.uint16)
