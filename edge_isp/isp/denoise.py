"""Denoising for the conventional ISP, in the variance-stabilized (Anscombe) domain.

The noise model is Poisson-Gaussian on the normalized [0, 1] scale: a pixel whose clean
value is ``x`` reads ``a * Poisson(x / a) + N(0, sigma^2)``, so ``var = a * x + sigma^2``.
Its generalized Anscombe transform (GAT; Murtagh, Starck and Bijaoui 1995, in Foi's
form) gives noise of unit variance at every brightness:

    f(y) = (2 / a) * sqrt(max(a * y + 3/8 * a^2 + sigma^2, 0))

(the unit-variance form of :mod:`edge_isp.sensor.anscombe`'s stabilized value, whose
arithmetic this module and the network share).

Why denoise there: both denoisers below assume one noise level for the whole image,
which raw noise is not (dark areas have much less noise than bright ones). After the GAT
one strength fits everywhere. We denoise the demosaicked, white-balanced linear image,
before the colour matrix and the tone curve: both of those mix or stretch the noise
(the matrix correlates it across channels, the sRGB curve amplifies it in the shadows)
away from the model. Each channel gets its own (a, sigma), since white balance and
digital gain scale the noise of each channel differently (see ``edge_isp.isp.pipeline``).
Demosaicking leaves interpolated pixels with less noise than measured ones; the
denoisers are set for the measured pixels' level, which errs on the side of smoothing.

Back from the GAT domain we use the closed-form approximation of the exact unbiased
inverse of Makitalo and Foi, "Optimal inversion of the generalized Anscombe
transformation for Poisson-Gaussian noise" (IEEE TIP 22(1), 2013): denoising estimates
E[f(y)], and the plain algebraic inverse of that is biased low in the dark.

Methods:
- ``"none"``: returned unchanged.
- ``"nlm"``: OpenCV's non-local means (``cv2.fastNlMeansDenoising``) on a 16-bit image
  with the L1 patch distance (OpenCV runs 16 bits only with L1; its colour variant is
  8-bit only, too coarse for raw data in the dark). The three GAT channels are denoised
  together (one patch distance over all three), with ``h`` = :data:`NLM_H_PER_SIGMA`
  times the GAT's unit noise sigma in 16-bit levels.
- ``"bm3d"``: the ``bm3d`` package (Makinen, Azzari, Foi), colour BM3D (opponent colour
  space) with its noise standard deviation from the model: the GAT's unit sigma times
  :data:`BM3D_SIGMA_SCALE`. The package is free for non-commercial use only (its licence).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import cv2
import numpy as np

from edge_isp.errors import InvalidInputError, require
from edge_isp.sensor.anscombe import ZERO_COUNT_D, algebraic_inverse, stabilized_square, unbiased_counts

DENOISE_METHODS = ("none", "nlm", "bm3d")

# Strengths in units of the GAT's noise standard deviation (1). Demosaicking spreads each
# sample's noise over its neighbours, and correlated noise looks like texture to both
# denoisers, so they need a higher setting than white noise of the same level would.
# Chosen by PSNR (sRGB) on astronaut, chelsea and coffee at half size, Malvar-demosaicked,
# with the Nexus 6P noise at light levels l = 1, 0.1, 0.03, 0.01, 0.003, 0.0015:
# NLM's h = 1.5 sigma was best or within 0.5 dB of the best for l <= 0.03 (h = 1 lost
# 1..3 dB there, h = 2 up to 1 dB); at l >= 0.1, h = 2..3 won by up to 1.6 dB, but there
# noise is small beside the demosaicking error. For BM3D,
# 1.5 sigma beat 1.0 by 0.7..2.5 dB at every level, 2.0 lost at l <= 0.01.
# OpenCV weighs a patch by exp(-d^2 / h^2), d the mean absolute difference of the patches.
NLM_H_PER_SIGMA = 1.5
BM3D_SIGMA_SCALE = 1.5
NLM_TEMPLATE_SIZE = 7
NLM_SEARCH_SIZE = 21
# The GAT image is spread over the full 16-bit range: hundreds of levels per sigma, so
# rounding adds nothing measurable.
_NLM_LEVELS = 65535

# A GAT image spanning less than this many noise sigmas is constant for our purposes.
_FLAT_SPAN = 1e-6

# The bm3d package's native library keeps one process-wide thread pool and aborts the whole
# process when two threads call it at once (Threading.cpp: _threads.empty()): one at a time.
_BM3D_LOCK = threading.Lock()


def _per_channel(value: float | Sequence[float], name: str, channels: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(channels, float(arr))
    if arr.shape != (channels,):
        raise InvalidInputError(
            f"noise {name} must be one number or {channels} (one per channel), got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InvalidInputError(f"noise {name} must be finite and >= 0, got {arr.tolist()}")
    return arr


def _noise_params(x: np.ndarray, a, sigma) -> tuple[np.ndarray, np.ndarray]:
    channels = x.shape[-1] if x.ndim == 3 else 1
    a_arr, s_arr = _per_channel(a, "a", channels), _per_channel(sigma, "sigma", channels)
    if np.any((a_arr == 0) & (s_arr == 0)):
        raise InvalidInputError(
            f"noise (a, sigma) must not be (0, 0) in any channel (no noise: nothing to stabilize), "
            f"got a={a_arr.tolist()}, sigma={s_arr.tolist()}"
        )
    if x.ndim != 3:
        return a_arr[0], s_arr[0]
    return a_arr, s_arr


def anscombe_forward(x: np.ndarray, a: float | Sequence[float], sigma: float | Sequence[float]) -> np.ndarray:
    """Generalized Anscombe transform: Poisson-Gaussian ``x`` -> unit-variance noise.

    Args:
        x: values on the normalized scale, any shape; ``(H, W, C)`` takes per-channel
            ``a`` and ``sigma`` (length C), anything else scalars.
        a: Poisson gain on the [0, 1] scale (``var = a * x + sigma^2``), >= 0. With
            ``a == 0`` (pure Gaussian noise) the transform is ``x / sigma``.
        sigma: standard deviation of the Gaussian part on the [0, 1] scale, >= 0.

    Returns:
        float64 array of ``x``'s shape, in units of the noise standard deviation.
    """
    x = np.asarray(x, dtype=np.float64)
    a, sigma = _noise_params(x, a, sigma)
    gaussian = a == 0
    safe_a = np.where(gaussian, 1.0, a)
    poisson = 2.0 / safe_a * np.sqrt(np.maximum(stabilized_square(x, safe_a, sigma), 0.0))
    return np.where(gaussian, x / np.where(gaussian, sigma, 1.0), poisson)


def anscombe_inverse(
    z: np.ndarray, a: float | Sequence[float], sigma: float | Sequence[float], unbiased: bool = True
) -> np.ndarray:
    """Inverse of :func:`anscombe_forward` (same ``a``, ``sigma`` and shape rules).

    ``unbiased=True`` (for denoised values, which estimate E[f(y)]): Makitalo and Foi's
    closed-form approximation of the exact unbiased inverse
    (:func:`edge_isp.sensor.anscombe.unbiased_counts`), clipped at 0; values below the
    transform of a noiseless 0 map to 0. ``unbiased=False``: the algebraic inverse, exact on noise-free values
    (and not clipped).

    Returns:
        float64 array, on the normalized scale of ``x``.
    """
    z = np.asarray(z, dtype=np.float64)
    a, sigma = _noise_params(z, a, sigma)
    gaussian = a == 0
    safe_a = np.where(gaussian, 1.0, a)
    if not unbiased:
        poisson = algebraic_inverse(safe_a * z / 2.0, safe_a, sigma)
    else:
        counts = unbiased_counts(np.maximum(z, ZERO_COUNT_D), sigma / safe_a)
        poisson = np.where(z < ZERO_COUNT_D, 0.0, np.maximum(counts, 0.0) * safe_a)
    return np.where(gaussian, z * sigma, poisson)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise InvalidInputError(
            f"denoise takes an RGB image (H, W, 3), got {type(rgb).__name__} with shape {getattr(rgb, 'shape', None)}"
        )
    if not np.isfinite(rgb).all():
        raise InvalidInputError("denoise input must be finite, got NaN or infinite values")
    return rgb


def _nlm(z: np.ndarray) -> np.ndarray:
    low, span = z.min(), float(z.max() - z.min())
    scale = _NLM_LEVELS / span
    integer = np.rint((z - low) * scale).astype(np.uint16)
    h = NLM_H_PER_SIGMA * scale  # the GAT's noise has unit sigma, i.e. `scale` levels
    out = cv2.fastNlMeansDenoising(
        integer,
        [float(h)],
        templateWindowSize=NLM_TEMPLATE_SIZE,
        searchWindowSize=NLM_SEARCH_SIZE,
        normType=cv2.NORM_L1,
    )
    return out.astype(np.float64) / scale + low


def _bm3d(z: np.ndarray) -> np.ndarray:
    bm3d = require("bm3d", "bm3d", "denoising with BM3D (the bm3d package is free for non-commercial use only)")
    low, span = z.min(), float(z.max() - z.min())
    # bm3d's defaults are tuned for images on about [0, 1]: rescale, unit sigma with it.
    with _BM3D_LOCK:
        out = bm3d.bm3d_rgb((z - low) / span, sigma_psd=BM3D_SIGMA_SCALE / span)
    return np.asarray(out, dtype=np.float64) * span + low


def denoise(
    rgb: np.ndarray,
    method: str,
    a: float | Sequence[float] = 0.0,
    sigma: float | Sequence[float] = 0.0,
) -> np.ndarray:
    """Denoise a linear RGB image whose noise follows ``var = a * x + sigma^2`` per channel.

    Args:
        rgb: ``(H, W, 3)`` linear RGB on the normalized [0, 1] scale (may stray outside).
        method: one of :data:`DENOISE_METHODS`.
        a: Poisson gain per channel (one number or three), [0, 1] scale.
        sigma: Gaussian standard deviation per channel (one number or three), [0, 1] scale.
            ``a`` and ``sigma`` must not both be 0 unless ``method == "none"``.

    Returns:
        ``(H, W, 3)`` float32, same scale (``"none"`` returns ``rgb`` as float32), >= 0.
        The unbiased inverse assumes the input was noisy as modelled: a noise-free image
        comes back slightly brighter, most in the dark (0 becomes up to about ``a / 4``).
    """
    if method not in DENOISE_METHODS:
        raise InvalidInputError(f"unknown denoise method {method!r}; expected one of {', '.join(DENOISE_METHODS)}")
    rgb = _check_rgb(rgb)
    if method == "none":
        return rgb.astype(np.float32, copy=False)
    z = anscombe_forward(rgb, a, sigma)
    # A constant image has nothing to denoise, and BM3D would divide by its zero spread.
    if float(z.max() - z.min()) >= _FLAT_SPAN:
        z = _nlm(z) if method == "nlm" else _bm3d(z)
    return anscombe_inverse(z, a, sigma, unbiased=True).astype(np.float32)
