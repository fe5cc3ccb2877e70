"""Raspberry Pi cameras through picamera2 (libcamera): raw Bayer frames with their metadata.

The adapter is thin; the byte and metadata logic is in pure functions tested on bytes:

- :func:`select_sensor_mode` / :func:`raw_request`: ask for the raw stream in an UNPACKED
  format (``SRGGB12``, not ``SRGGB12_CSI2P``). On a Raspberry Pi 5 the PiSP front end
  cannot write CSI-2 packed raw and silently substitutes its lossy ``*_PISP_COMP1``
  compression for a packed request; unpacked requests are honoured on the Pi 4 and Pi 5.
- :func:`configured_layout`: read back what libcamera configured. A compressed format is
  refused. A Pi 5 reports unpacked raw as a 16-bit format (``SRGGB16``) with the sensor's
  n bits in the top of each word, zero below ("zero padding at the least significant
  end", Raspberry Pi camera documentation), decoded as ``UNPACKED_MSB`` with
  ``msb_shift = 16 - n``; a Pi 4 reports the sensor's own depth, LSB aligned.
- :func:`frame_from_capture`: pixels and metadata of ONE request: ``ExposureTime`` (us),
  ``AnalogueGain``, ``SensorBlackLevels`` (order R, Gr, Gb, B, on a 16-bit scale, so
  scaled by ``2**n / 65536`` as rpicam-apps' DNG writer does) and ``SensorTimestamp`` (ns).

Requests are returned to libcamera by a context manager as soon as their buffer is copied,
so a slow consumer cannot starve the camera of buffers.

Auto-exposure: without a fixed exposure, libcamera's own AGC runs (and each frame records
what it applied). Given an :class:`~edge_isp.runtime.exposure.ExposureController` instead,
libcamera's AGC is turned off and the controller sets ``ExposureTime`` and ``AnalogueGain``
(exposure first, within the controller's frame-time limit; :func:`exposure_controls`); the
frame duration is allowed to stretch to that limit; each frame keeps the exposure and gain
its own request reports and gets the controller's digital gain.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import inspect
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from edge_isp.errors import InvalidInputError, RawFormatError, require
from edge_isp.runtime.exposure import ExposureController, ExposureSetting
from edge_isp.runtime.interfaces import CameraSource, SourceError
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.rawformat import Packing, RawFormat, decode, parse_format

log = logging.getLogger(__name__)

# libcamera's default black level, 16-bit scale, when a request carries none (rpicam-apps' choice).
DEFAULT_BLACK_16BIT = 4096.0
DEFAULT_SIZE = (640, 480)
# Raspberry Pi's documented route; picamera2 from PyPI lacks libcamera's bindings.
PICAMERA2_HINT = (
    "sudo apt install python3-picamera2, in a virtual environment created with --system-site-packages "
    "so it sees that package (deploy/install-pi.sh sets up both)"
)
_PACKED_OR_COMPRESSED = re.compile(r"_(CSI2P|PISP_COMP\d)$", re.IGNORECASE)


class RawLayout(NamedTuple):
    """How to decode the configured raw stream: format, size, stride and bit alignment."""

    fmt: RawFormat
    width: int
    height: int
    stride: int
    msb_shift: int | None


def unpacked_name(name: str, bit_depth: int | None = None) -> str:
    """The unpacked libcamera name of a raw format: ``SRGGB10_CSI2P`` -> ``SRGGB10``;
    ``RGGB_PISP_COMP1`` (no depth in the name) -> ``SRGGB{bit_depth}``."""
    text = str(name).strip().upper()
    match = re.fullmatch(r"(RGGB|BGGR|GRBG|GBRG)_PISP_COMP\d", text)
    if match:
        if bit_depth is None:
            raise InvalidInputError(f"{name} does not name its bit depth; give the sensor mode's bit_depth")
        return f"S{match.group(1)}{int(bit_depth)}"
    return _PACKED_OR_COMPRESSED.sub("", text)


def select_sensor_mode(
    modes: Sequence[Mapping[str, Any]], size: tuple[int, int] | None = None, bit_depth: int | None = None
) -> dict[str, Any]:
    """Pick a sensor mode from ``Picamera2.sensor_modes``.

    Among the modes of the requested ``bit_depth`` (default: the deepest), the smallest
    that covers ``size`` (default 640x480: binned modes keep the full field of view at a
    high frame rate); if none covers it, the largest.
    """
    raw = [dict(m) for m in modes if "bit_depth" in m and "size" in m]
    if not raw:
        raise InvalidInputError(f"the camera reports no raw sensor modes (got {list(modes)!r}); is it a Bayer sensor?")
    depths = sorted({int(m["bit_depth"]) for m in raw})
    depth = depths[-1] if bit_depth is None else int(bit_depth)
    candidates = [m for m in raw if int(m["bit_depth"]) == depth]
    if not candidates:
        raise InvalidInputError(f"the sensor has no {depth}-bit mode; it offers {', '.join(map(str, depths))} bits")
    want_w, want_h = size or DEFAULT_SIZE
    area = lambda m: m["size"][0] * m["size"][1]  # noqa: E731
    covering = [m for m in candidates if m["size"][0] >= want_w and m["size"][1] >= want_h]
    return min(covering, key=area) if covering else max(candidates, key=area)


def raw_request(mode: Mapping[str, Any]) -> dict[str, Any]:
    """The raw stream to request for a sensor mode: its size, in the unpacked format."""
    name = mode.get("unpacked") or unpacked_name(str(mode["format"]), mode.get("bit_depth"))
    return {"format": unpacked_name(str(name)), "size": tuple(int(v) for v in mode["size"])}


def configured_layout(
    raw_config: Mapping[str, Any], sensor_bit_depth: int | None = None, msb_shift: int | None = None
) -> RawLayout:
    """Decode parameters from ``Picamera2.camera_configuration()["raw"]`` (its ``format``,
    ``size`` and ``stride``), see the module docstring.

    Raises:
        RawFormatError: a compressed (lossy) format or an unknown one.
    """
    name = str(raw_config["format"])
    if "PISP_COMP" in name.upper():
        raise RawFormatError(
            f"the camera delivered raw format {name}, the Raspberry Pi 5's lossy compressed raw, instead of an "
            "unpacked one; request the raw stream as e.g. 'SRGGB12' (not 'SRGGB12_CSI2P', which a Pi 5 replaces "
            "by PISP_COMP1) and check libcamera is up to date"
        )
    fmt = parse_format(name)
    width, height = (int(v) for v in raw_config["size"])
    stride = int(raw_config.get("stride") or fmt.line_bytes(width))
    bits = int(sensor_bit_depth) if sensor_bit_depth else fmt.bit_depth
    if fmt.packing is Packing.UNPACKED_LSB and fmt.bit_depth == 16 and bits < 16:
        # Pi 5: the sensor's bits at the top of the word.
        shift = 16 - bits if msb_shift is None else msb_shift
        return RawLayout(RawFormat(fmt.cfa, bits, Packing.UNPACKED_MSB), width, height, stride, shift)
    if msb_shift not in (None, 0):
        return RawLayout(RawFormat(fmt.cfa, fmt.bit_depth, Packing.UNPACKED_MSB), width, height, stride, msb_shift)
    return RawLayout(fmt, width, height, stride, None)


def black_levels(metadata: Mapping[str, Any], bit_depth: int) -> tuple[float, float, float, float]:
    """``SensorBlackLevels`` (R, Gr, Gb, B on a 16-bit scale) in DN of ``bit_depth`` bits;
    libcamera's default 4096/65536 of full scale where the request has none."""
    levels = metadata.get("SensorBlackLevels")
    if levels is None:
        levels = (DEFAULT_BLACK_16BIT,) * 4
    values = [float(v) for v in levels]
    if len(values) != 4 or not all(math.isfinite(v) and v >= 0 for v in values):
        raise InvalidInputError(f"SensorBlackLevels must be 4 numbers >= 0 (R, Gr, Gb, B), got {levels!r}")
    scale = 2.0**bit_depth / 65536.0
    return tuple(v * scale for v in values)  # type: ignore[return-value]


