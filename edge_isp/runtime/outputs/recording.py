"""Recording: the annotated video as MP4 segments and every frame's results as JSON lines.

A session in ``DIR`` writes ``NAME-000.mp4``, ``NAME-001.mp4``... (one segment per
``segment_s`` seconds of video) and ``NAME.jsonl`` (one JSON object per recorded frame, with
the segment file and the frame's position in it). The video is H.264 in fragmented MP4
through GStreamer where it is installed (the board's hardware encoder where there is one),
else OpenCV's mp4v (:mod:`~edge_isp.runtime.outputs.video_writers`), at ``size_wh`` when
given (the source's resolution) else at the frames' own size. Crash safety:

- a fragmented MP4 plays up to its last fragment (one second) at any moment: each segment is
  written under its final name, and a hard crash loses under a second of video;
- OpenCV's MP4 is only playable once finalized (its index is written at the end), so each
  segment is written as ``NAME-KKK.partial.mp4`` and renamed when finalized: on rotation and
  on :meth:`Recorder.close` (which the pipeline calls on Ctrl-C/SIGTERM). A hard crash loses
  at most the segment in progress, and never leaves a file that looks finished but is not;
- each JSON line is written in one call and flushed, so a crash leaves complete lines.

:meth:`Recorder.publish` hands the frame to a writer thread through a bounded queue and never
waits: when the disk cannot keep up, frames are dropped from the recording (video and JSON
together, so they stay aligned) and counted in :attr:`Recorder.dropped`.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.fileio import jsonable
from edge_isp.runtime.interfaces import FrameResult, Output
from edge_isp.runtime.outputs.video_writers import choose_writer, open_video_writer

log = logging.getLogger(__name__)

_STOP = object()


def _even(size_wh: tuple[int, int]) -> tuple[int, int]:
    return int(size_wh[0]) // 2 * 2, int(size_wh[1]) // 2 * 2


class Recorder(Output):
    """Records FrameResults to ``directory`` (see the module docstring).

    Args:
        directory: created if missing.
        fps: the video's frame rate (the source's nominal rate).
        segment_s: seconds of video per MP4 file; None for one file.
        name: the session's file stem; default ``rec-YYYYmmdd-HHMMSS``.
        queue_frames: frames the writer may fall behind before frames are dropped.
        size_wh: (width, height) to record at (the source's resolution), None for the frames' own;
            or a callable giving it (or None), asked at the first frame.
        writer: "auto" (GStreamer's H.264 where installed, else OpenCV), "gstreamer" or "opencv".
        numbered: False for one file ``NAME.mp4`` (with ``segment_s=None``), as `--record out.mp4` asks.
    """

    name = "record"

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        fps: float = 30.0,
        segment_s: float | None = 60.0,
        name: str | None = None,
        queue_frames: int = 64,
        size_wh: tuple[int, int] | Callable[[], tuple[int, int] | None] | None = None,
        writer: str = "auto",
        numbered: bool = True,
    ) -> None:
        if not fps > 0:
            raise InvalidInputError(f"recording fps must be > 0, got {fps}")
        if segment_s is not None and not segment_s > 0:
            raise InvalidInputError(f"segment_s must be > 0 or None, got {segment_s}")
        if queue_frames < 1:
            raise InvalidInputError(f"queue_frames must be >= 1, got {queue_frames}")
        if not numbered and segment_s is not None:
            raise InvalidInputError("one unnumbered file cannot be split into segments: give segment_s=None")
        self.directory = Path(directory)
        self.fps = float(fps)
        self.segment_frames = None if segment_s is None else max(1, round(segment_s * fps))
        self.stem = name or time.strftime("rec-%Y%m%d-%H%M%S")
        self.dropped = 0
        self.recorded = 0
        self.segments: list[Path] = []
        self._size_source = size_wh if callable(size_wh) else None
        self.size_wh = None if size_wh is None or callable(size_wh) else _even(size_wh)
        self.writer_kind = writer
        self.numbered = bool(numbered)
        self.codec: str | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=queue_frames)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._writer: cv2.VideoWriter | None = None
        self._partial: Path | None = None
        self._size_wh: tuple[int, int] | None = None
        self._segment_index = 0
        self._segment_count = 0
        self._jsonl = None

    @property
    def jsonl_path(self) -> Path:
        return self.directory / f"{self.stem}.jsonl"

    def open(self) -> Recorder:
        if self._thread is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.jsonl_path.exists() or any(self.directory.glob(f"{self.stem}-*.mp4")) or self._video_name().exists():
            raise InvalidInputError(f"a recording named {self.stem!r} already exists in {self.directory}")
        self.writer_kind = choose_writer(self.writer_kind)[0]
        self._jsonl = open(self.jsonl_path, "x", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._thread = threading.Thread(target=self._run, name="record-writer")
        self._thread.start()
        return self

    def publish(self, result: FrameResult) -> None:
        if self._thread is None:
            raise InvalidInputError("the recorder is not open; use it as a context manager")
        if self._error is not None:
            raise InvalidInputError(f"recording to {self.directory} failed: {self._error}") from self._error
        image = result.annotated
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InvalidInputError(
                f"FrameResult.annotated must be an (H, W, 3) uint8 BGR array, got "
                f"{getattr(image, 'shape', type(image).__name__)} {getattr(image, 'dtype', '')}"
            )
        try:
            self._queue.put_nowait(result)
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)  # waits for room: close may block, publish never does
        self._thread.join()
        self._thread = None
        self._finish_segment()
        if self._jsonl is not None:
            self._jsonl.flush()
            os.fsync(self._jsonl.fileno())
            self._jsonl.close()
            self._jsonl = None
        if self.dropped:
            log.warning("recording dropped %d frames: the disk did not keep up", self.dropped)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:
                continue
            try:
                self._write(item)
            except Exception as exc:  # reported to the pipeline by the next publish()
                log.exception("recording failed")
                self._error = exc

    def _video_name(self, partial: bool = False) -> Path:
        number = f"-{self._segment_index:03d}" if self.numbered else ""
        return self.directory / f"{self.stem}{number}{'.partial' if partial else ''}.mp4"

    def _write(self, result: FrameResult) -> None:
        if self._size_source is not None:
            size, self._size_source = self._size_source(), None
            self.size_wh = None if size is None else _even(size)
        image = result.annotated
        if self.size_wh is not None and image.shape[1::-1] != self.size_wh:
            image = cv2.resize(image, self.size_wh, interpolation=cv2.INTER_LINEAR)
        image = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]  # H.264's 4:2:0 needs even sizes
        height, width = image.shape[:2]
        full = self.segment_frames is not None and self._segment_count >= self.segment_frames
        if self._writer is None or full or self._size_wh != (width, height):
            self._finish_segment()
            # A fragmented MP4 plays while written: it takes its final name at once.
            self._partial = self._video_name(partial=self.writer_kind != "gstreamer")
            self._writer = open_video_writer(self._partial, self.fps, (width, height), self.writer_kind)
            if self.codec is None:
                log.info("recording %s into %s", self._writer.description, self.directory)
            self.codec = self._writer.description
            self._size_wh = (width, height)
            self._segment_count = 0
        self._writer.write(np.ascontiguousarray(image))
        line = {
            "frame": result.index,
            "timestamp_s": result.timestamp_s,
            "video": self._video_name().name,
            "video_frame": self._segment_count,
            "results": result.results,
            "latency_ms": result.latency_ms,
        }
        self._jsonl.write(json.dumps(line, default=jsonable) + "\n")
        self._jsonl.flush()
        self._segment_count += 1
        self.recorded += 1

    def _finish_segment(self) -> None:
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        final = self._partial.with_name(self._partial.name.replace(".partial.mp4", ".mp4"))
        if final != self._partial:
            os.replace(self._partial, final)
        self.segments.append(final)
        self._segment_index += 1
        self._partial = None
