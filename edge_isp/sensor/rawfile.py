"""Load a raw frame from a file: RawFrame pairs, DNG/camera raw, bare dumps, 16-bit PGM.

The kind of file is told by its suffix (or ``kind=``):

- ``.npy`` / ``.json``: a frame written by :meth:`RawFrame.save`.
- ``.dng`` and camera raw files (``.nef .cr2 .cr3 .arw .orf .rw2 .raf .pef .srw`` ...):
  read through rawpy (LibRaw); Bayer sensors only.
- ``.raw`` / ``.bin``: a bare dump of a device buffer, decoded by
  :func:`edge_isp.sensor.rawformat.decode` from ``width``, ``height``, ``fmt`` (and
  ``stride``, ``msb_shift``) given by the caller. (A Panasonic/Leica ``.raw`` camera
  file needs ``kind="camera_raw"``.)
- ``.pgm``: binary PGM (P5), 8- or 16-bit (big-endian, as the format specifies).

Metadata keywords (``cfa``, ``black_level``, ``white_level``, ``bit_depth``,
``analogue_gain``, ``exposure_time_s``, ``timestamp_s``, ``sensor``, ``iso``) fill in what
the file does not say and override what it does. Every reader carries the ISO, exposure and
capture time it finds into the frame; ``base_iso`` turns an ISO into an analogue gain.

A camera raw file's masked optical-black margins, where it has them, give the frame's black
level per plane (:mod:`edge_isp.sensor.optical_black`).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError, MissingFileError, require
from edge_isp.sensor.cfa import CFA, PLANE_ORDER
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.optical_black import OpticalBlack, measure_optical_black
from edge_isp.sensor.rawformat import RawFormat, decode, parse_format

FRAME_SUFFIXES = (".npy", ".json")
DUMP_SUFFIXES = (".raw", ".bin")
PGM_SUFFIXES = (".pgm",)
CAMERA_RAW_SUFFIXES = (
    ".dng", ".nef", ".nrw", ".cr2", ".cr3", ".crw", ".arw", ".srf", ".sr2", ".orf", ".rw2",
    ".raf", ".pef", ".srw", ".3fr", ".iiq", ".erf", ".kdc", ".dcr", ".mrw", ".mos", ".rwl",
)  # fmt: skip
SUPPORTED_SUFFIXES = FRAME_SUFFIXES + CAMERA_RAW_SUFFIXES + DUMP_SUFFIXES + PGM_SUFFIXES
KINDS = ("frame", "camera_raw", "dump", "pgm")

# Linear sRGB (D65) -> CIE XYZ, IEC 61966-2-1.
SRGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)


def load_raw(path: str | os.PathLike, **options: Any) -> RawFrame:
    """Read a raw frame; :func:`load_raw_with_color` without the colour information.

    The keywords, defaults and errors are those of :func:`load_raw_with_color`.
    """
    return load_raw_with_color(path, **options)[0]


def load_raw_with_color(
    path: str | os.PathLike,
    *,
    kind: str | None = None,
    width: int | None = None,
    height: int | None = None,
    fmt: RawFormat | str | None = None,
    stride: int | None = None,
    msb_shift: int | None = None,
    allow_trailing: bool = False,
    cfa: CFA | str | None = None,
    black_level: float | Sequence[float] | None = None,
    white_level: float | None = None,
    bit_depth: int | None = None,
    analogue_gain: float | None = None,
    exposure_time_s: float | None = None,
    timestamp_s: float | None = None,
    sensor: str | None = None,
    iso: float | None = None,
    base_iso: float | None = None,
    mapped: bool = False,
) -> tuple[RawFrame, dict[str, Any]]:
    """Read a raw frame and whatever colour information the file carries.

    Args:
        path: the file; its suffix picks the reader unless ``kind`` is given.
        kind: one of ``"frame"``, ``"camera_raw"``, ``"dump"``, ``"pgm"``.
        width, height, fmt, stride, msb_shift, allow_trailing: how to decode a bare dump
            (see :func:`~edge_isp.sensor.rawformat.decode`); refused for other kinds.
        cfa, black_level (DN, one value or four in the order R, Gr, Gb, B), white_level
            (DN), bit_depth, analogue_gain, exposure_time_s, timestamp_s, sensor, iso: metadata
            that overrides the file's. A dump needs ``black_level``; a PGM needs ``cfa``
            and ``black_level``. The white level defaults to ``2**bit_depth - 1`` for a
            dump and to the PGM's maxval. ``iso`` gives the ISO of a file that lacks it.
        base_iso: the camera's ISO at unity analogue gain. Files state an ISO but not their
            base ISO, so the frame's analogue gain is ``ISO / base_iso`` only when this is
            given (beyond the sensor's largest analogue gain that ratio includes digital
            gain) and ``analogue_gain`` is not; otherwise the file's gain (1.0 for a
            camera raw file) stays. A profile keyed by ISO uses the frame's ``iso`` anyway.
        mapped: a RawFrame file's pixels mapped from the file, read-only, not read (see
            :meth:`RawFrame.load`); the other kinds are read as usual.

    Returns:
        ``(frame, color)``. ``color`` has the keys ``color_matrix`` (3x3, white-balanced
        camera RGB -> linear sRGB, rows summing to 1: the sensor profile's convention),
        ``white_balance`` (as-shot R, G, B gains, G = 1), ``daylight_white_balance``,
        ``xyz_to_camera`` (3x3, CIE XYZ -> camera RGB), ``iso`` and ``optical_black`` (an
        :class:`~edge_isp.sensor.optical_black.OpticalBlack` of the masked margins); each
        is None when the file does not carry it (only camera raw files do).

    Raises:
        MissingFileError: ``path`` does not exist.
        InvalidInputError: an unsupported suffix (the message lists the supported ones), a
            missing required keyword (named), a non-Bayer camera raw file, a malformed file.
        MissingDependencyError: a camera raw file without rawpy installed.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"raw file {path} does not exist")
    kind = _kind(path, kind)
    decoding = {"width": width, "height": height, "fmt": fmt, "stride": stride, "msb_shift": msb_shift}
    given = [name for name, value in decoding.items() if value is not None]
    if allow_trailing:
        given.append("allow_trailing")
    if given and kind != "dump":
        raise InvalidInputError(
            f"{', '.join(given)} only apply to bare .raw/.bin dumps; {path.name} is a {kind} file that "
            "carries its own size and format"
        )
    color: dict[str, Any] = {
        "color_matrix": None, "white_balance": None, "daylight_white_balance": None, "xyz_to_camera": None, "iso": None,
        "optical_black": None,
    }  # fmt: skip
    if kind == "frame":
        frame = RawFrame.load(path, mapped=mapped)
    elif kind == "camera_raw":
        frame, color = _read_camera_raw(path)
    elif kind == "dump":
        frame = _read_dump(path, width, height, fmt, stride, msb_shift, allow_trailing, black_level, white_level, cfa)
    else:
        frame = _read_pgm(path, cfa, black_level, white_level, bit_depth)
    overrides = {
        "cfa": cfa, "black_level": black_level, "white_level": white_level, "bit_depth": bit_depth,
        "analogue_gain": analogue_gain, "exposure_time_s": exposure_time_s, "timestamp_s": timestamp_s,
        "sensor": sensor, "iso": iso,
    }  # fmt: skip
    changes = {name: value for name, value in overrides.items() if value is not None}
    stated_iso = changes.get("iso", frame.iso)
    if base_iso is not None and analogue_gain is None:
        if not (isinstance(base_iso, (int, float)) and base_iso > 0):
            raise InvalidInputError(f"base_iso must be a positive number, got {base_iso!r}")
        if stated_iso is None:
            raise InvalidInputError(
                f"{path.name} states no ISO, so base_iso ({base_iso:g}) cannot give its analogue gain: "
                "give its ISO (--iso) or its analogue gain"
            )
        changes["analogue_gain"] = float(stated_iso) / float(base_iso)
    if changes:
        frame = dataclasses.replace(frame, **changes)
    if color["iso"] is None and frame.iso is not None:
        color["iso"] = frame.iso
    return frame, color


