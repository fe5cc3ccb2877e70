"""`RawFrame`: one Bayer frame and the metadata needed to interpret it.

Every camera source yields RawFrames and every consumer takes them. On disk a frame is
``NAME.npy`` (the uint16 mosaic) plus ``NAME.json`` (the metadata sidecar).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError, MissingFileError, ProfileError
from edge_isp.fileio import atomic_open, read_json
from edge_isp.sensor.cfa import CFA, per_channel_map
from edge_isp.sensor.profile import check_levels

SIDECAR_VERSION = 1


@dataclasses.dataclass(frozen=True)
class RawFrame:
    """A Bayer mosaic with its metadata.

    Attributes:
        data: ``(H, W)`` uint16 mosaic in DN, H and W even.
        cfa: the Bayer pattern of ``data`` as stored (after any readout flips).
        bit_depth: bits per sample the sensor delivers (8 to 16).
        black_level: black level in DN per plane, in the order R, Gr, Gb, B.
        white_level: the saturation level in DN.
        analogue_gain: analogue gain (1.0 = the sensor's base gain).
        exposure_time_s: exposure time in seconds.
        timestamp_s: capture time in seconds (source clock), if known.
        sensor: sensor or camera name, e.g. "imx219".
        digital_gain: exposure compensation to apply after normalization, decided by whatever
            produced the frame (the simulator, an auto-exposure); 1.0 for a sensor's own frame.
        iso: the ISO the camera states (camera raw files' EXIF), None when not known. A
            profile keyed by ISO looks the noise up at ``iso / base_iso`` (see
            :meth:`~edge_isp.sensor.profile.SensorProfile.gain_for_frame`).
        capture_time_unix: when the frame was taken, seconds since 1970 UTC (a camera raw
            file's EXIF time), None when not known. Unlike ``timestamp_s``, which a replay
            may restamp with its own clock, this stays the file's.
    """

    data: np.ndarray
    cfa: CFA
    bit_depth: int
    black_level: tuple[float, float, float, float]
    white_level: float
    analogue_gain: float = 1.0
    exposure_time_s: float = 0.0
    timestamp_s: float | None = None
    sensor: str = "unknown"
    digital_gain: float = 1.0
    iso: float | None = None
    capture_time_unix: float | None = None

    def __post_init__(self) -> None:
        data = self.data
        if not isinstance(data, np.ndarray) or data.ndim != 2:
            raise InvalidInputError(
                f"RawFrame.data must be a 2-D numpy array, got {type(data).__name__} "
                f"with shape {getattr(data, 'shape', None)}"
            )
        if data.dtype != np.uint16:
            raise InvalidInputError(f"RawFrame.data must be uint16, got {data.dtype}")
        if data.shape[0] % 2 or data.shape[1] % 2:
            raise InvalidInputError(f"RawFrame.data must have even height and width, got {data.shape}")
        object.__setattr__(self, "cfa", CFA.parse(self.cfa))
        try:
            bit_depth, black, white = check_levels(self.bit_depth, self.black_level, self.white_level)
        except ProfileError as exc:  # the profile's rule, named for a frame
            raise InvalidInputError(f"RawFrame: {exc}") from None
        object.__setattr__(self, "bit_depth", bit_depth)
        object.__setattr__(self, "black_level", black)
        object.__setattr__(self, "white_level", white)
        if not (_is_number(self.digital_gain) and self.digital_gain > 0):
            raise InvalidInputError(f"RawFrame.digital_gain must be a finite number > 0, got {self.digital_gain!r}")
        for name in ("analogue_gain", "exposure_time_s"):
            value = getattr(self, name)
            if not (_is_number(value) and value >= 0):
                raise InvalidInputError(f"RawFrame.{name} must be a finite number >= 0, got {value!r}")
        if self.timestamp_s is not None and not _is_number(self.timestamp_s):
            raise InvalidInputError(f"RawFrame.timestamp_s must be a finite number or None, got {self.timestamp_s!r}")
        if not isinstance(self.sensor, str):
            raise InvalidInputError(f"RawFrame.sensor must be a string, got {self.sensor!r}")
        for name in ("iso", "capture_time_unix"):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and value > 0):
                raise InvalidInputError(f"RawFrame.{name} must be a finite number > 0 or None, got {value!r}")

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    def normalized(self) -> np.ndarray:
        """The mosaic as float32 on [0, 1]: black level subtracted per channel, white at 1.

        Values are not clipped at 0, so the noise around black keeps its zero mean. The
        digital gain is not applied: the model input is :mod:`edge_isp.contract.model_input`.
        """
        black = per_channel_map(self.black_level, self.cfa, self.height, self.width)
        scale = self.white_level - black
        return ((self.data.astype(np.float32) - black) / scale).astype(np.float32)

    def metadata(self) -> dict[str, Any]:
        """The JSON-serializable metadata (everything but the pixels)."""
        return {
            "version": SIDECAR_VERSION,
            "height": self.height,
            "width": self.width,
            "cfa": self.cfa.value,
            "bit_depth": int(self.bit_depth),
            "black_level": list(self.black_level),
            "white_level": float(self.white_level),
            "analogue_gain": float(self.analogue_gain),
            "exposure_time_s": float(self.exposure_time_s),
            "timestamp_s": self.timestamp_s,
            "sensor": self.sensor,
            "digital_gain": float(self.digital_gain),
            "iso": self.iso,
            "capture_time_unix": self.capture_time_unix,
        }

    def save(self, path: str | Path) -> Path:
        """Write ``path.npy`` and ``path.json`` (a ``.npy``/``.json`` suffix on ``path`` is
        dropped; other dots, as in ``burst.000``, are kept). Returns the ``.npy`` path.

        Both files go to temporary names first and replace the old pair only when both are
        fully written, so a failure leaves the previous frame intact.
        """
        npy, sidecar = _pair_paths(path)
        with atomic_open(npy, "wb") as pixels, atomic_open(sidecar, "w", encoding="utf-8") as meta:
            np.save(pixels, self.data)
            json.dump(self.metadata(), meta, indent=2)
        return npy

    @classmethod
    def load(cls, path: str | Path, *, mapped: bool = False) -> RawFrame:
        """Read a frame written by :meth:`save`, from its ``.npy`` or ``.json`` path.

        ``mapped``: map the pixels from the file, read-only, instead of reading them all (for a
        look at a sample of them: only the pages touched are read)."""
        npy, sidecar = _pair_paths(path)
        for p in (npy, sidecar):
            if not p.exists():
                raise MissingFileError(f"RawFrame file {p} does not exist (a frame is a .npy plus a .json sidecar)")
        meta = read_json(sidecar, "RawFrame sidecar")
        try:
            data = np.load(npy, allow_pickle=False, mmap_mode="r" if mapped else None)
        except Exception as exc:  # numpy's header parser raises ValueError, EOFError, SyntaxError...
            raise InvalidInputError(
                f"{npy} is not a readable .npy array ({type(exc).__name__}: {str(exc)[:200] or 'no data'})"
            ) from None
        if not isinstance(data, np.ndarray):
            raise InvalidInputError(f"{npy} holds an archive of arrays, not one mosaic")
        return cls.from_metadata(data, meta, origin=str(sidecar))

    @classmethod
    def from_metadata(cls, data: np.ndarray, meta: dict[str, Any], origin: str = "metadata") -> RawFrame:
        """Build a frame from pixels and a metadata dict as written by :meth:`metadata`."""
        if not isinstance(meta, dict):
            raise InvalidInputError(f"{origin}: a RawFrame sidecar must be a JSON object, got {type(meta).__name__}")
        if meta.get("version") != SIDECAR_VERSION:
            raise InvalidInputError(
                f"{origin}: sidecar version {meta.get('version')!r} is not supported (expected {SIDECAR_VERSION})"
            )
        missing = [k for k in ("cfa", "bit_depth", "black_level", "white_level") if k not in meta]
        if missing:
            raise InvalidInputError(f"{origin}: missing field(s) {', '.join(missing)}")
        if not isinstance(data, np.ndarray) or data.ndim != 2:
            raise InvalidInputError(
                f"{origin}: the mosaic must be a 2-D array, got shape {getattr(data, 'shape', None)}"
            )
        size = (meta.get("height", data.shape[0]), meta.get("width", data.shape[1]))
        if data.shape != size:
            raise InvalidInputError(f"{origin}: says {size[0]!r}x{size[1]!r} but the array is {data.shape}")
        fields = {key: meta[key] for key in ("bit_depth", "black_level", "white_level")}
        for key, default in _OPTIONAL_NUMBERS.items():
            fields[key] = meta.get(key, default)
        for key, value in fields.items():
            numbers = value if key == "black_level" and isinstance(value, list) else [value]
            if not all(_is_number(v) for v in numbers) and not (key in _MAY_BE_NONE and value is None):
                raise InvalidInputError(f"{origin}: field {key!r} must be a number, got {value!r}")
        sensor = meta.get("sensor", "unknown")
        if not isinstance(sensor, str):
            raise InvalidInputError(f"{origin}: field 'sensor' must be a string, got {sensor!r}")
        try:
            return cls(data=data, cfa=CFA.parse(meta["cfa"]), sensor=sensor, **fields)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{origin}: {exc}") from None


# Sidecar fields a frame may omit, with the value they then take.
_OPTIONAL_NUMBERS = {
    "analogue_gain": 1.0,
    "exposure_time_s": 0.0,
    "timestamp_s": None,
    "digital_gain": 1.0,
    "iso": None,
    "capture_time_unix": None,
}


_MAY_BE_NONE = ("timestamp_s", "iso", "capture_time_unix")


def _is_number(value: Any) -> bool:
    """A finite real number (Python's or numpy's), not a bool, not a string."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _pair_paths(path: str | Path) -> tuple[Path, Path]:
    """The (.npy, .json) pair for ``path``, which may name either file or their common stem."""
    path = Path(path)
    base = path.with_suffix("") if path.suffix in (".npy", ".json") else path
    return base.with_name(base.name + ".npy"), base.with_name(base.name + ".json")
