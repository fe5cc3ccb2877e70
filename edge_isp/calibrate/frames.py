"""Find calibration frames, read their metadata, and group them by kind, gain and exposure.

A calibration set is a folder (searched recursively) or a list of files: DNG/camera raw,
RawFrame pairs (``.npy`` + ``.json``), bare dumps (``.raw``/``.bin``) or 16-bit PGM; see
:func:`edge_isp.sensor.rawfile.load_raw`. An optional ``manifest.json`` in the folder
supplies what the files do not say (exposure, gain, kind, and how to decode a dump):

    {"defaults": {"format": "SRGGB10_CSI2P", "width": 3280, "height": 2464,
                  "black_level": 64, "analogue_gain": 2.0},
     "frames": {"dark_0001.raw": {"kind": "dark", "exposure_time_s": 0.01},
                "flat_0001.raw": {"kind": "flat", "exposure_time_s": 0.01}}}

(``"frames"`` may also be a list of objects with a ``"file"`` key.) Manifest values
override the file's own metadata. Camera raw files state an ISO, not a gain: with
``base_iso`` the gain is ISO / base_iso, without it the ISO relative to the set's lowest
(which :func:`base_iso_of` then reports as the base ISO, so ISO labels stay the files').

Kind of each frame ("dark", "flat" or "scene"): from the manifest; else from a word in its
path ("dark", "black", "bias" or "flat", "white", "light", e.g. ``gain2/dark_001.dng``);
else, for a photon-transfer set, from its level: a frame whose mean is within 1 % of full
scale of the black level is dark. Name the files to be safe.

Pixels are read only when a method needs them (:meth:`FrameRef.load`), so a large sweep
never sits in memory at once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.fileio import read_json, write_json
from edge_isp.sensor.cfa import CFA
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.optical_black import OpticalBlack
from edge_isp.sensor.rawfile import CAMERA_RAW_SUFFIXES, load_raw_with_color

KINDS = ("dark", "flat", "scene")
SUFFIXES = (".npy", ".raw", ".bin", ".pgm", *CAMERA_RAW_SUFFIXES)
MANIFEST = "manifest.json"
_MANIFEST_KEYS = {
    "kind", "exposure_time_s", "analogue_gain", "width", "height", "format", "stride", "msb_shift",
    "cfa", "black_level", "white_level", "bit_depth", "base_iso", "iso",
}  # fmt: skip
_WORDS = {"dark": "dark", "darks": "dark", "black": "dark", "bias": "dark", "flat": "flat", "flats": "flat"}
_WORDS.update({"white": "flat", "light": "flat"})
DARK_LEVEL_FRACTION = 0.01
GROUP_TOLERANCE = 0.02


@dataclasses.dataclass(frozen=True)
class FrameRef:
    """One frame's metadata, with its pixels read on demand.

    Attributes:
        name: the file name (relative to the folder) or a label, for messages.
        kind: "dark", "flat", "scene", or None when not known.
        analogue_gain, exposure_time_s: the capture settings (from metadata or manifest).
        height, width, cfa, bit_depth, white_level, black_level: as in RawFrame.
        signal_fraction: (mean - black) / (white - black) over a sample of pixels, for
            telling darks from flats and the light levels of a fixed-exposure sweep apart (the
            mean of two frames of one scene differs only by temporal noise, whatever the
            shading; a median would follow the shading's histogram).
        sensor: the sensor name from the metadata.
        iso: the ISO the file states (or the manifest gives), else None.
        optical_black: the file's masked optical-black area, when it has one.
        gain_from_iso: whether ``analogue_gain`` is the ISO relative to the set's lowest
            (a camera raw file with no gain or base ISO given).
    """

    name: str
    kind: str | None
    analogue_gain: float
    exposure_time_s: float
    height: int
    width: int
    cfa: CFA
    bit_depth: int
    white_level: float
    black_level: tuple[float, float, float, float]
    signal_fraction: float
    sensor: str
    iso: float | None
    _loader: Callable[[], RawFrame] = dataclasses.field(repr=False, compare=False)
    optical_black: OpticalBlack | None = None
    gain_from_iso: bool = False

    def load(self) -> RawFrame:
        """Read the pixels (with the manifest's metadata applied)."""
        return self._loader()


def ref_from_frame(frame: RawFrame, kind: str | None, name: str = "frame") -> FrameRef:
    """Wrap an in-memory frame as a :class:`FrameRef`."""
    return FrameRef(
        name=name,
        kind=_check_kind(kind, name),
        analogue_gain=frame.analogue_gain,
        exposure_time_s=frame.exposure_time_s,
        height=frame.height,
        width=frame.width,
        cfa=frame.cfa,
        bit_depth=frame.bit_depth,
        white_level=frame.white_level,
        black_level=frame.black_level,
        signal_fraction=_signal_fraction(frame.data, frame.black_level, frame.white_level),
        sensor=frame.sensor,
        iso=frame.iso,
        _loader=lambda: frame,
    )


def _check_kind(kind: str | None, name: str) -> str | None:
    if kind is not None and kind not in KINDS:
        raise InvalidInputError(f"{name}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return kind


def _signal_fraction(data: np.ndarray, black: Sequence[float], white: float) -> float:
    step = max(1, int(np.sqrt(data.size / 25_000)))
    sample = np.asarray(data[::step, ::step])
    black_mean = float(np.mean(black))
    return (float(sample.mean(dtype=np.float64)) - black_mean) / (white - black_mean)


def _kind_from_path(relative: str) -> str | None:
    words = {w.lower() for w in re.split(r"[^A-Za-z]+", relative) if w}
    found = {_WORDS[w] for w in words if w in _WORDS}
    return found.pop() if len(found) == 1 else None


def _read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    data = read_json(path, "calibration manifest")
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: a manifest must be a JSON object with 'defaults' and/or 'frames'")
    unknown = set(data) - {"defaults", "frames"}
    if unknown:
        raise InvalidInputError(f"{path}: unknown manifest key(s) {sorted(unknown)}; expected 'defaults', 'frames'")
    defaults = data.get("defaults", {})
    frames = data.get("frames", {})
    if isinstance(frames, list):
        try:
            frames = {entry["file"]: {k: v for k, v in entry.items() if k != "file"} for entry in frames}
        except (TypeError, KeyError):
            raise InvalidInputError(f"{path}: each entry of a 'frames' list needs a 'file' key") from None
    out = {"*": defaults, **frames}
    for name, entry in out.items():
        if not isinstance(entry, dict):
            raise InvalidInputError(f"{path}: entry {name!r} must be an object, got {type(entry).__name__}")
        bad = set(entry) - _MANIFEST_KEYS
        if bad:
            raise InvalidInputError(
                f"{path}: entry {name!r} has unknown key(s) {sorted(bad)}; allowed: {', '.join(sorted(_MANIFEST_KEYS))}"
            )
    return out


def _list_files(inputs: Sequence[str | Path]) -> tuple[list[tuple[Path, str]], Path | None]:
    files: list[tuple[Path, str]] = []
    root = None
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise MissingFileError(f"calibration input {path} does not exist")
        if path.is_dir():
            root = root or path
            for f in sorted(path.rglob("*")):
                if f.is_file() and f.suffix.lower() in SUFFIXES:
                    files.append((f, f.relative_to(path).as_posix()))
        else:
            files.append((path, path.name))
    return files, root


def discover(
    inputs: str | Path | Sequence[str | Path],
    *,
    manifest: str | Path | None = None,
    kind: str | None = None,
    **decode: Any,
) -> list[FrameRef]:
    """Find the frames of a calibration set and read their metadata.

    Args:
        inputs: a folder (searched recursively), a file, or a list of them.
        manifest: a manifest file; by default ``manifest.json`` in the (first) folder.
        kind: force every frame's kind (e.g. "dark" for the dark method, "scene" for image).
        decode: defaults for every file, as the manifest's "defaults" (``width``, ``height``,
            ``format``, ``stride``, ``msb_shift``, ``cfa``, ``black_level``, ``white_level``,
            ``bit_depth``, ``analogue_gain``, ``exposure_time_s``, ``base_iso``); None
            values are ignored. The manifest overrides these, per file.

    Raises:
        MissingFileError: an input does not exist.
        InvalidInputError: no frames found, a bad manifest, a file that cannot be read.
    """
    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    files, root = _list_files(inputs)
    if not files:
        raise InvalidInputError(
            f"no raw frames found in {', '.join(map(str, inputs))} (looked for {' '.join(SUFFIXES)})"
        )
    manifest_path = Path(manifest) if manifest is not None else (root / MANIFEST if root else None)
    entries: dict[str, dict[str, Any]] = {"*": {}}
    if manifest_path is not None and manifest_path.exists():
        entries = _read_manifest(manifest_path)
        known = {name for path, relative in files for name in (relative, path.name)}
        absent = sorted(name for name in entries if name != "*" and name not in known)
        if absent:
            shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
            raise MissingFileError(
                f"{manifest_path} describes frame(s) that are not among the inputs: {shown} "
                f"(a typo, or a file not copied?)"
            )
    elif manifest is not None:
        raise MissingFileError(f"manifest {manifest} does not exist")
    cli_defaults = {k: v for k, v in decode.items() if v is not None}
    bad = set(cli_defaults) - _MANIFEST_KEYS
    if bad:
        raise InvalidInputError(f"unknown frame option(s) {sorted(bad)}; allowed: {', '.join(sorted(_MANIFEST_KEYS))}")
    refs = []
    for path, relative in files:
        settings = {**cli_defaults, **entries.get("*", {}), **entries.get(relative, entries.get(path.name, {}))}
        refs.append(_ref_for_file(path, relative, settings, kind))
    return _relative_gains(refs)


def _ref_for_file(path: Path, relative: str, settings: dict[str, Any], forced_kind: str | None) -> FrameRef:
    kind = forced_kind or settings.get("kind") or _kind_from_path(relative)
    options = {
        "width": settings.get("width"), "height": settings.get("height"), "fmt": settings.get("format"),
        "stride": settings.get("stride"), "msb_shift": settings.get("msb_shift"), "cfa": settings.get("cfa"),
        "black_level": settings.get("black_level"), "white_level": settings.get("white_level"),
        "bit_depth": settings.get("bit_depth"), "analogue_gain": settings.get("analogue_gain"),
        "exposure_time_s": settings.get("exposure_time_s"), "base_iso": settings.get("base_iso"),
        "iso": settings.get("iso"),
    }  # fmt: skip
    if path.suffix.lower() not in (".raw", ".bin"):
        for key in ("width", "height", "fmt", "stride", "msb_shift"):
            options[key] = None

    def loader() -> RawFrame:
        return load_raw_with_color(path, **options)[0]

    # Only a sample of the pixels is looked at here (the signal level): a RawFrame file's are
    # mapped, not read (the frame is read in full when a method loads it).
    frame, color = load_raw_with_color(path, mapped=True, **options)
    ref = ref_from_frame(frame, kind, relative)
    # A camera raw file states its ISO, not its gain: the gain waits until all files are seen.
    from_iso = bool(frame.iso) and options["base_iso"] is None and options["analogue_gain"] is None
    return dataclasses.replace(ref, _loader=loader, optical_black=color.get("optical_black"), gain_from_iso=from_iso)


def base_iso_of(refs: Sequence[FrameRef]) -> float | None:
    """The ISO of analogue gain 1 in a set whose frames state ISOs (ISO over gain of the
    lowest-gain such frame), or None when no frame states one."""
    stated = [r for r in refs if r.iso and r.analogue_gain > 0]
    if not stated:
        return None
    lowest = min(stated, key=lambda r: r.analogue_gain)
    return float(lowest.iso / lowest.analogue_gain)


def _relative_gains(refs: list[FrameRef]) -> list[FrameRef]:
    """Give frames known only by their ISO a gain relative to the lowest ISO of the set."""
    isos = [r.iso for r in refs if r.gain_from_iso]
    if not isos:
        return refs
    base = min(isos)
    out = []
    for r in refs:
        if r.gain_from_iso:
            gain = r.iso / base

            def loader(r=r, gain=gain) -> RawFrame:
                return dataclasses.replace(r._loader(), analogue_gain=gain)

            r = dataclasses.replace(r, analogue_gain=gain, _loader=loader)
        out.append(r)
    return out


def check_consistent(refs: Sequence[FrameRef]) -> None:
    """Refuse a set that mixes sensor modes: sizes, CFA, bit depth or white level."""
    for what, key in (
        ("size", lambda r: f"{r.width}x{r.height}"),
        ("CFA pattern", lambda r: r.cfa.value),
        ("bit depth", lambda r: str(r.bit_depth)),
        ("white level", lambda r: f"{r.white_level:g}"),
    ):
        seen: dict[str, list[str]] = {}
        for r in refs:
            seen.setdefault(key(r), []).append(r.name)
        if len(seen) > 1:
            parts = "; ".join(f"{value} ({len(names)} files, e.g. {names[0]})" for value, names in seen.items())
            raise InvalidInputError(
                f"the frames mix more than one {what}: {parts}. A calibration covers one sensor mode: "
                "put each mode's frames in a folder of their own and calibrate them separately"
            )


def assign_dark_flat(refs: Sequence[FrameRef]) -> list[FrameRef]:
    """Give frames of unknown kind "dark" or "flat" by their level (see the module docstring)."""
    out = []
    for r in refs:
        if r.kind is None:
            r = dataclasses.replace(r, kind="dark" if r.signal_fraction < DARK_LEVEL_FRACTION else "flat")
        out.append(r)
    return out


def _cluster(values: Iterable[float], tolerance: float = GROUP_TOLERANCE) -> dict[float, float]:
    """Map each value to the median of its cluster (values within ``tolerance`` relative)."""
    ordered = sorted(set(values))
    clusters: list[list[float]] = []
    for v in ordered:
        if clusters and v <= clusters[-1][0] * (1 + tolerance) + 1e-9:
            clusters[-1].append(v)
        else:
            clusters.append([v])
    return {v: float(np.median(c)) for c in clusters for v in c}


@dataclasses.dataclass(frozen=True)
class FrameGroup:
    """Frames of one kind taken at one gain and exposure (within 2 %)."""

    kind: str
    analogue_gain: float
    exposure_time_s: float
    refs: tuple[FrameRef, ...]

    def frames(self) -> Iterable[RawFrame]:
        """The frames, read one at a time."""
        return (r.load() for r in self.refs)

    def describe(self) -> str:
        return (
            f"{len(self.refs)} {self.kind} frame(s) at gain {self.analogue_gain:g}, "
            f"exposure {self.exposure_time_s * 1e3:g} ms"
        )


def group(refs: Sequence[FrameRef]) -> dict[float, list[FrameGroup]]:
    """Group frames by gain, then by (kind, exposure); groups sorted by kind and exposure.

    Returns ``{gain: [FrameGroup, ...]}`` with gains sorted ascending.
    """
    gain_of = _cluster(r.analogue_gain for r in refs)
    exposure_of = _cluster(r.exposure_time_s for r in refs)
    buckets: dict[tuple[float, str, float], list[FrameRef]] = {}
    for r in refs:
        if r.kind is None:
            raise InvalidInputError(f"{r.name}: its kind (dark, flat or scene) is not known")
        buckets.setdefault((gain_of[r.analogue_gain], r.kind, exposure_of[r.exposure_time_s]), []).append(r)
    out: dict[float, list[FrameGroup]] = {}
    for gain, kind, exposure in sorted(buckets):
        out.setdefault(gain, []).append(FrameGroup(kind, gain, exposure, tuple(buckets[(gain, kind, exposure)])))
    return out


def save_frames(folder: str | Path, items: Iterable[tuple[str, RawFrame]]) -> list[Path]:
    """Save (kind, frame) pairs as RawFrame files ``gain<g>/<kind>_<exposure us>us_<n>`` and
    a ``manifest.json`` recording each file's kind, so :func:`discover` reads them back.

    Frames are written as they come (a capture can be long); returns the ``.npy`` paths.
    """
    folder = Path(folder)
    counts: dict[str, int] = {}
    paths, entries = [], {}
    for kind, frame in items:
        _check_kind(kind, "frame")
        stem = f"gain{frame.analogue_gain:g}/{kind}_{round(frame.exposure_time_s * 1e6):08d}us"
        counts[stem] = counts.get(stem, 0) + 1
        path = frame.save(folder / f"{stem}_{counts[stem]:03d}")
        paths.append(path)
        entries[path.relative_to(folder).as_posix()] = {"kind": kind}
    write_json(folder / MANIFEST, {"frames": entries})
    return paths
