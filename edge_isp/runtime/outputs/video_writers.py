"""Video files for the recording: H.264 in fragmented MP4 through GStreamer, else MPEG-4 Part 2
in plain MP4 through OpenCV.

GStreamer (where its Python bindings and an H.264 encoder are installed) is the first choice:
``appsrc ! <encoder chain> ! mp4mux fragment-duration=... ! filesink``, with the encoder
:func:`~edge_isp.runtime.outputs.rtsp.choose_h264_encoder` picks (the board's hardware encoder
where it has one, else x264). A fragmented MP4 is playable up to its last complete fragment
at any moment, so a killed recorder leaves a file that plays (browsers play H.264 MP4 too).

OpenCV's writer is the fallback. The FFmpeg inside the opencv-python wheels has no H.264
encoder, and asking it for one prints ``[ERROR] h264_v4l2m2m`` lines on some boards, so it
is not asked: the fallback writes ``mp4v``, whose index is written at the end (the Recorder
writes it as ``.partial.mp4`` until finalized) and which browsers do not play.

A writer has ``write(bgr_image)`` and ``release()``, like ``cv2.VideoWriter``; its
``description`` names the codec and encoder.
"""

from __future__ import annotations

import logging
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.runtime.outputs.rtsp import KNOWN_ELEMENTS, H264Encoder, choose_h264_encoder, read_board_model

log = logging.getLogger(__name__)

WRITERS = ("auto", "gstreamer", "opencv")
FRAGMENT_MS = 1000
GST_MUX_ELEMENTS = ("mp4mux", "filesink")
EOS_TIMEOUT_S = 10.0


def load_gst() -> Any | None:
    """GStreamer's ``Gst`` module, initialized, or None where it or its bindings are missing."""
    from edge_isp.runtime.native import prefer_libgcc_unwinder

    prefer_libgcc_unwinder()
    try:
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
    except (ImportError, ValueError):  # gi.require_version raises ValueError for a missing typelib
        return None
    Gst.init(None)
    return Gst


def gstreamer_encoder(gst: Any) -> H264Encoder | None:
    """The H.264 encoder GStreamer would record with here, or None (missing element)."""
    available = {n for n in (*KNOWN_ELEMENTS, *GST_MUX_ELEMENTS) if gst.ElementFactory.find(n) is not None}
    try:
        encoder = choose_h264_encoder(available, read_board_model())
    except Exception:  # MissingDependencyError: no encoder at all
        return None
    needed = [n for n in encoder.needs if n != "rtph264pay"] + list(GST_MUX_ELEMENTS)
    return encoder if all(n in available for n in needed) else None


def record_launch(encoder: H264Encoder, path: Path, fps: float, size_wh: tuple[int, int]) -> str:
    """The gst-launch description of a recording: BGR frames in, fragmented MP4 out."""
    rate = Fraction(fps).limit_denominator(1001)
    caps = (
        f"video/x-raw,format=BGR,width={size_wh[0]},height={size_wh[1]},framerate={rate.numerator}/{rate.denominator}"
    )
    gop = max(1, round(fps))
    location = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return (
        f"appsrc name=src format=time block=true caps={caps} ! {encoder.chain(4000, gop)} ! "
        f'mp4mux fragment-duration={FRAGMENT_MS} streamable=true ! filesink location="{location}"'
    )


