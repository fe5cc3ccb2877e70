"""Raw Bayer from a V4L2 capture node: a Jetson's CSI camera (``RG10``, ``RG12``...) or any
sensor whose driver exposes Bayer formats. Capture goes through the thin ioctl/mmap layer of
:mod:`~edge_isp.runtime.sources.v4l2_device` (its docstring says why not OpenCV).

Pure, tested on bytes: :func:`frame_from_buffer` (decode with the line stride the driver
reports and the bit alignment of the SoC), :func:`gain_exposure` (metadata from V4L2
controls), :func:`sensor_levels` and :func:`suggest_msb_shift`.

Bit alignment: V4L2 documents ``RG10`` as LSB aligned, but Jetson VI units have been seen
to deliver it MSB aligned (see :mod:`edge_isp.sensor.rawformat`); no per-SoC table is
trustworthy, so give ``msb_shift`` for such a board; a bright capture decoded as LSB
raises an error whose message suggests the shift (:func:`suggest_msb_shift`).

Metadata: V4L2 has no per-frame exposure metadata, so gain and exposure are the values of
the node's controls, read at open and after every change made through this source, and
credited to frames from ``control_delay_frames`` after the change on (a sensor latches them
at a frame boundary; :class:`~edge_isp.runtime.exposure.ControlDelay`). On
Jetson (tegracam drivers) the ``gain`` control counts in 1/``gain_factor`` steps (the device
tree's ``gain_factor``, 16 for the IMX219/IMX477 boards) and ``exposure`` in microseconds.
The black level is not reported by V4L2: give it, or a sensor profile.

Auto-exposure: given an :class:`~edge_isp.runtime.exposure.ExposureController`, the source
narrows it to the node's exposure and gain ranges at open, meters every frame, writes new
exposure and gain values through the same controls (rounded to their steps) and stamps each
frame with its digital gain.
"""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError, RawFormatError
from edge_isp.runtime.exposure import ControlDelay, ExposureController, ExposureSetting
from edge_isp.runtime.interfaces import CameraSource, SourceError
from edge_isp.runtime.sources import v4l2_device
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile
from edge_isp.sensor.rawformat import Packing, RawFormat, decode, parse_format

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 2.0