def frame_from_capture(
    buffer: bytes | np.ndarray, layout: RawLayout, metadata: Mapping[str, Any], sensor: str = "picamera2"
) -> RawFrame:
    """A RawFrame from one request's raw buffer and that same request's metadata."""
    data = decode(buffer, layout.width, layout.height, layout.fmt, layout.stride, layout.msb_shift, allow_trailing=True)
    bits = layout.fmt.bit_depth
    stamp = metadata.get("SensorTimestamp")
    return RawFrame(
        data=data,
        cfa=layout.fmt.cfa,
        bit_depth=bits,
        black_level=black_levels(metadata, bits),
        white_level=float(2**bits - 1),
        analogue_gain=float(metadata.get("AnalogueGain", 1.0)),
        exposure_time_s=float(metadata.get("ExposureTime", 0)) * 1e-6,
        timestamp_s=None if stamp is None else int(stamp) * 1e-9,
        sensor=sensor,
    )


def manual_controls(exposure_time_s: float | None, analogue_gain: float | None) -> dict[str, Any]:
    """libcamera controls for a fixed exposure and/or gain (auto-exposure off); {} for auto."""
    if exposure_time_s is None and analogue_gain is None:
        return {}
    out: dict[str, Any] = {"AeEnable": False}
    if exposure_time_s is not None:
        if not (math.isfinite(exposure_time_s) and exposure_time_s > 0):
            raise InvalidInputError(f"exposure_time_s must be a positive number of seconds, got {exposure_time_s}")
        out["ExposureTime"] = max(1, round(exposure_time_s * 1e6))
    if analogue_gain is not None:
        if not (math.isfinite(analogue_gain) and analogue_gain >= 1):
            raise InvalidInputError(f"analogue_gain must be a number >= 1, got {analogue_gain}")
        out["AnalogueGain"] = float(analogue_gain)
    return out


