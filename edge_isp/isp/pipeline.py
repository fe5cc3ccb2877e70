"""The conventional ISP: a RawFrame (or a normalized mosaic) -> an sRGB image.

Stages, in order: black level and normalization (``RawFrame.normalized``), digital gain,
white balance (on the mosaic), demosaicking, denoising (in the Anscombe domain, see
``edge_isp.isp.denoise``), colour matrix, clip to [0, 1], tone curve (sRGB encoding by
default). numpy and OpenCV only: it runs on the board, where there is no torch.

Output is channel-last ``(H, W, 3)`` float32 R, G, B display values on [0, 1];
:func:`to_uint8` makes the 8-bit image.

Example:
    >>> from edge_isp.sensor.cfa import CFA
    >>> mosaic = np.full((8, 8), 0.18, np.float32)
    >>> rgb = render_mosaic(mosaic, CFA.RGGB, IspConfig(demosaic="bilinear"))
    >>> rgb.shape, round(float(rgb[4, 4, 1]), 3)
    ((8, 8, 3), 0.461)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.isp.colour import (
    TONE_CURVES,
    apply_color_matrix,
    apply_tone,
    check_gains,
    check_matrix,
    grey_world_gains,
    to_uint8,
    white_balance_mosaic,
)
from edge_isp.isp.demosaic import DEMOSAIC_METHODS, demosaic
from edge_isp.isp.denoise import DENOISE_METHODS, denoise
from edge_isp.sensor.cfa import CFA
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile

__all__ = ["IspConfig", "render", "render_mosaic", "to_uint8"]


@dataclasses.dataclass(frozen=True)
class IspConfig:
    """How the conventional ISP renders a frame. Validated on construction.

    Attributes:
        demosaic: one of ``edge_isp.isp.demosaic.DEMOSAIC_METHODS``.
        denoise: one of ``edge_isp.isp.denoise.DENOISE_METHODS``; anything but "none"
            needs a noise level (``noise``, or the profile's in :func:`render`).
        white_balance: gains (R, G, B); None: the profile's, else grey-world.
        color_matrix: 3x3, white-balanced camera RGB -> linear sRGB; None: the
            profile's, else none.
        noise: (a, sigma) of the normalized raw before digital gain, on the [0, 1] scale
            (``var = a * x + sigma^2``); None: from the profile at the frame's gain.
        digital_gain: multiplies the normalized raw (exposure compensation), > 0; for
            :func:`render`, on top of the RawFrame's own digital gain.
        tone: one of ``edge_isp.isp.colour.TONE_CURVES``.
    """

    demosaic: str = "malvar"
    denoise: str = "none"
    white_balance: tuple[float, float, float] | None = None
    color_matrix: tuple[tuple[float, float, float], ...] | None = None
    noise: tuple[float, float] | None = None
    digital_gain: float = 1.0
    tone: str = "srgb"

    def __post_init__(self) -> None:
        for field, choices in (("demosaic", DEMOSAIC_METHODS), ("denoise", DENOISE_METHODS), ("tone", TONE_CURVES)):
            value = getattr(self, field)
            if value not in choices:
                raise InvalidInputError(f"IspConfig.{field} must be one of {', '.join(choices)}, got {value!r}")
        if self.white_balance is not None:
            gains = check_gains(self.white_balance, "IspConfig.white_balance")
            object.__setattr__(self, "white_balance", tuple(float(g) for g in gains))
        if self.color_matrix is not None:
            matrix = check_matrix(self.color_matrix)
            object.__setattr__(self, "color_matrix", tuple(tuple(float(v) for v in row) for row in matrix))
        if self.noise is not None:
            object.__setattr__(self, "noise", _check_noise(self.noise))
        gain = self.digital_gain
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not math.isfinite(gain) or gain <= 0:
            raise InvalidInputError(f"IspConfig.digital_gain must be a positive finite number, got {gain!r}")
        object.__setattr__(self, "digital_gain", float(gain))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form, saved beside anything rendered with it."""
        return {
            "demosaic": self.demosaic,
            "denoise": self.denoise,
            "white_balance": None if self.white_balance is None else list(self.white_balance),
            "color_matrix": None if self.color_matrix is None else [list(r) for r in self.color_matrix],
            "noise": None if self.noise is None else list(self.noise),
            "digital_gain": self.digital_gain,
            "tone": self.tone,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IspConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused by name."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InvalidInputError(f"unknown IspConfig field(s) {', '.join(unknown)}; expected {', '.join(known)}")
        return cls(**data)


def _check_noise(noise: Any) -> tuple[float, float]:
    try:
        a, sigma = (float(v) for v in noise)
    except (TypeError, ValueError):
        raise InvalidInputError(f"IspConfig.noise must be a pair (a, sigma) or None, got {noise!r}") from None
    if not (math.isfinite(a) and math.isfinite(sigma)) or a < 0 or sigma < 0 or a == sigma == 0:
        raise InvalidInputError(f"IspConfig.noise (a, sigma) must be finite, >= 0 and not both 0, got ({a}, {sigma})")
    return a, sigma


def _render(
    mosaic: np.ndarray,
    cfa: CFA,
    config: IspConfig,
    gains: tuple[float, float, float] | None,
    matrix: Any,
    noise: tuple[float, float] | None,
) -> np.ndarray:
    x = mosaic.astype(np.float32) * np.float32(config.digital_gain)
    if gains is None:
        gains = grey_world_gains(x, cfa)
    rgb = demosaic(white_balance_mosaic(x, cfa, gains), cfa, config.demosaic)
    if config.denoise != "none":
        if noise is None:
            raise InvalidInputError(
                f"denoise={config.denoise!r} needs the noise level: set IspConfig.noise = (a, sigma) "
                "or give a sensor profile"
            )
        # Digital gain and white balance scale a channel's values by k, so its noise
        # becomes var = (k a) y + (k sigma)^2 in the new units.
        k = config.digital_gain * np.asarray(gains, dtype=np.float64)
        rgb = denoise(rgb, config.denoise, noise[0] * k, noise[1] * k)
    if matrix is not None:
        rgb = apply_color_matrix(rgb, matrix)
    return apply_tone(np.clip(rgb, 0.0, 1.0), config.tone)


def render_mosaic(mosaic: np.ndarray, cfa: CFA | str, config: IspConfig) -> np.ndarray:
    """Render a normalized mosaic (black 0, white 1), e.g. simulated raw.

    Args:
        mosaic: ``(H, W)`` float on the normalized scale (may stray below 0 or above 1).
        cfa: its Bayer pattern.
        config: white balance and colour matrix come from it (grey-world and none when
            unset), and so does the noise level when denoising.

    Returns:
        ``(H, W, 3)`` float32 display RGB on [0, 1].
    """
    if not isinstance(config, IspConfig):
        raise InvalidInputError(f"config must be an IspConfig, got {type(config).__name__}")
    if not isinstance(mosaic, np.ndarray) or mosaic.ndim != 2:
        raise InvalidInputError(
            f"render_mosaic takes a 2-D mosaic (H, W), got {type(mosaic).__name__} "
            f"with shape {getattr(mosaic, 'shape', None)}"
        )
    return _render(mosaic, CFA.parse(cfa), config, config.white_balance, config.color_matrix, config.noise)


def render(frame: RawFrame, config: IspConfig, profile: SensorProfile | None = None) -> np.ndarray:
    """Render a RawFrame to display sRGB.

    White balance, colour matrix and noise come from ``config`` where set, else from
    ``profile`` (its noise at the frame's ISO or analogue gain), else white balance is
    grey-world, the colour matrix identity, and denoising refuses to guess the noise.

    Returns:
        ``(H, W, 3)`` float32 display RGB on [0, 1].
    """
    if not isinstance(frame, RawFrame):
        raise InvalidInputError(f"render takes a RawFrame, got {type(frame).__name__}")
    if not isinstance(config, IspConfig):
        raise InvalidInputError(f"config must be an IspConfig, got {type(config).__name__}")
    gains, matrix, noise = config.white_balance, config.color_matrix, config.noise
    if profile is not None:
        gains = gains if gains is not None else profile.white_balance
        matrix = matrix if matrix is not None else profile.color_matrix
        if noise is None and config.denoise != "none":
            noise = profile.normalized_noise(profile.gain_for_frame(frame))
    if frame.digital_gain != 1.0:
        config = dataclasses.replace(config, digital_gain=config.digital_gain * frame.digital_gain)
    return _render(frame.normalized(), frame.cfa, config, gains, matrix, noise)