def _kind(path: Path, kind: str | None) -> str:
    if kind is not None:
        if kind not in KINDS:
            raise InvalidInputError(f"unknown raw file kind {kind!r}; expected one of {', '.join(KINDS)}")
        return kind
    suffix = path.suffix.lower()
    for name, suffixes in zip(KINDS, (FRAME_SUFFIXES, CAMERA_RAW_SUFFIXES, DUMP_SUFFIXES, PGM_SUFFIXES), strict=True):
        if suffix in suffixes:
            return name
    raise InvalidInputError(
        f"cannot read {path.name}: unsupported suffix {path.suffix or '(none)'!r}; supported: "
        f"{' '.join(SUPPORTED_SUFFIXES)}"
    )


def _read_dump(path, width, height, fmt, stride, msb_shift, allow_trailing, black_level, white_level, cfa) -> RawFrame:
    missing = [
        n for n, v in (("width", width), ("height", height), ("fmt", fmt), ("black_level", black_level)) if v is None
    ]
    if missing:
        raise InvalidInputError(
            f"reading the bare dump {path.name} needs width, height, fmt (e.g. SRGGB10_CSI2P) and black_level "
            f"(DN; 0 if the data is already black-subtracted), since a dump has no header; "
            f"missing: {', '.join(missing)}"
        )
    fmt = parse_format(fmt)
    data = decode(
        np.fromfile(path, dtype=np.uint8), width, height, fmt, stride, msb_shift, allow_trailing=allow_trailing
    )
    return RawFrame(
        data=data,
        cfa=fmt.cfa if cfa is None else cfa,
        bit_depth=fmt.bit_depth,
        black_level=black_level,
        white_level=float(2**fmt.bit_depth - 1) if white_level is None else white_level,
    )