def exposure_controls(setting: ExposureSetting) -> dict[str, Any]:
    """libcamera controls for an auto-exposure controller's sensor setting (AGC off)."""
    return {
        "AeEnable": False,
        "ExposureTime": max(1, round(setting.exposure_time_s * 1e6)),
        "AnalogueGain": float(setting.analogue_gain),
    }


def control_range(camera_controls: Mapping[str, Any], name: str, scale: float = 1.0) -> tuple[float, float] | None:
    """``(min, max)`` of a control from ``Picamera2.camera_controls`` (``{name: (min, max,
    default)}``) times ``scale``; None where the camera does not list it or lists no range."""
    entry = camera_controls.get(name)
    try:
        low, high = float(entry[0]) * scale, float(entry[1]) * scale
    except (TypeError, IndexError, ValueError):
        return None
    return (low, high) if 0 < low <= high else None


@contextlib.contextmanager
def released(request: Any) -> Iterator[Any]:
    """Hand a completed request back to libcamera when the block ends, whatever happens."""
    try:
        yield request
    finally:
        request.release()


class Picamera2Source(CameraSource):
    """A Raspberry Pi camera's raw stream (see the module docstring).

    Args:
        camera: camera index (0 = the first).
        size: wanted raw size (the sensor mode covering it is used), default 640x480.
        bit_depth: sensor mode bit depth (default: the deepest the sensor offers).
        raw_format: an explicit raw format (e.g. ``SRGGB10``) instead of choosing a mode.
        fps: fixed frame rate (frame duration limits); None leaves libcamera's default.
        exposure_time_s, analogue_gain: fixed exposure and/or gain (auto-exposure off).
        msb_shift: override the bit alignment (see :func:`configured_layout`).
        buffer_count: raw buffers libcamera cycles through.
        auto_exposure: run this controller instead of libcamera's AGC (see the module docstring).

    Live controls: ``exposure_time_s``, ``analogue_gain`` (a number, or None for auto).
    """

    name = "picamera2"

    def __init__(
        self,
        camera: int = 0,
        *,
        size: tuple[int, int] | None = None,
        bit_depth: int | None = None,
        raw_format: str | None = None,
        fps: float | None = None,
        exposure_time_s: float | None = None,
        analogue_gain: float | None = None,
        msb_shift: int | None = None,
        buffer_count: int = 4,
        auto_exposure: ExposureController | None = None,
    ) -> None:
        super().__init__()
        if auto_exposure is not None and (exposure_time_s is not None or analogue_gain is not None):
            raise InvalidInputError("give a fixed exposure_time_s/analogue_gain or auto_exposure, not both")
        self.auto_exposure = auto_exposure
        self.camera, self.size, self.bit_depth = int(camera), size, bit_depth
        self.raw_format = None if raw_format is None else unpacked_name(raw_format)
        self.fps, self.msb_shift, self.buffer_count = fps, msb_shift, int(buffer_count)
        self._manual = manual_controls(exposure_time_s, analogue_gain)
        self._settings = {"exposure_time_s": exposure_time_s, "analogue_gain": analogue_gain}
        self._cam: Any = None
        self._pending: Any = None
        self.layout: RawLayout | None = None
        self.sensor = "picamera2"
        self.sequence = -1

    def _open(self) -> None:
        picamera2 = require("picamera2", "pi", "the Raspberry Pi camera source", how=PICAMERA2_HINT)
        try:
            cam = picamera2.Picamera2(self.camera)
        except (RuntimeError, IndexError, OSError) as exc:
            raise SourceError(f"cannot open Raspberry Pi camera {self.camera}: {exc}") from exc
        try:
            self._configure(cam)
            cam.start()
        except (RuntimeError, OSError) as exc:
            cam.close()
            raise SourceError(f"cannot start Raspberry Pi camera {self.camera}: {exc}") from exc
        except BaseException:
            cam.close()
            raise
        self._cam, self.sequence = cam, -1

    def _configure(self, cam: Any) -> None:
        mode: dict[str, Any] = {}
        if self.raw_format is None:
            mode = select_sensor_mode(cam.sensor_modes, self.size, self.bit_depth)
            request = raw_request(mode)
        else:
            request = {"format": self.raw_format, "size": tuple(self.size or DEFAULT_SIZE)}
        controls = dict(self._manual)
        if self.fps is not None:
            frame_us = round(1e6 / float(self.fps))
            controls["FrameDurationLimits"] = (frame_us, frame_us)
        if self.auto_exposure is not None:
            controls.update(self._start_auto_exposure(cam))
        width, height = request["size"]
        kwargs: dict[str, Any] = {
            "main": {"size": (min(640, width), min(480, height)), "format": "YUV420"},
            "raw": request, "buffer_count": self.buffer_count, "controls": controls,
        }  # fmt: skip
        if mode and "sensor" in inspect.signature(cam.create_video_configuration).parameters:
            kwargs["sensor"] = {"output_size": request["size"], "bit_depth": int(mode["bit_depth"])}
        cam.configure(cam.create_video_configuration(**kwargs))
        config = cam.camera_configuration()
        sensor_bits = (config.get("sensor") or {}).get("bit_depth") or mode.get("bit_depth")
        self.layout = configured_layout(config["raw"], sensor_bits, self.msb_shift)
        self.sensor = str(cam.camera_properties.get("Model", "picamera2"))
        log.info("picamera2: raw stream %s (%s), sensor %s", config["raw"]["format"], self.layout.fmt, self.sensor)

    def _start_auto_exposure(self, cam: Any) -> dict[str, Any]:
        ae = self.auto_exposure
        camera_controls = getattr(cam, "camera_controls", {}) or {}
        exposure_s = control_range(camera_controls, "ExposureTime", 1e-6)
        if self.fps is not None:  # a fixed frame rate caps the exposure at the frame time
            low, high = exposure_s or (ae.limits.min_exposure_s, ae.limits.max_exposure_s)
            exposure_s = (low, min(high, 1.0 / float(self.fps)))
        ae.fit_to(exposure_s, control_range(camera_controls, "AnalogueGain"))
        controls = exposure_controls(ae.request)
        if self.fps is None:  # let the frame time stretch to the exposure limit, not beyond
            frames = control_range(camera_controls, "FrameDurationLimits")
            shortest_us = round(frames[0]) if frames else 1
            controls["FrameDurationLimits"] = (shortest_us, max(shortest_us, round(ae.limits.max_exposure_s * 1e6)))
        return controls

    def _apply_exposure(self, setting: ExposureSetting) -> None:
        """The device seam of auto-exposure."""
        if self._cam is not None:
            self._cam.set_controls(exposure_controls(setting))

    def _close(self) -> None:
        cam, pending, self._cam, self._pending = self._cam, self._pending, None, None
        if pending is not None:
            with contextlib.suppress(Exception):
                pending.get_result(timeout=0).release()
        if cam is not None:
            with contextlib.suppress(Exception):
                cam.stop()
            cam.close()

    def _read(self, timeout_s: float | None) -> RawFrame:
        # A capture that timed out stays pending and is collected by the next read, so its
        # request is released rather than leaked.
        if self._cam is None:
            raise SourceError(f"Raspberry Pi camera {self.camera} was closed")
        job = self._pending or self._cam.capture_request(wait=False)
        self._pending = job
        try:
            request = job.get_result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            raise SourceError(f"Raspberry Pi camera {self.camera}: no frame within {timeout_s} s") from None
        except (RuntimeError, OSError) as exc:
            self._pending = None
            raise SourceError(f"Raspberry Pi camera {self.camera} failed: {exc}") from exc
        self._pending = None
        with released(request):
            buffer = request.make_buffer("raw")
            metadata = request.get_metadata()
        self.sequence += 1
        frame = frame_from_capture(buffer, self.layout, metadata, self.sensor)
        if self.auto_exposure is not None:
            frame = self.auto_exposure.expose(frame, self._apply_exposure)
        return frame

    def controls(self) -> dict[str, Any]:
        return dict(self._settings)

    def set_control(self, name: str, value: Any) -> None:
        if name not in self._settings:
            super().set_control(name, value)
        if self.auto_exposure is not None:
            raise InvalidInputError(
                f"auto-exposure sets {name} on this camera; open it without auto_exposure to set it"
            )
        try:
            number = None if value is None else float(value)
        except (TypeError, ValueError, OverflowError):
            raise InvalidInputError(f"control {name!r} takes a number or null (automatic), got {value!r}") from None
        settings = {**self._settings, name: number}
        controls = manual_controls(settings["exposure_time_s"], settings["analogue_gain"]) or {"AeEnable": True}
        if self._cam is not None:
            self._cam.set_controls(controls)
        self._settings, self._manual = settings, controls