def control_key(name: str) -> str:
    """A control's name as a key, as ``v4l2-ctl`` prints it: ``"Analogue Gain"`` -> ``"analogue_gain"``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def gain_exposure(
    values: Mapping[str, int],
    gain_control: str = "gain",
    gain_factor: float = 16.0,
    exposure_control: str = "exposure",
    exposure_unit_s: float = 1e-6,
) -> tuple[float | None, float | None]:
    """(analogue gain, exposure time in s) from control values keyed by :func:`control_key`;
    None for each the node does not have."""
    gain = values.get(gain_control)
    exposure = values.get(exposure_control)
    return (
        None if gain is None else float(gain) / gain_factor,
        None if exposure is None else float(exposure) * exposure_unit_s,
    )


def sensor_levels(
    bit_depth: int,
    black_level: float | Sequence[float] | None = None,
    white_level: float | None = None,
    profile: SensorProfile | None = None,
) -> tuple[tuple[float, float, float, float], float]:
    """(black per plane R, Gr, Gb, B; white) in DN of ``bit_depth`` bits.

    Explicit values win; otherwise the profile's, rescaled if the profile was measured at
    another bit depth; the white level defaults to ``2**bit_depth - 1``.

    Raises:
        InvalidInputError: no black level and no profile (V4L2 does not report one).
    """
    scale = 1.0 if profile is None else 2.0 ** (bit_depth - profile.bit_depth)
    if black_level is None:
        if profile is None:
            raise InvalidInputError(
                f"a V4L2 camera does not report its black level: give black_level (DN at {bit_depth} bits; "
                "64 for an IMX219 or IMX477 at 10 bits, 256 at 12) or a sensor profile"
            )
        black_level = [b * scale for b in profile.black_level]
    values = np.broadcast_to(np.asarray(black_level, dtype=float), (4,))
    if white_level is None:
        white_level = 2.0**bit_depth - 1 if profile is None else min(profile.white_level * scale, 2.0**bit_depth - 1)
    return tuple(float(v) for v in values), float(white_level)  # type: ignore[return-value]


def suggest_msb_shift(words: np.ndarray, bit_depth: int) -> int:
    """The ``msb_shift`` that puts a bright frame's highest set bit at the top of
    ``bit_depth`` bits: 0 for LSB-aligned data. Needs some saturated pixels to be right."""
    top = int(np.bitwise_or.reduce(np.asarray(words, dtype=np.uint16), axis=None)).bit_length()
    return max(0, top - bit_depth)


def frame_format(fourcc: str, msb_shift: int | None) -> RawFormat:
    """The RawFormat of a V4L2 fourcc, MSB aligned when ``msb_shift`` is given."""
    fmt = parse_format(fourcc)
    if msb_shift is None:
        return fmt
    if fmt.packing is not Packing.UNPACKED_LSB:
        raise InvalidInputError(f"msb_shift applies to 16-bit word formats (RG10, RG12...), not {fourcc} ({fmt})")
    return RawFormat(fmt.cfa, fmt.bit_depth, Packing.UNPACKED_MSB)


def frame_from_buffer(
    data: bytes | np.ndarray,
    *,
    width: int,
    height: int,
    stride: int,
    fmt: RawFormat,
    msb_shift: int | None,
    black_level: Sequence[float],
    white_level: float,
    analogue_gain: float | None,
    exposure_time_s: float | None,
    timestamp_s: float | None,
    sensor: str,
) -> RawFrame:
    """Decode one dequeued buffer into a RawFrame. Trailing bytes (the VI pads the image
    size) are ignored. A 16-bit-word frame with bits above the declared depth raises
    RawFormatError with the ``msb_shift`` that would fit it."""
    try:
        mosaic = decode(data, width, height, fmt, stride, msb_shift, allow_trailing=True)
    except RawFormatError as exc:
        if fmt.packing is not Packing.UNPACKED_LSB or len(data) < stride * height:
            raise
        rows = np.frombuffer(bytes(data[: stride * height]), np.uint8).reshape(height, stride)[:, : width * 2]
        shift = suggest_msb_shift(np.ascontiguousarray(rows).view("<u2"), fmt.bit_depth)
        raise RawFormatError(f"{exc}; if this frame is bright, pass msb_shift={shift} for this board") from None
    return RawFrame(
        data=mosaic,
        cfa=fmt.cfa,
        bit_depth=fmt.bit_depth,
        black_level=tuple(black_level),
        white_level=white_level,
        analogue_gain=1.0 if analogue_gain is None else analogue_gain,
        exposure_time_s=0.0 if exposure_time_s is None else exposure_time_s,
        timestamp_s=timestamp_s,
        sensor=sensor,
    )


class V4L2Source(CameraSource):
    """A V4L2 Bayer capture node (see the module docstring).

    Args:
        device: the node, e.g. ``/dev/video0``.
        width, height: the frame size (default: the node's current format).
        fourcc: the pixel format, e.g. ``RG10``, ``RG12``, ``pRAA``.
        msb_shift: bit alignment of 16-bit words on this SoC (None: LSB, as V4L2 says).
        black_level, white_level, profile: levels (see :func:`sensor_levels`).
        controls: control values to set at open, by key (``{"sensor_mode": 1}``); on a
            node with a ``bypass_mode`` control it is set to 0 unless given, which the
            Jetson raw path needs.
        gain_control, gain_factor, exposure_control, exposure_unit_s: how to read the
            gain and exposure (see :func:`gain_exposure`).
        buffer_count: capture buffers to request.
        timeout_s: default read timeout; no frame for this long is a :class:`SourceError`.
        sensor: name recorded in the frames (default: the driver's card name).
        auto_exposure: set exposure time and gain from the frames (see the module docstring).
        control_delay_frames: frames until a written gain or exposure shows in the frames.

    Live controls: every integer, boolean and menu control of the node, by key.
    """

    name = "v4l2"

    def __init__(
        self,
        device: str | Path = "/dev/video0",
        *,
        width: int | None = None,
        height: int | None = None,
        fourcc: str = "RG10",
        msb_shift: int | None = None,
        black_level: float | Sequence[float] | None = None,
        white_level: float | None = None,
        profile: SensorProfile | None = None,
        controls: Mapping[str, int] | None = None,
        gain_control: str = "gain",
        gain_factor: float = 16.0,
        exposure_control: str = "exposure",
        exposure_unit_s: float = 1e-6,
        buffer_count: int = 4,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        sensor: str | None = None,
        auto_exposure: ExposureController | None = None,
        control_delay_frames: int = 2,
    ) -> None:
        super().__init__()
        self.device, self.width, self.height = str(device), width, height
        self.fourcc = fourcc
        self.fmt = frame_format(fourcc, msb_shift)
        self.msb_shift = msb_shift
        self.black_level, self.white_level = sensor_levels(self.fmt.bit_depth, black_level, white_level, profile)
        self.initial_controls = dict(controls or {})
        self.mapping = {
            "gain_control": gain_control, "gain_factor": float(gain_factor),
            "exposure_control": exposure_control, "exposure_unit_s": float(exposure_unit_s),
        }  # fmt: skip
        self.buffer_count, self.timeout_s, self.sensor = int(buffer_count), float(timeout_s), sensor
        self._dev: v4l2_device.Device | None = None
        self._controls: dict[str, v4l2_device.Control] = {}
        self.auto_exposure = auto_exposure
        self._delay = ControlDelay(control_delay_frames, ExposureSetting(0.0, 1.0))
        self.stride = 0
        self.sequence = -1

    def _open(self) -> None:
        try:
            dev = v4l2_device.Device(self.device)
        except FileNotFoundError as exc:
            raise SourceError(f"{self.device} does not exist (camera unplugged? see ls /dev/video*)") from exc
        except PermissionError:
            raise
        except OSError as exc:
            raise SourceError(f"cannot open {self.device}: {exc}") from exc
        try:
            self._start(dev)
        except BaseException:
            dev.close()
            raise
        self._dev = dev

    def _start(self, dev: v4l2_device.Device) -> None:
        try:
            cap = dev.capability()
            caps = cap.device_caps if cap.capabilities & v4l2_device.CAP_DEVICE_CAPS else cap.capabilities
            if not (caps & v4l2_device.CAP_VIDEO_CAPTURE and caps & v4l2_device.CAP_STREAMING):
                raise InvalidInputError(
                    f"{self.device} is not a streaming video capture node (a sub-device or an output?)"
                )
            current = dev.get_format()
            width, height = self.width or current.width, self.height or current.height
            pix = dev.set_format(width, height, v4l2_device.fourcc_code(self.fourcc))
            if pix.pixelformat != v4l2_device.fourcc_code(self.fourcc) or (pix.width, pix.height) != (width, height):
                raise InvalidInputError(
                    f"{self.device} cannot deliver {self.fourcc} {width}x{height}; it offered "
                    f"{v4l2_device.fourcc_text(pix.pixelformat)} {pix.width}x{pix.height} (list its formats with "
                    f"v4l2-ctl -d {self.device} --list-formats-ext)"
                )
            self.width, self.height = int(pix.width), int(pix.height)
            self.stride = int(pix.bytesperline) or self.fmt.line_bytes(self.width)
            self._controls = {control_key(c.name): c for c in dev.controls()}
            wanted = dict(self.initial_controls)
            if "bypass_mode" in self._controls:
                wanted.setdefault("bypass_mode", 0)
            for key, value in wanted.items():
                self._set(dev, key, value)
            if self.auto_exposure is not None:
                self._start_auto_exposure(dev)
            self._delay.reset(self._read_setting(dev))
            if self.sensor is None:
                self.sensor = cap.card.decode("ascii", "replace") or Path(self.device).name
            dev.start(self.buffer_count)
        except OSError as exc:
            raise SourceError(f"{self.device}: {exc}") from exc
        self.sequence = -1

    def _close(self) -> None:
        dev, self._dev = self._dev, None
        if dev is not None:
            dev.close()

    def _read(self, timeout_s: float | None) -> RawFrame:
        dev = self._dev
        if dev is None:
            raise SourceError(f"{self.device} was closed")
        wait = self.timeout_s if timeout_s is None else timeout_s
        try:
            item = dev.dequeue(wait)
            while item is not None and item.error:  # a corrupted frame: the VI says so, skip it
                log.warning("%s: frame %d flagged corrupt, skipped", self.device, item.sequence)
                item = dev.dequeue(wait)
        except OSError as exc:
            lost = exc.errno in v4l2_device.DEVICE_LOST
            raise SourceError(f"{self.device} {'disappeared' if lost else 'failed'}: {exc}") from exc
        except ValueError as exc:  # select() or the mmap after close() from another thread
            raise SourceError(f"{self.device} was closed while reading: {exc}") from exc
        if item is None:
            raise SourceError(f"{self.device}: no frame within {wait} s")
        self.sequence = item.sequence
        applied = self._delay.at(item.sequence)
        frame = frame_from_buffer(
            item.data, width=self.width, height=self.height, stride=self.stride, fmt=self.fmt,
            msb_shift=self.msb_shift, black_level=self.black_level, white_level=self.white_level,
            analogue_gain=applied.analogue_gain, exposure_time_s=applied.exposure_time_s,
            timestamp_s=item.timestamp_s, sensor=str(self.sensor),
        )  # fmt: skip
        if self.auto_exposure is not None:
            frame = self.auto_exposure.expose(frame, self._write_exposure)
        return frame

    def _exposure_controls(self) -> tuple[v4l2_device.Control, v4l2_device.Control]:
        keys = (self.mapping["exposure_control"], self.mapping["gain_control"])
        missing = [key for key in keys if key not in self._controls]
        if missing:
            known = ", ".join(sorted(self._controls)) or "none"
            raise InvalidInputError(
                f"auto-exposure on {self.device} needs the controls {', '.join(missing)}, which the node does not "
                f"have (it has: {known}); name them with exposure_control/gain_control, or turn auto-exposure off"
            )
        return self._controls[keys[0]], self._controls[keys[1]]

    def _start_auto_exposure(self, dev: v4l2_device.Device) -> None:
        exposure, gain = self._exposure_controls()
        unit, factor = self.mapping["exposure_unit_s"], self.mapping["gain_factor"]
        self.auto_exposure.fit_to(
            (max(exposure.minimum, 1) * unit, exposure.maximum * unit),
            (max(gain.minimum, 1) / factor, gain.maximum / factor),
        )
        self._write_exposure(self.auto_exposure.request, dev)

    def _write_exposure(self, setting: ExposureSetting, dev: v4l2_device.Device | None = None) -> None:
        """The device seam of auto-exposure: write exposure and gain, rounded to the controls' steps."""
        dev = dev or self._dev
        if dev is None:
            return
        exposure, gain = self._exposure_controls()
        steps = (
            (exposure, setting.exposure_time_s / self.mapping["exposure_unit_s"]),
            (gain, setting.analogue_gain * self.mapping["gain_factor"]),
        )
        try:
            for control, value in steps:
                dev.set_control(control, int(min(max(round(value), control.minimum), control.maximum)))
        except OSError as exc:
            raise SourceError(f"{self.device}: setting exposure failed: {exc}") from exc
        self._refresh_metadata(dev)

    def _set(self, dev: v4l2_device.Device, key: str, value: Any) -> None:
        control = self._controls.get(key)
        if control is None:
            known = ", ".join(sorted(self._controls)) or "none"
            raise InvalidInputError(f"{self.device} has no control {key!r}; it has: {known}")
        if isinstance(value, bool) or not float(value).is_integer():
            raise InvalidInputError(f"V4L2 control {key!r} takes an integer, got {value!r}")
        dev.set_control(control, int(value))

    def _read_setting(self, dev: v4l2_device.Device) -> ExposureSetting:
        values = {}
        for key in (self.mapping["gain_control"], self.mapping["exposure_control"]):
            if key in self._controls:
                values[key] = dev.get_control(self._controls[key])
        gain, exposure = gain_exposure(values, **self.mapping)
        return ExposureSetting(0.0 if exposure is None else exposure, 1.0 if gain is None else gain)

    def _refresh_metadata(self, dev: v4l2_device.Device) -> None:
        setting = self._read_setting(dev)
        if setting != self._delay.latest:
            self._delay.written(self.sequence, setting)

    def controls(self) -> dict[str, Any]:
        dev = self._dev
        if dev is None:
            return {key: None for key in self._controls}
        return {key: dev.get_control(control) for key, control in self._controls.items()}

    def set_control(self, name: str, value: Any) -> None:
        if self._dev is None:
            raise InvalidInputError(f"V4L2 source {self.device} is not open; controls can be set while it runs")
        if self.auto_exposure is not None and name in (self.mapping["gain_control"], self.mapping["exposure_control"]):
            raise InvalidInputError(
                f"auto-exposure sets {name} on {self.device}; open it without auto_exposure to set it"
            )
        try:
            self._set(self._dev, name, value)
            self._refresh_metadata(self._dev)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ERANGE, errno.EACCES):
                raise InvalidInputError(f"{self.device} refused {name}={value!r}: {exc}") from None
            raise SourceError(f"{self.device}: setting {name} failed: {exc}") from exc