def _read_pgm(path: Path, cfa, black_level, white_level, bit_depth) -> RawFrame:
    missing = [n for n, v in (("cfa", cfa), ("black_level", black_level)) if v is None]
    if missing:
        raise InvalidInputError(
            f"reading the PGM {path.name} as a Bayer mosaic needs cfa (e.g. RGGB) and black_level (DN), which a "
            f"PGM does not record; missing: {', '.join(missing)}"
        )
    content = path.read_bytes()
    width, height, maxval, offset = _pgm_header(content, path.name)
    sample = 1 if maxval < 256 else 2
    need = width * height * sample
    if len(content) - offset < need:
        raise InvalidInputError(
            f"{path.name}: a {width}x{height} PGM with maxval {maxval} needs {need} bytes of pixels "
            f"({sample} per sample), got {len(content) - offset}"
        )
    dtype = np.uint8 if sample == 1 else np.dtype(">u2")  # PGM stores the most significant byte first
    data = np.frombuffer(content, dtype=dtype, count=width * height, offset=offset).reshape(height, width)
    data = data.astype(np.uint16)
    if data.size and int(data.max()) > maxval:
        raise InvalidInputError(f"{path.name}: pixel value {int(data.max())} exceeds the header's maxval {maxval}")
    return RawFrame(
        data=data,
        cfa=cfa,
        bit_depth=max(8, maxval.bit_length()) if bit_depth is None else bit_depth,
        black_level=black_level,
        white_level=float(maxval) if white_level is None else white_level,
    )


def _pgm_header(content: bytes, name: str) -> tuple[int, int, int, int]:
    """Parse ``P5 <ws> width <ws> height <ws> maxval <one ws>``, with ``#`` comments."""
    if content[:2] != b"P5":
        raise InvalidInputError(f"{name}: not a binary PGM (expected magic 'P5', got {content[:2]!r})")
    fields: list[int] = []
    pos = 2
    while len(fields) < 3:
        while pos < len(content) and (content[pos : pos + 1].isspace() or content[pos : pos + 1] == b"#"):
            if content[pos : pos + 1] == b"#":
                end = content.find(b"\n", pos)
                pos = len(content) if end < 0 else end
            pos += 1
        start = pos
        while pos < len(content) and content[pos : pos + 1].isdigit():
            pos += 1
        if start == pos:
            raise InvalidInputError(f"{name}: malformed PGM header (expected width, height and maxval)")
        fields.append(int(content[start:pos]))
    if pos >= len(content) or not content[pos : pos + 1].isspace():
        raise InvalidInputError(f"{name}: malformed PGM header (no whitespace after maxval)")
    width, height, maxval = fields
    if width <= 0 or height <= 0 or not 0 < maxval < 65536:
        raise InvalidInputError(
            f"{name}: PGM needs width, height > 0 and 0 < maxval < 65536, got {width}x{height} maxval {maxval}"
        )
    return width, height, maxval, pos + 1


