"""Replay a folder of recorded frames as a camera: RawFrame pairs (``NAME.npy`` + ``NAME.json``,
what ``edge-isp record`` writes) and camera raw files (DNG...), in file-name order.

Frames are read from disk one at a time (a long recording never sits in memory), once
(:class:`SourceEnded` after the last) or looping, at the recorded rate (from the frames'
timestamps), at a given rate, or as fast as they are asked for. A ``recording.json``
manifest written by :func:`edge_isp.runtime.record.record`, when present, supplies the
ground truth of a recorded simulation (:attr:`ReplaySource.last_truth`).

A frame that cannot be read (a 0-byte or truncated ``.npy``, a bad sidecar, a frame of
another size than the recording's first) is a camera error (:class:`SourceError`): the
pipeline counts it and the replay goes on with the next frame.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.runtime.interfaces import CameraSource, SourceEnded, SourceError
from edge_isp.runtime.sources.clock import Clock, Pacer, SystemClock, check_fps
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.rawfile import CAMERA_RAW_SUFFIXES, load_raw

log = logging.getLogger(__name__)

MANIFEST = "recording.json"
DEFAULT_FPS = 30.0
# A recorded gap longer than this is a pause in the recording, not the frame rate.
MAX_RECORDED_INTERVAL_S = 2.0


def list_recording(folder: str | Path) -> list[Path]:
    """The replayable frames in ``folder``, sorted by name: each RawFrame pair as its
    ``.npy`` path, each camera raw file as itself.

    A ``.npy`` without its ``.json`` (or the reverse) is skipped with a warning: it is the
    trace of a recording interrupted mid-frame.

    Raises:
        MissingFileError: ``folder`` does not exist.
        InvalidInputError: it is not a folder, or holds no frame.
    """
    folder = Path(folder)
    if not folder.exists():
        raise MissingFileError(f"replay folder {folder} does not exist")
    if not folder.is_dir():
        raise InvalidInputError(f"replay needs a folder of frames, {folder} is a file")
    names = {p.name for p in folder.iterdir() if p.is_file()}
    frames, orphans = [], []
    for name in sorted(names):
        path = folder / name
        stem, suffix = path.stem, path.suffix.lower()
        if suffix == ".npy":
            (frames if f"{stem}.json" in names else orphans).append(path)
        elif suffix == ".json" and name != MANIFEST and f"{stem}.npy" not in names:
            orphans.append(path)
        elif suffix in CAMERA_RAW_SUFFIXES:
            frames.append(path)
    if orphans:
        shown = ", ".join(p.name for p in orphans[:5])
        log.warning("replay %s: skipping %d unpaired file(s): %s", folder, len(orphans), shown)
    if not frames:
        raise InvalidInputError(
            f"replay folder {folder} holds no frames: expected RawFrame pairs (NAME.npy + NAME.json, as written by "
            f"'edge-isp record') or camera raw files ({', '.join(CAMERA_RAW_SUFFIXES[:4])}...)"
        )
    return sorted(frames, key=lambda p: p.name)


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The folder's ``recording.json``, or None if it has none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def recorded_interval(previous: float | None, current: float | None, fallback_s: float) -> float:
    """Seconds between two recorded timestamps, or ``fallback_s`` where they do not give a
    plausible frame interval (missing, not increasing, or a pause longer than
    :data:`MAX_RECORDED_INTERVAL_S`)."""
    if previous is None or current is None:
        return fallback_s
    delta = float(current) - float(previous)
    if not (math.isfinite(delta) and 0 < delta <= MAX_RECORDED_INTERVAL_S):
        return fallback_s
    return delta


class ReplaySource(CameraSource):
    """Frames from a folder (see the module docstring).

    Args:
        folder: the recording.
        loop: start again after the last frame instead of ending.
        fps: replay at this rate; None replays at the recorded rate (from the RawFrames'
            timestamps; ``default_fps`` where they are missing, and for camera raw files,
            whose EXIF time has a one-second resolution).
        paced: False delivers frames as fast as they are read (``fps`` is then unused).
        restamp: give each frame the replay clock's time as its timestamp, so timestamps
            keep increasing across loops; False keeps the recorded ones.
        default_fps: the rate where the recording has no usable timestamps.
        clock: time source (tests pass a :class:`ManualClock`).
    """

    name = "replay"

    def __init__(
        self,
        folder: str | Path,
        *,
        loop: bool = False,
        fps: float | None = None,
        paced: bool = True,
        restamp: bool = True,
        default_fps: float = DEFAULT_FPS,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.loop = bool(loop)
        self.fps = None if fps is None else check_fps(fps)
        self.default_fps = check_fps(default_fps, "default_fps")
        self.paced = bool(paced)
        self.restamp = bool(restamp)
        self.clock = clock or SystemClock()
        self._pacer = Pacer(self.clock)
        self.files: list[Path] = []
        self.position = 0
        self.loops = 0
        self.sequence = -1
        self.last_truth: dict[str, Any] | None = None
        self.class_names: list[str] | None = None
        self.frame_size: tuple[int, int] | None = None  # (width, height) of the first good frame
        self._truth: dict[str, dict[str, Any]] = {}
        self._previous_stamp: float | None = None

    def _open(self) -> None:
        self.files = list_recording(self.folder)
        manifest = read_manifest(self.folder) or {}
        self.class_names = manifest.get("class_names")
        self._truth = {str(entry["name"]): entry for entry in manifest.get("truth", []) if "name" in entry}
        self.position, self.loops, self.sequence = 0, 0, -1
        self._previous_stamp = None
        self.frame_size = None
        self._pacer.reset()

    def _close(self) -> None:
        self._pacer.reset()

    def _read(self, timeout_s: float | None) -> RawFrame:
        if self.position >= len(self.files):
            if not self.loop:
                raise SourceEnded(f"replay of {self.folder} ended after {len(self.files)} frame(s)")
            self.position = 0
            self.loops += 1
            self._previous_stamp = None  # the wrap-around is not a recorded interval
        path = self.files[self.position]
        is_pair = path.suffix.lower() == ".npy"
        try:
            frame = RawFrame.load(path) if is_pair else load_raw(path)
            self._check_size(frame, path)
        except (InvalidInputError, OSError) as exc:  # the file is skipped, as a camera drops a frame
            self.position += 1
            raise SourceError(f"replay frame {path.name} skipped: {exc}") from exc
        # A camera raw file's time comes from EXIF, to the second: no use for pacing.
        stamp = frame.timestamp_s if is_pair else None
        if self.paced:
            fallback = 1.0 / (self.fps or self.default_fps)
            interval = fallback if self.fps else recorded_interval(self._previous_stamp, stamp, fallback)
            now = self._pacer.wait(interval)
        else:
            now = self.clock.monotonic()
        self._previous_stamp = stamp
        self.position += 1
        self.sequence += 1
        entry = self._truth.get(path.stem)
        self.last_truth = _truth_arrays(entry) if entry is not None else None
        if self.restamp:
            frame = dataclasses.replace(frame, timestamp_s=now)
        return frame

    def _check_size(self, frame: RawFrame, path: Path) -> None:
        size = (frame.width, frame.height)
        if self.frame_size is None:
            self.frame_size = size
        elif size != self.frame_size:
            raise InvalidInputError(
                f"{path.name} is {size[0]}x{size[1]}, but the recording's frames are "
                f"{self.frame_size[0]}x{self.frame_size[1]}"
            )

    def __len__(self) -> int:
        """Frames in one pass (0 before :meth:`open`)."""
        return len(self.files)


def _truth_arrays(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "boxes": np.asarray(entry.get("boxes", []), dtype=np.float32).reshape(-1, 4),
        "labels": np.asarray(entry.get("labels", []), dtype=np.int64),
        "visible_fraction": np.asarray(entry.get("visible_fraction", []), dtype=np.float32),
        "frame": entry.get("name"),
    }
