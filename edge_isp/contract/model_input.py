"""The model input: RawFrame -> ``raw`` (1, 4, H/2, W/2) and ``noise`` (1, 2). numpy and OpenCV.

The one implementation of the model-input contract (docs/ARCHITECTURE.md): the live runtime,
the INT8 calibration feed (:mod:`edge_isp.export.calibration`) and the benchmarks all call
:class:`Preprocessor`, and :func:`live_preprocessor` gives the deployment's settings. The
steps run in the packed domain, where they are cheapest and where resampling never mixes
colours:

1. Crop the frame's packed planes (R, Gr, Gb, B) to the model's aspect ratio, centred, on
   whole 2x2 tiles, then black level per plane, divide by (white - black) per plane.
2. Digital gain: the frame's own (the simulator's, an auto-exposure's), or for a camera
   whose frames carry 1.0 an :class:`AutoExposure` gain when one is given.
3. Resize the planes DOWN to the model's input (``INTER_AREA``). A frame is never upscaled
   to a model: upscaling adds no detail, blurs what the network learnt to see sharp and gives
   it noise it never met; a crop smaller than the model's input is refused
   (:class:`UpscaleError`) with what to do instead (a model exported at that size, or a
   dynamic-size export, which runs at the frame's own size).
4. Noise ``(a, sigma)`` on that scale from the sensor profile at the frame's analogue gain
   (``SensorProfile.normalized_noise(gain, digital_gain)``). An area resize makes each output
   pixel a weighted mean of input pixels, weights ``w_i`` summing to 1, so the variance
   ``a * x + sigma**2`` of flat independent noise becomes ``sum(w_i**2)`` times itself: both
   ``a`` and ``sigma**2`` are multiplied by that factor averaged over the output
   (:func:`area_variance_factor`, read off OpenCV's own weights). It is ``1 / n`` for a whole
   ratio ``n`` of pixels, and less than that for a fractional one (a 1.25x shrink per side
   keeps 0.6 of the variance per side, not 0.8).
5. With the model's trained noise range (metadata ``edge_isp.noise_range``), a level outside
   it is clamped to the nearest trained one, each of ``a`` and ``sigma`` clipped to its range:
   a network has only learnt the levels it was shown, and fed a level far below them (a
   daylight frame to a night model) its learned picture can collapse to black, while at the
   nearest trained level it denoises a little more than the frame needs. The input records
   that it was clamped (the runtime warns and counts it).

The crop and scale are kept in a :class:`Geometry` so boxes in model pixels map back to the
frame.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Sequence

import cv2
import numpy as np

from edge_isp.contract.metadata import NoiseRange
from edge_isp.contract.sizes import check_size
from edge_isp.errors import InvalidInputError
from edge_isp.sensor.cfa import pack
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Where the model's input came from: a crop of the frame, scaled to the input size.

    Attributes:
        frame_size: ``(width, height)`` of the frame in pixels.
        crop: ``(x0, y0, x1, y1)`` of the frame region the model saw, frame pixels (even).
        input_size: ``(width, height)`` of the model's full-resolution input.
    """

    frame_size: tuple[int, int]
    crop: tuple[int, int, int, int]
    input_size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """Frame pixels per model-input pixel, (x, y)."""
        x0, y0, x1, y1 = self.crop
        return (x1 - x0) / self.input_size[0], (y1 - y0) / self.input_size[1]

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes ``(N, 4)`` xyxy in model-input pixels -> frame pixels (float32)."""
        sx, sy = self.scale
        factor = np.array([sx, sy, sx, sy], dtype=np.float32)
        offset = np.array(self.crop[:2] * 2, dtype=np.float32)
        return np.asarray(boxes, dtype=np.float32).reshape(-1, 4) * factor + offset


@dataclasses.dataclass(frozen=True)
class ModelInput:
    """One frame ready for a backend.

    Attributes:
        raw: ``(1, 4, H/2, W/2)`` float32, normalized (black 0, white 1) times ``digital_gain``.
        noise: ``(1, 2)`` float32 ``(a, sigma)`` with ``var(raw) = a * raw + sigma**2``.
        geometry: the crop and scale from the frame to the model input.
        digital_gain: the gain applied (the frame's or the auto-exposure's).
        measured_noise: ``(a, sigma)`` before clamping (step 5), equal to ``noise`` when
            nothing was clamped.
        clamped: whether ``noise`` was clamped to the model's trained range.
    """

    raw: np.ndarray
    noise: np.ndarray
    geometry: Geometry
    digital_gain: float
    measured_noise: tuple[float, float] = (0.0, 0.0)
    clamped: bool = False

    def feed(self) -> dict[str, np.ndarray]:
        return {"raw": self.raw, "noise": self.noise}


class UpscaleError(InvalidInputError):
    """The model's input is bigger than the part of the frame it would see: it would need an
    upscaled frame, which the runtime never makes (module docstring, step 3)."""


@functools.lru_cache(maxsize=64)
def _axis_variance_factor(size_in: int, size_out: int) -> float:
    # Row i of the resized identity holds the weights input pixel i gives each output pixel.
    weights = cv2.resize(np.eye(size_in, dtype=np.float64), (size_out, size_in), interpolation=cv2.INTER_AREA)
    return float((weights**2).sum(axis=0).mean())


def area_variance_factor(size_in: tuple[int, int], size_out: tuple[int, int]) -> float:
    """How much of the variance of flat, independent pixel noise an ``INTER_AREA`` resize from
    ``size_in`` to ``size_out`` (each ``(width, height)``, not larger than ``size_in``) keeps,
    averaged over the output: the product over the two axes of the mean ``sum(w_i**2)`` of
    OpenCV's per-axis weights (its area resize is separable). 1 for no resize."""
    (w_in, h_in), (w_out, h_out) = size_in, size_out
    if w_out > w_in or h_out > h_in:
        raise InvalidInputError(f"an area resize only shrinks; {w_in}x{h_in} -> {w_out}x{h_out} would grow")
    x = 1.0 if w_in == w_out else _axis_variance_factor(w_in, w_out)
    y = 1.0 if h_in == h_out else _axis_variance_factor(h_in, h_out)
    return x * y


