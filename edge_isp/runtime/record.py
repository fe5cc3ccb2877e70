"""Record any camera source to a folder that :class:`~edge_isp.runtime.sources.ReplaySource`
plays back: ``000000.npy`` + ``000000.json`` (a RawFrame pair), one pair per frame, plus a
``recording.json`` manifest (source, frame count, measured rate and, for a simulated source,
the ground truth of every frame).

Each frame is written atomically (:meth:`RawFrame.save`), as it arrives, so a recording
stopped at any point holds every frame up to there. Ctrl-C or SIGTERM stops it cleanly
after the frame being written (a second Ctrl-C stops it at once); the manifest is always
written last.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge_isp import __version__
from edge_isp.errors import InvalidInputError
from edge_isp.fileio import write_json
from edge_isp.runtime.interfaces import CameraSource, SourceEnded
from edge_isp.runtime.sources.clock import Clock, SystemClock
from edge_isp.runtime.sources.replay import MANIFEST

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "edge-isp/recording"
MANIFEST_VERSION = 1
_RECORDING_FILE = re.compile(r"^\d{6,}\.(npy|json)$")


@dataclasses.dataclass(frozen=True)
class RecordResult:
    """What :func:`record` did.

    Attributes:
        folder: the recording.
        frames: frames written.
        seconds: time from the source opening to the end of the recording (the clock's seconds).
        interrupted: stopped by Ctrl-C/SIGTERM or the ``stop`` event.
        ended: the source ran out of frames (a replay played once).
        manifest: the manifest's path.
    """

    folder: Path
    frames: int
    seconds: float
    interrupted: bool
    ended: bool
    manifest: Path


def frame_name(index: int) -> str:
    """The file stem of frame ``index``: ``000042``."""
    return f"{index:06d}"


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out} is a file; recording needs a folder")
    if out.is_dir():
        present = [p for p in out.iterdir() if _RECORDING_FILE.match(p.name) or p.name == MANIFEST]
        if present and not overwrite:
            raise InvalidInputError(
                f"{out} already holds a recording ({len(present)} file(s)); choose another folder or overwrite it"
            )
        for path in present:
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While recording, Ctrl-C and SIGTERM set ``stop``; a second Ctrl-C interrupts at once.
    Only the main thread can install handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Progress:
    """tqdm when installed (it is not part of the base install on a board), else a line on stderr."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self.bar = None
        self.enabled = enabled
        self.count = 0
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, unit="frame", desc="recording", leave=True)

    def update(self) -> None:
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled and self.count % 30 == 0:
            print(f"\rrecorded {self.count} frames", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.count >= 30:
            print(file=sys.stderr)


def _truth_entry(name: str, truth: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "boxes": [[float(v) for v in box] for box in truth.get("boxes", [])],
        "labels": [int(v) for v in truth.get("labels", [])],
        "visible_fraction": [round(float(v), 4) for v in truth.get("visible_fraction", [])],
    }


def record(
    source: CameraSource,
    out: str | Path,
    *,
    frames: int | None = None,
    seconds: float | None = None,
    progress: bool = False,
    overwrite: bool = False,
    stop: threading.Event | None = None,
    handle_signals: bool = True,
    clock: Clock | None = None,
) -> RecordResult:
    """Record ``source`` into the folder ``out`` (see the module docstring).

    Args:
        source: any camera source; opened and closed here.
        out: the folder (created; refused if it already holds a recording, unless
            ``overwrite``, which deletes that recording's files first).
        frames: stop after this many frames.
        seconds: keep the frames that arrive within this many seconds of the source opening.
        progress: show a progress bar.
        stop: an event another thread can set to stop the recording.
        handle_signals: turn Ctrl-C/SIGTERM into a clean stop (main thread only).
        clock: time source for ``seconds``.

    Without ``frames`` and ``seconds`` it records until stopped or the source ends. A
    :class:`SourceError` from the source stops the recording (wrap a camera in
    :class:`~edge_isp.runtime.sources.RetryingSource` to ride out failures); the frames
    written so far and the manifest stay valid, and the error is raised.
    """
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int) or frames < 1):
        raise InvalidInputError(f"frames must be a positive integer, got {frames!r}")
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise InvalidInputError(f"seconds must be a positive number, got {seconds!r}")
    out = Path(out)
    _prepare(out, overwrite)
    clock = clock or SystemClock()
    stop = stop or threading.Event()
    count, ended, truth, stamps = 0, False, [], []
    started_unix, started = time.time(), clock.monotonic()
    bar = _Progress(progress, frames)
    guard = _stop_on_signals(stop) if handle_signals else contextlib.nullcontext()

    def time_is_up() -> bool:
        return seconds is not None and clock.monotonic() - started > seconds

    try:
        with guard, source:
            started = clock.monotonic()
            while not stop.is_set() and not time_is_up():
                if frames is not None and count >= frames:
                    break
                try:
                    frame = source.read()
                except SourceEnded:
                    ended = True
                    break
                if time_is_up():  # it arrived after the end of the window
                    break
                name = frame_name(count)
                frame.save(out / name)
                count += 1
                stamps.append(frame.timestamp_s)
                last_truth = getattr(source, "last_truth", None)
                if last_truth is not None:
                    truth.append(_truth_entry(name, last_truth))
                bar.update()
    finally:
        bar.close()
        elapsed = clock.monotonic() - started
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "edge_isp": __version__,
            "source": source.name,
            "frames": count,
            "started_unix": started_unix,
            "seconds": elapsed,
            "fps": _measured_fps(stamps),
            "interrupted": stop.is_set(),
            "ended": ended,
            "class_names": getattr(source, "class_names", None),
            "truth": truth,
        }
        write_json(out / MANIFEST, manifest)
    log.info("recorded %d frame(s) to %s in %.1f s", count, out, elapsed)
    return RecordResult(out, count, elapsed, stop.is_set(), ended, out / MANIFEST)


def _measured_fps(stamps: list[float | None]) -> float | None:
    """Frames per second from the first and last timestamps, if there are two of them."""
    known = [s for s in stamps if s is not None]
    if len(known) < 2 or known[-1] <= known[0]:
        return None
    return (len(known) - 1) / (known[-1] - known[0])