class GstMp4Writer:
    """H.264 in fragmented MP4 through a GStreamer pipeline (see the module docstring)."""

    def __init__(self, gst: Any, encoder: H264Encoder, path: Path, fps: float, size_wh: tuple[int, int]) -> None:
        self._gst, self.size_wh, self.fps = gst, size_wh, float(fps)
        self.description = f"H.264 ({encoder.element}) in fragmented MP4, GStreamer"
        self._pipeline = gst.parse_launch(record_launch(encoder, path, fps, size_wh))
        self._src = self._pipeline.get_by_name("src")
        self._frames = 0
        self._lock = threading.Lock()
        if self._pipeline.set_state(gst.State.PLAYING) == gst.StateChangeReturn.FAILURE:
            self._pipeline.set_state(gst.State.NULL)
            raise InvalidInputError(f"GStreamer cannot start recording to {path} with {encoder.element}")

    def write(self, image: np.ndarray) -> None:
        height, width = image.shape[:2]
        if (width, height) != self.size_wh:
            raise InvalidInputError(f"frame of {width}x{height} given to a {self.size_wh[0]}x{self.size_wh[1]} video")
        gst = self._gst
        buffer = gst.Buffer.new_wrapped(np.ascontiguousarray(image).tobytes())
        duration = int(gst.SECOND / self.fps)
        buffer.pts, buffer.duration = self._frames * duration, duration
        self._frames += 1
        result = self._src.emit("push-buffer", buffer)
        if result != gst.FlowReturn.OK:
            raise InvalidInputError(f"GStreamer refused a frame of the recording ({result.value_nick})")
        self._check_bus()

    def _check_bus(self) -> None:
        message = self._pipeline.get_bus().pop_filtered(self._gst.MessageType.ERROR)
        if message is not None:
            error, debug = message.parse_error()
            raise InvalidInputError(f"recording failed in GStreamer: {error.message} ({debug})")

    def release(self) -> None:
        """End the stream (the muxer writes its last fragment) and stop the pipeline."""
        with self._lock:
            if self._pipeline is None:
                return
            gst = self._gst
            self._src.emit("end-of-stream")
            bus = self._pipeline.get_bus()
            message = bus.timed_pop_filtered(
                int(EOS_TIMEOUT_S * gst.SECOND), gst.MessageType.EOS | gst.MessageType.ERROR
            )
            self._pipeline.set_state(gst.State.NULL)
            self._pipeline = None
            if message is None:
                log.warning("recording: GStreamer did not finish the file within %.0f s", EOS_TIMEOUT_S)
            elif message.type == gst.MessageType.ERROR:
                error, debug = message.parse_error()
                raise InvalidInputError(f"recording failed in GStreamer: {error.message} ({debug})")


class OpenCvMp4Writer:
    """MPEG-4 Part 2 (``mp4v``) in plain MP4 through OpenCV (see the module docstring)."""

    description = "MPEG-4 Part 2 (mp4v) in MP4, OpenCV (not H.264: browsers do not play it)"

    def __init__(self, path: Path, fps: float, size_wh: tuple[int, int]) -> None:
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size_wh)
        if not self._writer.isOpened():
            self._writer.release()
            path.unlink(missing_ok=True)
            raise InvalidInputError(f"OpenCV cannot write MP4 (mp4v) to {path}")

    def write(self, image: np.ndarray) -> None:
        self._writer.write(np.ascontiguousarray(image))

    def release(self) -> None:
        self._writer.release()


def choose_writer(kind: str = "auto") -> tuple[str, Any, H264Encoder | None]:
    """``(kind, Gst or None, encoder or None)`` for ``kind`` "auto", "gstreamer" or "opencv":
    auto takes GStreamer where it and an H.264 encoder are installed. Asking for "gstreamer"
    where it is missing is refused with what to install."""
    if kind not in WRITERS:
        raise InvalidInputError(f"video writer must be one of {', '.join(WRITERS)}, got {kind!r}")
    if kind == "opencv":
        return "opencv", None, None
    gst = load_gst()
    encoder = gstreamer_encoder(gst) if gst is not None else None
    if encoder is not None:
        return "gstreamer", gst, encoder
    if kind == "gstreamer":
        raise InvalidInputError(
            "recording H.264 needs GStreamer's Python bindings (python3-gi, gir1.2-gstreamer-1.0), an H.264 "
            "encoder (gstreamer1.0-plugins-ugly for x264enc) and mp4mux (gstreamer1.0-plugins-good)"
        )
    return "opencv", None, None


def open_video_writer(path: Path, fps: float, size_wh: tuple[int, int], kind: str = "auto") -> Any:
    """An open writer of ``size_wh`` (width, height) BGR frames to ``path`` (see :func:`choose_writer`)."""
    chosen, gst, encoder = choose_writer(kind)
    if chosen == "gstreamer":
        return GstMp4Writer(gst, encoder, path, fps, size_wh)
    return OpenCvMp4Writer(path, fps, size_wh)