class AutoExposure:
    """A digital gain that brings the scene's mean to ``target`` (mid-grey), for cameras
    whose frames carry no exposure decision (digital gain 1).

    The frame mean (normalized, before gain, clipped to [0, 1]) is smoothed with an
    exponential moving average, so one bright flash does not pump the picture; the gain is
    ``target / mean`` clipped to ``[min_gain, max_gain]``. The default target 0.18 is where
    a typical scene's mean lands when white is at 1.0, which is how the models are trained.
    """

    def __init__(
        self, target: float = 0.18, smoothing: float = 0.8, min_gain: float = 0.25, max_gain: float = 64.0
    ) -> None:
        if not 0 < target < 1:
            raise InvalidInputError(f"auto-exposure target must be in (0, 1), got {target}")
        if not 0 <= smoothing < 1:
            raise InvalidInputError(f"auto-exposure smoothing must be in [0, 1), got {smoothing}")
        if not 0 < min_gain <= max_gain:
            raise InvalidInputError(f"auto-exposure needs 0 < min_gain <= max_gain, got {min_gain}, {max_gain}")
        self.target, self.smoothing = target, smoothing
        self.min_gain, self.max_gain = min_gain, max_gain
        self._mean: float | None = None

    def update(self, planes: np.ndarray) -> float:
        """Fold in a frame's normalized planes ``(4, h, w)`` (before gain); return the gain."""
        # Every 4th sample in each direction is plenty for a mean, and 16x cheaper.
        mean = float(np.clip(planes[:, ::4, ::4], 0.0, 1.0).mean())
        self._mean = mean if self._mean is None else self.smoothing * self._mean + (1 - self.smoothing) * mean
        return self.gain

    @property
    def gain(self) -> float:
        if self._mean is None:
            return 1.0
        return float(np.clip(self.target / max(self._mean, 1e-6), self.min_gain, self.max_gain))


def _centre_crop(frame_size: tuple[int, int], aspect: float) -> tuple[int, int, int, int]:
    """The largest centred crop of ``aspect`` (w/h) on whole 2x2 tiles: (x0, y0, x1, y1)."""
    width, height = frame_size
    tiles_w, tiles_h = width // 2, height // 2
    if tiles_w / tiles_h > aspect:
        crop_h = tiles_h
        crop_w = min(tiles_w, max(1, round(tiles_h * aspect)))
    else:
        crop_w = tiles_w
        crop_h = min(tiles_h, max(1, round(tiles_w / aspect)))
    x0, y0 = (tiles_w - crop_w) // 2, (tiles_h - crop_h) // 2
    return 2 * x0, 2 * y0, 2 * (x0 + crop_w), 2 * (y0 + crop_h)