def _read_camera_raw(path: Path) -> tuple[RawFrame, dict[str, Any]]:
    rawpy = require("rawpy", "raw", "reading DNG/camera raw files")
    try:
        with rawpy.imread(str(path)) as raw:
            return _from_rawpy(raw, rawpy, path.name)
    except rawpy.LibRawError as exc:
        raise InvalidInputError(f"{path.name}: rawpy (LibRaw) cannot read it as a camera raw file: {exc}") from None


def _from_rawpy(raw, rawpy, name: str) -> tuple[RawFrame, dict[str, Any]]:
    if raw.raw_type is not rawpy.RawType.Flat:
        raise InvalidInputError(f"{name}: not a mosaic (a linear or demosaiced raw with several values per pixel)")
    try:
        pattern = raw.raw_pattern
    except NotImplementedError as exc:
        raise InvalidInputError(
            f"{name}: unsupported colour filter layout ({exc}); edge-isp reads Bayer sensors"
        ) from None
    desc = raw.color_desc.decode("ascii", "replace")
    if pattern is None or pattern.shape != (2, 2):
        what = {1: "a monochrome sensor (no colour filter array)", 6: "an X-Trans 6x6 colour filter array"}
        found = (
            "no colour filter pattern" if pattern is None else what.get(pattern.shape[0], f"a {pattern.shape} pattern")
        )
        raise InvalidInputError(f"{name}: {found}, not a 2x2 Bayer pattern; edge-isp reads Bayer sensors only")
    # rawpy's raw_pattern is indexed from the full raw image's origin (raw_color adds the margins
    # back), while raw_image_visible starts at (top_margin, left_margin).
    sizes = raw.sizes
    index = [[int(pattern[(sizes.top_margin + y) % 2, (sizes.left_margin + x) % 2]) for x in (0, 1)] for y in (0, 1)]
    letters = "".join(desc[i] if 0 <= i < len(desc) else "?" for row in index for i in row)
    if sorted(letters) != ["B", "G", "G", "R"]:
        raise InvalidInputError(
            f"{name}: colour filter {letters!r} (colours {desc!r}) is not an RGB Bayer pattern; edge-isp reads "
            "RGGB, BGGR, GRBG and GBRG sensors only"
        )
    cfa = CFA(letters)
    visible = raw.raw_image_visible
    h, w = visible.shape[0] // 2 * 2, visible.shape[1] // 2 * 2  # cropping bottom/right keeps the CFA phase
    data = np.array(visible[:h, :w], dtype=np.uint16, copy=True)
    per_index = raw.black_level_per_channel  # indexed by colour index, not by CFA position
    black = tuple(float(per_index[index[y][x]]) for y, x in cfa.plane_offsets())
    white = float(raw.white_level)
    optical_black = measure_optical_black(
        raw.raw_image, top=sizes.top_margin, left=sizes.left_margin, height=visible.shape[0], width=visible.shape[1],
        cfa=cfa,
        file_black_level=black, white_level=white,
    )  # fmt: skip
    if optical_black is not None and optical_black.used:
        black = optical_black.black_level_dn
    other = raw.other
    iso = float(other.iso_speed) if other.iso_speed > 0 else None
    stamp = other.timestamp.timestamp() if other.timestamp.timestamp() > 0 else None
    frame = RawFrame(
        data=data,
        cfa=cfa,
        bit_depth=max(8, min(16, int(white).bit_length())),
        black_level=black,
        white_level=white,
        exposure_time_s=max(0.0, float(other.shutter_speed)),
        timestamp_s=stamp,
        iso=iso,
        capture_time_unix=stamp,
    )
    xyz_to_camera = np.asarray(raw.rgb_xyz_matrix, dtype=np.float64)[:3]
    libraw_matrix = np.asarray(raw.color_matrix, dtype=np.float64)[:, :3]
    if np.any(xyz_to_camera):
        matrix = camera_to_srgb_matrix(xyz_to_camera)
    elif np.any(libraw_matrix):
        matrix = libraw_matrix  # LibRaw's own camera -> sRGB matrix (DNGs fill this, not rgb_xyz_matrix)
    else:
        matrix = None
    color = {
        "color_matrix": _rows(matrix),
        "white_balance": _rgb_gains(raw.camera_whitebalance, desc),
        "daylight_white_balance": _rgb_gains(raw.daylight_whitebalance, desc),
        "xyz_to_camera": _rows(xyz_to_camera) if np.any(xyz_to_camera) else None,
        "iso": iso,
        "optical_black": optical_black,
    }
    return frame, color


