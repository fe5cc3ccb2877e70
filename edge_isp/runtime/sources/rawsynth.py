"""Raw synthesis in numpy for the live simulated camera: the torch simulator's noise model,
one frame at a time, without torch.

What :func:`edge_isp.sensor.simulate.simulate` does with ``unprocess="fixed"``, no blur and
``quantize=True``, for one frame drawn with numpy's generator: the same tone curve
(:func:`edge_isp.isp.colour.srgb_decode`), colour inverse, Poisson shot noise, read noise
(Gaussian or Tukey-lambda), row noise, black level, rounding and clipping. The exposure (the
automatic analogue gain, the digital gain) and the Tukey-lambda scale are the same code as
the torch simulator's, :mod:`edge_isp.sensor.exposure`; only the sampling differs (the
runtime cannot import torch). ``tests/runtime/test_sources.py`` checks the statistics of the
two against each other.
"""

from __future__ import annotations

import numpy as np

from edge_isp.isp.colour import srgb_decode
from edge_isp.sensor.cfa import CFA, colour_mask, per_channel_map
from edge_isp.sensor.exposure import Exposure, tukey_lambda_std
from edge_isp.sensor.profile import SensorProfile


def rgb_to_camera_matrix(profile: SensorProfile) -> np.ndarray:
    """``(3, 3)``: linear sRGB -> linear camera RGB, the inverse colour matrix followed by the
    division by the white balance (white becomes ``1 / white_balance``)."""
    inverse = np.linalg.inv(np.asarray(profile.color_matrix, dtype=np.float64))
    return (inverse / np.asarray(profile.white_balance, dtype=np.float64)[:, None]).astype(np.float32)


def srgb_to_camera(srgb: np.ndarray, profile: SensorProfile) -> np.ndarray:
    """``(..., 3)`` sRGB on [0, 1] -> ``(..., 3)`` float32 linear camera RGB."""
    return srgb_decode(srgb) @ rgb_to_camera_matrix(profile).T


def channel_index(cfa: CFA | str, height: int, width: int) -> np.ndarray:
    """``(H, W)`` int8: which RGB channel (0, 1, 2) the sensor measures at each pixel."""
    return np.argmax(colour_mask(cfa, height, width), axis=0).astype(np.int8)


def unit_read_noise(rng: np.random.Generator, shape: tuple[int, ...], lam: float | None) -> np.ndarray:
    """Zero-mean, unit-variance read noise: Gaussian, or Tukey-lambda with shape ``lam``."""
    if lam is None:
        return rng.standard_normal(shape, dtype=np.float32)
    eps = np.finfo(np.float32).eps
    u = np.clip(rng.random(shape, dtype=np.float32), eps, 1 - eps)
    logistic = abs(lam) < 1e-4
    sample = np.log(u) - np.log1p(-u) if logistic else (u**lam - (1 - u) ** lam) / lam
    return (sample / tukey_lambda_std(lam)).astype(np.float32)


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
