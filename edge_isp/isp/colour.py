"""Colour stages of the conventional ISP: white balance, colour matrix, tone, 8-bit output.

Images are channel-last ``(H, W, 3)`` in the order R, G, B, as in
``edge_isp.isp.demosaic``; mosaics are ``(H, W)``. All values are linear light on the
normalized [0, 1] scale until :func:`apply_tone`, which returns display values on [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.sensor.cfa import CFA, colour_mask, per_channel_map

# "srgb": the sRGB transfer curve (IEC 61966-2-1) alone. "srgb-scurve": then the global
# S-curve 3x^2 - 2x^3 (smoothstep), the tone curve Brooks et al. ("Unprocessing images for
# learned raw denoising", CVPR 2019) use as a stand-in for a camera's. "linear": no curve.
TONE_CURVES = ("srgb", "srgb-scurve", "linear")

# Grey-world leaves a channel's gain at 1 when its mean is below this: a black frame has
# no colour cast to correct, and dividing by its noise would give wild gains.
GREY_WORLD_MIN_MEAN = 1e-4


def check_gains(gains: Sequence[float], what: str = "white balance") -> np.ndarray:
    """Validate three positive finite gains (R, G, B); returns them as float64 ``(3,)``."""
    try:
        arr = np.asarray(gains, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{what} must be 3 numbers (R, G, B gains), got {gains!r}") from None
    if arr.shape != (3,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InvalidInputError(f"{what} must be 3 positive finite gains (R, G, B), got {np.asarray(gains).tolist()}")
    return arr


def check_matrix(matrix: Sequence[Sequence[float]]) -> np.ndarray:
    """Validate a finite, non-singular 3x3 colour matrix; returns it as float64 ``(3, 3)``."""
    try:
        arr = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"colour matrix must be 3x3 numbers, got {matrix!r}") from None
    if arr.shape != (3, 3) or not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"colour matrix must be a finite 3x3 array, got shape {arr.shape}")
    if abs(np.linalg.det(arr)) < 1e-6:
        raise InvalidInputError(f"colour matrix must be invertible, got determinant {np.linalg.det(arr):.3g}")
    return arr


def _check_rgb(rgb: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise InvalidInputError(
            f"{what} takes an RGB image (H, W, 3), got {type(rgb).__name__} with shape {getattr(rgb, 'shape', None)}"
        )
    return rgb


def white_balance_mosaic(mosaic: np.ndarray, cfa: CFA | str, gains: Sequence[float]) -> np.ndarray:
    """Multiply each sample of a ``(H, W)`` mosaic by its colour's gain (R, G, B).

    Returns float32 ``(H, W)``. White balance comes before demosaicking so that the
    interpolation sees the colours in balance, as the methods assume.
    """
    r, g, b = check_gains(gains)
    gain_map = per_channel_map((r, g, g, b), cfa, *mosaic.shape)
    return (mosaic * gain_map).astype(np.float32)


def white_balance_rgb(rgb: np.ndarray, gains: Sequence[float]) -> np.ndarray:
    """Multiply the channels of an ``(H, W, 3)`` image by the gains (R, G, B); float32."""
    return (_check_rgb(rgb, "white_balance_rgb") * check_gains(gains)).astype(np.float32)


def grey_world_gains(mosaic: np.ndarray, cfa: CFA | str) -> tuple[float, float, float]:
    """Gains (R, G, B) that make the mosaic's mean colour grey, with green's gain 1.

    The grey-world assumption: a scene averages to grey. A channel whose mean is below
    :data:`GREY_WORLD_MIN_MEAN` (no light) keeps gain 1.
    """
    mask = colour_mask(cfa, *mosaic.shape)
    means = np.array([float(mosaic[m].mean()) for m in mask])
    green = means[1]
    if green < GREY_WORLD_MIN_MEAN:
        return (1.0, 1.0, 1.0)
    gains = np.where(means >= GREY_WORLD_MIN_MEAN, green / np.maximum(means, GREY_WORLD_MIN_MEAN), 1.0)
    return (float(gains[0]), 1.0, float(gains[2]))


def apply_color_matrix(rgb: np.ndarray, matrix: Sequence[Sequence[float]]) -> np.ndarray:
    """``out[..., i] = sum_j matrix[i][j] * rgb[..., j]``: camera RGB -> linear sRGB; float32."""
    m = check_matrix(matrix).astype(np.float32)
    return (_check_rgb(rgb, "apply_color_matrix").astype(np.float32) @ m.T).astype(np.float32)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve: linear [0, 1] -> encoded [0, 1] (input clipped to [0, 1]).

    ``12.92 x`` up to ``x = 0.0031308``, then ``1.055 x^(1/2.4) - 0.055``.
    """
    x = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """Inverse of :func:`srgb_encode`: encoded [0, 1] -> linear [0, 1] (input clipped)."""
    y = np.clip(np.asarray(encoded, dtype=np.float32), 0.0, 1.0)
    return np.where(y <= 0.04045, y / 12.92, np.power((y + 0.055) / 1.055, 2.4)).astype(np.float32)


def s_curve(x: np.ndarray) -> np.ndarray:
    """Global contrast curve ``3x^2 - 2x^3`` on [0, 1] (input clipped): fixes 0, 0.5, 1."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return (x * x * (3.0 - 2.0 * x)).astype(np.float32)


def apply_tone(linear: np.ndarray, tone: str = "srgb") -> np.ndarray:
    """Linear [0, 1] -> display [0, 1] with one of :data:`TONE_CURVES`; clips to [0, 1]."""
    if tone not in TONE_CURVES:
        raise InvalidInputError(f"unknown tone curve {tone!r}; expected one of {', '.join(TONE_CURVES)}")
    if tone == "linear":
        return np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    encoded = srgb_encode(linear)
    return s_curve(encoded) if tone == "srgb-scurve" else encoded


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Display values on [0, 1] -> uint8 (clipped, rounded to the nearest level)."""
    return np.rint(np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An (H, W, C) image resized to ``size`` (width, height): area averaging when it shrinks
    (no aliasing), bilinear when it grows; returned as is when it already has that size."""
    h, w = image.shape[:2]
    if (w, h) == tuple(size):
        return image
    shrinking = size[0] * size[1] < w * h
    return cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