class Preprocessor:
    """Turns RawFrames into :class:`ModelInput` for one model and one sensor profile.

    Args:
        profile: the sensor's profile (its noise model gives ``noise``).
        input_size: the model's full-resolution input ``(width, height)``, even; None
            runs each frame at its own size, centre-cropped to a multiple of ``multiple``.
        fit: ``"crop"`` keeps the aspect ratio (a centred crop, then resize); ``"stretch"``
            resizes the whole frame.
        auto_exposure: applied to frames whose digital gain is 1.0; None for no auto-exposure.
        multiple: with ``input_size`` None, each side is cut down to a multiple of this
            (a dynamic-size model's ``size_multiple``: 32 for the detectors' stride), by a
            centred crop of fewer than ``multiple`` pixels per side.
        noise_range: the model's trained noise levels; a frame's level outside them is
            clamped to the nearest (step 5 of the module docstring). None: never clamped.
    """

    def __init__(
        self,
        profile: SensorProfile,
        input_size: tuple[int, int] | None = None,
        fit: str = "crop",
        auto_exposure: AutoExposure | None = None,
        multiple: int = 32,
        noise_range: NoiseRange | None = None,
    ) -> None:
        if not isinstance(profile, SensorProfile):
            raise InvalidInputError(f"profile must be a SensorProfile, got {type(profile).__name__}")
        if fit not in ("crop", "stretch"):
            raise InvalidInputError(f"fit must be 'crop' or 'stretch', got {fit!r}")
        if input_size is not None:
            input_size = check_size(input_size, "input_size")
        if multiple < 2 or multiple % 2:
            raise InvalidInputError(f"multiple must be an even number >= 2, got {multiple}")
        self.profile, self.input_size, self.fit = profile, input_size, fit
        self.auto_exposure, self.multiple = auto_exposure, multiple
        self.noise_range = noise_range
        self._warned_levels = False

    def geometry(self, frame_size: tuple[int, int]) -> Geometry:
        """The crop and input size used for frames of ``frame_size`` (width, height)."""
        width, height = frame_size
        if self.input_size is None:
            size = (width - width % self.multiple, height - height % self.multiple)
            if min(size) == 0:
                raise InvalidInputError(
                    f"a {width}x{height} frame is smaller than the model's size multiple {self.multiple}"
                )
            # Centred on whole 2x2 tiles, so the crop keeps the frame's CFA phase.
            x0, y0 = 2 * ((width - size[0]) // 4), 2 * ((height - size[1]) // 4)
            return Geometry(frame_size, (x0, y0, x0 + size[0], y0 + size[1]), size)
        if self.fit == "stretch":
            geometry = Geometry(frame_size, (0, 0, width, height), self.input_size)
        else:
            aspect = self.input_size[0] / self.input_size[1]
            geometry = Geometry(frame_size, _centre_crop(frame_size, aspect), self.input_size)
        x0, y0, x1, y1 = geometry.crop
        if x1 - x0 < self.input_size[0] or y1 - y0 < self.input_size[1]:
            raise UpscaleError(
                f"a {width}x{height} frame is too small for this model's {self.input_size[0]}x{self.input_size[1]} "
                f"input: its {x1 - x0}x{y1 - y0} part at the model's aspect would have to be upscaled, which edge-isp "
                "never does (it adds no detail and gives the network blur and noise it was not trained on). Run a "
                "model exported at the frame's size or smaller (edge-isp export onnx CHECKPOINT --input-size WxH), "
                "or a dynamic-size export (--dynamic-size), which runs at the frame's own size; with a dynamic-size "
                "model, give an --input-size no bigger than the frame, or none"
            )
        return geometry

    def __call__(self, frame: RawFrame) -> ModelInput:
        if not isinstance(frame, RawFrame):
            raise InvalidInputError(f"the preprocessor takes a RawFrame, got {type(frame).__name__}")
        self._check_levels(frame)
        geometry = self.geometry((frame.width, frame.height))
        x0, y0, x1, y1 = geometry.crop
        planes = pack(frame.data[y0:y1, x0:x1], frame.cfa).astype(np.float32)
        black = np.asarray(frame.black_level, dtype=np.float32)[:, None, None]
        planes -= black
        planes /= np.float32(frame.white_level) - black
        gain = frame.digital_gain
        if self.auto_exposure is not None and gain == 1.0:
            gain = self.auto_exposure.update(planes)
        if gain != 1.0:
            planes *= np.float32(gain)
        out_w, out_h = geometry.input_size[0] // 2, geometry.input_size[1] // 2
        a, sigma = self.profile.normalized_noise(self.profile.gain_for_frame(frame), gain)
        if planes.shape[1:] != (out_h, out_w):
            kept = area_variance_factor((planes.shape[2], planes.shape[1]), (out_w, out_h))
            resized = cv2.resize(planes.transpose(1, 2, 0), (out_w, out_h), interpolation=cv2.INTER_AREA)
            planes = resized.transpose(2, 0, 1)
            a, sigma = a * kept, sigma * math.sqrt(kept)
        raw = np.ascontiguousarray(planes[None], dtype=np.float32)
        measured = (float(a), float(sigma))
        clamped = self.noise_range is not None and not self.noise_range.contains(*measured)
        if clamped:
            a, sigma = self.noise_range.clamp(*measured)
        noise = np.array([[a, sigma]], dtype=np.float32)
        return ModelInput(raw, noise, geometry, float(gain), measured, clamped)

    def _check_levels(self, frame: RawFrame) -> None:
        # A frame on another scale than its profile (a 16-bit container, another sensor)
        # makes the noise level wrong by that ratio: say so once rather than run blind.
        if not self._warned_levels and abs(frame.white_level - self.profile.white_level) > 0.5:
            self._warned_levels = True
            log.warning(
                "frames have white level %g but the profile %r says %g: the noise level fed to the model "
                "assumes the profile's scale (is this the right profile?)",
                frame.white_level,
                self.profile.name,
                self.profile.white_level,
            )


def live_preprocessor(
    profile: SensorProfile,
    input_size: tuple[int, int] | None,
    auto_exposure: bool = True,
    noise_range: NoiseRange | None = None,
    multiple: int = 32,
) -> Preprocessor:
    """The preprocessing of a deployment: crop to the model's aspect, area resize, for a
    camera (frames with digital gain 1) the default :class:`AutoExposure` (up to 64x), and
    the noise level clamped to the model's trained ``noise_range``; with ``input_size`` None (a
    dynamic-size model) each frame runs at its own size cut to ``multiple``.

    ``edge-isp run`` builds its preprocessor here, and so does the INT8 calibration feed, so
    INT8 is calibrated on the inputs the deployed model meets.
    """
    exposure = AutoExposure() if auto_exposure else None
    return Preprocessor(profile, input_size, auto_exposure=exposure, multiple=multiple, noise_range=noise_range)


def model_input_size(
    raw_shape: Sequence[int | None],
    override: tuple[int, int] | None = None,
    multiple: int | None = None,
) -> tuple[int, int] | None:
    """The full-resolution input ``(width, height)`` to run a model at.

    Args:
        raw_shape: the backend's ``raw`` input shape ``(B, 4, H/2, W/2)``, None for dynamic axes.
        override: what the user asked for (``--input-size``), if anything.
        multiple: a dynamic-size model's ``edge_isp.size_multiple``; an ``override`` must be a
            multiple of it.

    A model with fixed spatial axes runs at exactly that size (an ``override`` that differs is
    refused). One with dynamic axes runs at ``override``, else at None: each frame at its own
    size, cut to ``multiple`` by the preprocessing (:class:`Preprocessor`); never at the size
    it was exported at (its ``edge_isp.input_size``), which would crop or resize every frame
    for no reason.
    """
    if len(raw_shape) != 4 or raw_shape[1] not in (4, None):
        raise InvalidInputError(f"a model's 'raw' input must be (B, 4, H/2, W/2), got {tuple(raw_shape)}")
    h, w = raw_shape[2], raw_shape[3]
    if h is not None and w is not None:
        fixed = (2 * int(w), 2 * int(h))
        if override is not None and tuple(override) != fixed:
            raise InvalidInputError(
                f"this model takes {fixed[0]}x{fixed[1]} input only (fixed in the file), "
                f"got an input size of {override[0]}x{override[1]}; export it at that size, or with "
                "--dynamic-size to run it at any size"
            )
        return fixed
    if override is not None:
        if multiple is not None and (override[0] % multiple or override[1] % multiple):
            down = (
                max(multiple, override[0] - override[0] % multiple),
                max(multiple, override[1] - override[1] % multiple),
            )
            raise InvalidInputError(
                f"this model runs at sizes that are multiples of {multiple} (metadata edge_isp.size_multiple), got "
                f"an input size of {override[0]}x{override[1]}; try {down[0]}x{down[1]}"
            )
        return tuple(override)
    return None
