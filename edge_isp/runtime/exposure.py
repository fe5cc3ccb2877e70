"""Sensor auto-exposure for camera sources: exposure time first, then analogue gain, then
digital gain.

A night camera gets its signal from the sensor: a longer exposure collects more photons, and
analogue gain amplifies them before the read noise is added; a digital gain only scales what
was read, noise included. So the exposure a scene needs (``exposure_time_s * analogue_gain *
digital_gain``, the *total*) is split in that order (:func:`split_exposure`): the exposure time
up to the frame-time limit the user sets, then the analogue gain up to the sensor's maximum,
and only the rest as digital gain.

:class:`ExposureController` is pure: each frame it meters the frame's normalized mean
(:func:`meter`) and divides it by the sensor exposure the frame *says* it was taken with
(``frame.exposure_time_s * frame.analogue_gain``, the metadata the source recorded), which
gives the scene's brightness independently of the sensor's control latency; the new total
moves a fraction ``speed`` of the way (in log scale) towards ``target / brightness``. New
sensor settings are requested only when they change by more than ``tolerance``; the digital
gain, applied in software, takes effect on the frame at hand and so also bridges the frames
the sensor needs to apply a new setting.

Each source records per frame what was applied (``exposure_time_s``, ``analogue_gain``,
``digital_gain`` on the RawFrame); the preprocessing derives the noise level fed to the model
from ``analogue_gain`` and ``digital_gain`` through the sensor profile. V4L2 reports no
per-frame metadata, so a V4L2 source tracks when its control writes take effect with
:class:`ControlDelay`.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable

import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.sensor.cfa import per_channel_map
from edge_isp.sensor.frame import RawFrame

# A frame with no light at all (a lens cap) must not ask for an infinite exposure.
_MEAN_FLOOR = 1e-4


def _positive(value: float, name: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise InvalidInputError(f"{name} must be a positive finite number, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class ExposureSetting:
    """One exposure: sensor exposure time (s), analogue gain (1 = base), digital gain."""

    exposure_time_s: float
    analogue_gain: float
    digital_gain: float = 1.0

    @property
    def sensor_total(self) -> float:
        """Exposure time times analogue gain: what the sensor contributes, in gain-seconds."""
        return self.exposure_time_s * self.analogue_gain

    @property
    def total(self) -> float:
        """Exposure time times both gains."""
        return self.sensor_total * self.digital_gain


@dataclasses.dataclass(frozen=True)
class ExposureLimits:
    """The ranges auto-exposure may use.

    Attributes:
        max_exposure_s: the longest exposure (the frame-time limit: 1/30 s keeps 30 FPS;
            longer exposures lower the frame rate and blur motion).
        min_exposure_s: the shortest exposure the sensor takes.
        max_analogue_gain: the sensor's highest analogue gain.
        min_analogue_gain: its lowest (1 = base gain).
        max_digital_gain: the most digital gain applied after the sensor's limits.
    """

    max_exposure_s: float = 1 / 30
    min_exposure_s: float = 1e-5
    max_analogue_gain: float = 16.0
    min_analogue_gain: float = 1.0
    max_digital_gain: float = 64.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            _positive(getattr(self, field.name), field.name)
        if self.min_exposure_s > self.max_exposure_s:
            raise InvalidInputError(
                f"min_exposure_s {self.min_exposure_s} is above max_exposure_s {self.max_exposure_s}"
            )
        if self.min_analogue_gain > self.max_analogue_gain:
            raise InvalidInputError(
                f"min_analogue_gain {self.min_analogue_gain} is above max_analogue_gain {self.max_analogue_gain}"
            )
        if self.max_digital_gain < 1:
            raise InvalidInputError(f"max_digital_gain must be >= 1, got {self.max_digital_gain}")

    def within(
        self,
        exposure_s: tuple[float, float] | None = None,
        analogue_gain: tuple[float, float] | None = None,
    ) -> ExposureLimits:
        """These limits narrowed to what a device offers (its (min, max) ranges)."""
        lo_t, hi_t = exposure_s or (self.min_exposure_s, self.max_exposure_s)
        lo_g, hi_g = analogue_gain or (self.min_analogue_gain, self.max_analogue_gain)
        max_t = min(self.max_exposure_s, hi_t)
        max_g = min(self.max_analogue_gain, hi_g)
        return dataclasses.replace(
            self,
            min_exposure_s=min(max(self.min_exposure_s, lo_t), max_t),
            max_exposure_s=max_t,
            min_analogue_gain=min(max(self.min_analogue_gain, lo_g), max_g),
            max_analogue_gain=max_g,
        )


def split_exposure(total: float, limits: ExposureLimits) -> ExposureSetting:
    """The setting for ``total`` gain-seconds: exposure time first, then analogue gain, then
    digital gain, each within ``limits``. Beyond every limit the setting is the maximum; below
    the shortest exposure at the lowest gain, the minimum (a digital gain under 1 is never used:
    it cannot undo clipping)."""
    total = _positive(total, "total exposure")
    exposure = min(max(total / limits.min_analogue_gain, limits.min_exposure_s), limits.max_exposure_s)
    analogue = min(max(total / exposure, limits.min_analogue_gain), limits.max_analogue_gain)
    digital = min(max(total / (exposure * analogue), 1.0), limits.max_digital_gain)
    return ExposureSetting(exposure, analogue, digital)


def meter(frame: RawFrame, step: int | None = None) -> float:
    """The frame's mean on [0, 1] (black level off, white at 1, each sample clipped to [0, 1],
    digital gain not applied), from every ``step``-th 2x2 tile (default: about 4096 tiles)."""
    if step is None:
        step = max(1, int(math.sqrt(frame.height * frame.width / 4 / 4096)))
    if step < 1:
        raise InvalidInputError(f"the metering step must be >= 1, got {step}")
    tile = per_channel_map(frame.black_level, frame.cfa, 2, 2)
    total = 0.0
    for dy in (0, 1):
        for dx in (0, 1):
            samples = frame.data[dy :: 2 * step, dx :: 2 * step].astype(np.float32)
            black = tile[dy, dx]
            total += float(np.clip((samples - black) / (frame.white_level - black), 0.0, 1.0).mean())
    return total / 4


class ExposureController:
    """Chooses each frame's digital gain and the sensor's next exposure; see the module docstring.

    Args:
        limits: the ranges to use (narrow them to the device with :meth:`ExposureLimits.within`).
        target: the normalized mean to bring the scene to; 0.18, mid-grey with white at 1, is
            where the models' training data sits.
        speed: the fraction of the (log) error corrected per frame, in (0, 1]; below 1 a passing
            flash does not pump the picture.
        tolerance: the relative change below which the sensor is not reprogrammed.
        start: the sensor setting assumed before the first frame (default: the longest exposure
            at the lowest gain, an indoor scene's).
    """

    def __init__(
        self,
        limits: ExposureLimits | None = None,
        target: float = 0.18,
        speed: float = 0.5,
        tolerance: float = 0.03,
        start: ExposureSetting | None = None,
    ) -> None:
        self.limits = limits or ExposureLimits()
        if not 0 < target < 1:
            raise InvalidInputError(f"the auto-exposure target must be in (0, 1), got {target}")
        if not 0 < speed <= 1:
            raise InvalidInputError(f"the auto-exposure speed must be in (0, 1], got {speed}")
        if not 0 <= tolerance < 1:
            raise InvalidInputError(f"the auto-exposure tolerance must be in [0, 1), got {tolerance}")
        self.target, self.speed, self.tolerance = target, speed, tolerance
        first = start or ExposureSetting(self.limits.max_exposure_s, self.limits.min_analogue_gain)
        self.request = split_exposure(first.total, self.limits)
        self.last_mean: float | None = None

    def update(self, frame: RawFrame) -> tuple[float, ExposureSetting | None]:
        """Meter ``frame`` and return ``(digital gain for this frame, new sensor setting or None)``.

        The new sensor setting, when there is one, is for the source to apply to the device
        (its ``digital_gain`` is what frames taken with it will get once it has settled).
        """
        mean = meter(frame)
        self.last_mean = mean
        taken = frame.exposure_time_s * frame.analogue_gain
        if taken <= 0:  # the source knows nothing of its exposure: assume what was asked
            taken = self.request.sensor_total
        wanted = self.target * taken / max(mean, _MEAN_FLOOR)
        total = self.request.total * (wanted / self.request.total) ** self.speed
        new = split_exposure(total, self.limits)
        # Reprogram the sensor while its goal is more than the tolerance away, so it settles
        # within the tolerance of the goal (not of the last damped step).
        goal = split_exposure(wanted, self.limits)
        changed = abs(math.log(goal.sensor_total / self.request.sensor_total)) > math.log1p(self.tolerance)
        changed = changed and new.sensor_total != self.request.sensor_total
        if changed:
            request = new
        else:  # the sensor keeps its setting; the digital gain makes up the difference
            digital = min(max(total / self.request.sensor_total, 1.0), self.limits.max_digital_gain)
            request = dataclasses.replace(self.request, digital_gain=digital)
        self.request = request
        digital = min(max(request.total / taken, 1.0), self.limits.max_digital_gain)
        return digital, (request if changed else None)

    def expose(self, frame: RawFrame, apply: Callable[[ExposureSetting], None]) -> RawFrame:
        """One step for a source: meter ``frame``, hand a new sensor setting to ``apply`` (the
        source's device seam) and return ``frame`` with its digital gain."""
        digital, new = self.update(frame)
        if new is not None:
            apply(new)
        return dataclasses.replace(frame, digital_gain=digital)

    def fit_to(
        self, exposure_s: tuple[float, float] | None = None, analogue_gain: tuple[float, float] | None = None
    ) -> None:
        """Narrow :attr:`limits` to a device's ranges (a source calls it when it opens)."""
        self.limits = self.limits.within(exposure_s, analogue_gain)
        self.request = split_exposure(self.request.total, self.limits)


class ControlDelay:
    """When sensor settings written between frames take effect: ``delay_frames`` frames later.

    A sensor latches exposure and gain at a frame boundary and the frame then in progress is
    already exposing, so a value written after frame ``n`` arrives shows from frame
    ``n + delay_frames`` on (2 for most CSI-2 sensors' exposure; 1 at the soonest). V4L2 reports no per-frame
    metadata, so the source records ``(sequence, value)`` pairs here and asks, per frame,
    which value that frame was taken with.
    """

    def __init__(self, delay_frames: int, initial: ExposureSetting) -> None:
        if delay_frames < 1:
            raise InvalidInputError(f"the control delay must be >= 1 frame, got {delay_frames}")
        self.delay_frames = int(delay_frames)
        self._changes: collections.deque[tuple[int, ExposureSetting]] = collections.deque([(-(2**62), initial)])

    def written(self, after_sequence: int, value: ExposureSetting) -> None:
        """A value written after frame ``after_sequence`` was read."""
        self._changes.append((after_sequence + self.delay_frames, value))

    def at(self, sequence: int) -> ExposureSetting:
        """The value frame ``sequence`` was taken with."""
        while len(self._changes) > 1 and self._changes[1][0] <= sequence:
            self._changes.popleft()
        return self._changes[0][1]

    @property
    def latest(self) -> ExposureSetting:
        """The value written last (what the sensor will show once it has settled)."""
        return self._changes[-1][1]

    def reset(self, value: ExposureSetting | None = None) -> None:
        """The sensor restarted (frame sequence numbers start again) with ``value`` (default:
        the latest value written)."""
        self._changes = collections.deque([(-(2**62), value or self.latest)])