def camera_to_srgb_matrix(xyz_to_camera: np.ndarray) -> np.ndarray:
    """White-balanced camera RGB -> linear sRGB, from an XYZ -> camera matrix (DNG ColorMatrix).

    The camera's view of the sRGB primaries, ``xyz_to_camera @ SRGB_TO_XYZ``, is scaled so
    each row sums to 1 (white stays white after white balance) and inverted; the result's
    rows sum to 1. This is how dcraw/LibRaw derive their camera -> sRGB matrix.
    """
    m = np.asarray(xyz_to_camera, dtype=np.float64)
    if m.shape != (3, 3):
        raise InvalidInputError(f"xyz_to_camera must be 3x3, got shape {m.shape}")
    cam_from_srgb = m @ SRGB_TO_XYZ
    sums = cam_from_srgb.sum(axis=1, keepdims=True)
    if np.any(np.abs(sums) < 1e-12) or abs(np.linalg.det(cam_from_srgb)) < 1e-12:
        raise InvalidInputError(f"xyz_to_camera is singular or maps white to zero: {m.tolist()}")
    return np.linalg.inv(cam_from_srgb / sums)


def _rows(matrix: np.ndarray | None) -> tuple[tuple[float, ...], ...] | None:
    return None if matrix is None else tuple(tuple(float(v) for v in row) for row in matrix)


def _rgb_gains(values: Sequence[float], desc: str) -> tuple[float, float, float] | None:
    """Gains indexed by LibRaw colour index -> (R, G, B) with G = 1; None when unknown."""
    try:
        r, g, b = (float(values[desc.index(c)]) for c in "RGB")
    except ValueError:
        return None
    if min(r, g, b) <= 0:
        return None
    return (r / g, 1.0, b / g)


def describe(frame: RawFrame, optical_black: OpticalBlack | None = None) -> str:
    """A multi-line, human-readable summary of a frame's metadata and pixel statistics
    (and of the file's masked optical-black area, when given)."""
    data = frame.data
    lines = [
        f"size            {frame.width} x {frame.height} (W x H), {frame.width * frame.height / 1e6:.2f} MP",
        f"cfa             {frame.cfa.value}",
        f"bit depth       {frame.bit_depth}",
        "black level     "
        + "  ".join(f"{n} {b:g}" for n, b in zip(PLANE_ORDER, frame.black_level, strict=True))
        + " DN",
        f"white level     {frame.white_level:g} DN",
        f"analogue gain   {frame.analogue_gain:g}",
        f"iso             {frame.iso:g}" if frame.iso is not None else "iso             unknown",
        f"exposure        {frame.exposure_time_s * 1e3:g} ms" if frame.exposure_time_s else "exposure        unknown",
        f"timestamp       {_timestamp(frame.timestamp_s)}",
        f"captured        {_timestamp(frame.capture_time_unix)}",
        f"sensor          {frame.sensor}",
        f"{'plane':<8}{'min':>8}{'max':>8}{'mean':>11}{'clipped':>10}",
    ]
    for name, (y, x) in zip(PLANE_ORDER, frame.cfa.plane_offsets(), strict=True):
        plane = data[y::2, x::2]
        clipped = float(np.mean(plane >= frame.white_level))
        lines.append(f"{name:<8}{int(plane.min()):>8}{int(plane.max()):>8}{plane.mean():>11.2f}{clipped:>10.3%}")
    lines.append(f"clipped pixels  {float(np.mean(data >= frame.white_level)):.3%} (at or above the white level)")
    if optical_black is not None:
        lines.append(optical_black.describe())
    return "\n".join(lines)


def _timestamp(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    text = f"{seconds:.6f} s"
    if seconds > 946684800:  # after 2000-01-01: plausibly Unix time rather than a device clock
        utc = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
        text += f" (as Unix time: {utc:%Y-%m-%d %H:%M:%S} UTC)"
    return text
