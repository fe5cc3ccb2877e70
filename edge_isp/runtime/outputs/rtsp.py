"""RTSP output: the annotated video as H.264 through GStreamer's RTSP server.

The encoder is chosen by :func:`choose_h264_encoder`, pure logic over the names of the
GStreamer elements installed: NVIDIA's ``nvv4l2h264enc`` on a Jetson with NVENC, the
Raspberry Pi's ``v4l2h264enc`` (Pi 4; the Pi 5 has no H.264 encoder), else ``x264enc`` in
software (also on the Orin Nano, which has no hardware encoder although JetPack installs
``nvv4l2h264enc``), else ``openh264enc``.

GStreamer and its Python bindings are imported when the output opens; when they are missing
the error names the Debian packages to install.

One shared media pipeline serves every RTSP client: ``appsrc ! <encoder chain> !
rtph264pay``. :meth:`RtspOutput.publish` stores the frame in a latest-value slot and a feeder
thread pushes the newest frame into the pipeline while it has room (``need-data`` /
``enough-data``), so a slow encoder or network drops frames and never blocks the pipeline.
RTSP has no access token here: bind 127.0.0.1 (the default) unless the network is trusted.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Collection
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError, MissingDependencyError
from edge_isp.runtime.interfaces import FrameResult, Output
from edge_isp.runtime.outputs.slots import LatestSlot

log = logging.getLogger(__name__)

ENCODER_PREFERENCE = ("nvv4l2h264enc", "v4l2h264enc", "x264enc", "openh264enc")
HARDWARE_ENCODERS = frozenset({"nvv4l2h264enc", "v4l2h264enc"})
# Which Debian/JetPack package provides each element we may use.
ELEMENT_PACKAGES = {
    "appsrc": "gstreamer1.0-plugins-base",
    "videoconvert": "gstreamer1.0-plugins-base",
    "rtph264pay": "gstreamer1.0-plugins-good",
    "h264parse": "gstreamer1.0-plugins-bad",
    "x264enc": "gstreamer1.0-plugins-ugly",
    "openh264enc": "gstreamer1.0-plugins-bad",
    "v4l2h264enc": "gstreamer1.0-plugins-good",
    "nvv4l2h264enc": "nvidia-l4t-gstreamer",
    "nvvidconv": "nvidia-l4t-gstreamer",
}
KNOWN_ELEMENTS = tuple(ELEMENT_PACKAGES)
DEBIAN_PACKAGES = (
    "python3-gi",
    "gir1.2-gstreamer-1.0",
    "gir1.2-gst-rtsp-server-1.0",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad",
    "gstreamer1.0-plugins-ugly",
)


@dataclasses.dataclass(frozen=True)
class H264Encoder:
    """An H.264 encoder element and the chain from raw BGR frames to an H.264 stream."""

    element: str
    hardware: bool

    def chain(self, bitrate_kbps: int, gop_frames: int) -> str:
        """The gst-launch description from BGR ``video/x-raw`` to parsed ``video/x-h264``."""
        if self.element == "nvv4l2h264enc":
            # nvvidconv takes 4-byte pixels only, and moves the frame into NVMM memory for NVENC.
            return (
                "videoconvert ! video/x-raw,format=BGRx ! nvvidconv ! video/x-raw(memory:NVMM),format=I420 ! "
                f"nvv4l2h264enc bitrate={bitrate_kbps * 1000} iframeinterval={gop_frames} "
                "insert-sps-pps=true maxperf-enable=true ! h264parse"
            )
        if self.element == "v4l2h264enc":
            controls = (
                f"controls,video_bitrate={bitrate_kbps * 1000},h264_i_frame_period={gop_frames},"
                "repeat_sequence_header=1"
            )
            return (
                "videoconvert ! video/x-raw,format=I420 ! "
                f'v4l2h264enc extra-controls="{controls}" ! video/x-h264,level=(string)4 ! h264parse'
            )
        if self.element == "x264enc":
            return (
                "videoconvert ! video/x-raw,format=I420 ! "
                f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={bitrate_kbps} key-int-max={gop_frames} ! "
                "video/x-h264,profile=baseline ! h264parse"
            )
        if self.element == "openh264enc":
            return (
                "videoconvert ! video/x-raw,format=I420 ! "
                f"openh264enc bitrate={bitrate_kbps * 1000} gop-size={gop_frames} complexity=low ! h264parse"
            )
        raise InvalidInputError(f"unknown H.264 encoder {self.element!r}; known: {ENCODER_PREFERENCE}")

    @property
    def needs(self) -> tuple[str, ...]:
        """Every element the whole media pipeline needs with this encoder."""
        extra = ("nvvidconv",) if self.element == "nvv4l2h264enc" else ()
        return ("appsrc", "videoconvert", self.element, *extra, "h264parse", "rtph264pay")


def choose_h264_encoder(available: Collection[str], board_model: str = "", prefer: str | None = None) -> H264Encoder:
    """Pick the H.264 encoder from the installed GStreamer element names.

    Args:
        available: names of installed elements (e.g. from ``Gst.ElementFactory.find``).
        board_model: the device-tree model string (``/proc/device-tree/model``), "" if none.
        prefer: an encoder element the user asked for; refused when it is not installed.
    """
    usable = [name for name in ENCODER_PREFERENCE if name in available]
    if "orin nano" in board_model.lower() and "nvv4l2h264enc" in usable:
        usable.remove("nvv4l2h264enc")  # JetPack ships the element, but the Orin Nano has no NVENC
    if "nvv4l2h264enc" in usable and "nvvidconv" not in available:
        usable.remove("nvv4l2h264enc")
    if prefer is not None:
        if prefer not in usable:
            raise InvalidInputError(f"H.264 encoder {prefer!r} is not usable here; usable: {usable or 'none'}")
        usable = [prefer]
    if not usable:
        raise MissingDependencyError(
            "RTSP streaming needs a GStreamer H.264 encoder and none is installed; for x264enc: "
            "sudo apt-get install gstreamer1.0-plugins-ugly"
        )
    return H264Encoder(usable[0], usable[0] in HARDWARE_ENCODERS)


def launch_description(encoder: H264Encoder, bitrate_kbps: int = 4000, gop_frames: int = 30) -> str:
    """The RTSP media factory's pipeline: ``appsrc name=src`` through ``rtph264pay name=pay0``."""
    return (
        "( appsrc name=src is-live=true format=time do-timestamp=true block=false ! "
        f"{encoder.chain(bitrate_kbps, gop_frames)} ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def read_board_model(path: str = "/proc/device-tree/model") -> str:
    """The board's device-tree model ("NVIDIA Jetson Orin Nano Developer Kit"), "" off ARM boards."""
    try:
        return Path(path).read_bytes().rstrip(b"\0").decode(errors="replace")
    except OSError:
        return ""


def load_gstreamer() -> tuple[Any, Any, Any]:
    """``(Gst, GstRtspServer, GLib)``, initialized, or a MissingDependencyError that says what to install."""
    from edge_isp.runtime.native import prefer_libgcc_unwinder

    prefer_libgcc_unwinder()
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as exc:  # gi.require_version raises ValueError for a missing typelib
        raise MissingDependencyError(
            f"RTSP streaming needs GStreamer's RTSP server and its Python bindings ({exc}). On Debian, "
            f"Ubuntu or JetPack: sudo apt-get install {' '.join(DEBIAN_PACKAGES)}. A virtual environment "
            "sees python3-gi only when created with --system-site-packages; or install the bindings "
            "into it: sudo apt-get install libgirepository1.0-dev libcairo2-dev, then pip install "
            "'PyGObject<3.51' (3.51 and later need libgirepository-2.0)."
        ) from exc
    Gst.init(None)
    return Gst, GstRtspServer, GLib


class RtspOutput(Output):
    """Serves the annotated video at ``rtsp://HOST:PORT/PATH`` (H.264, RTP over UDP or TCP).

    Args:
        port: RTSP port, 0 for any free one (read it back from :attr:`port` after open).
        path: the mount point, e.g. ``/stream``.
        host: address to bind.
        fps: the nominal frame rate written in the stream's caps.
        bitrate_kbps: target bitrate in kbit/s.
        encoder: force an encoder element (see :data:`ENCODER_PREFERENCE`), else the best one.
    """

    name = "rtsp"

    def __init__(
        self,
        port: int = 8554,
        path: str = "/stream",
        *,
        host: str = "127.0.0.1",
        fps: float = 30.0,
        bitrate_kbps: int = 4000,
        encoder: str | None = None,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidInputError(f"RTSP port must be an integer 0..65535, got {port!r}")
        if not path.startswith("/") or " " in path:
            raise InvalidInputError(f"RTSP path must start with '/' and have no spaces, got {path!r}")
        if not fps > 0 or not bitrate_kbps > 0:
            raise InvalidInputError(f"fps and bitrate_kbps must be > 0, got {fps}, {bitrate_kbps}")
        self.host, self._port, self.path = host, port, path
        self.fps = Fraction(fps).limit_denominator(1001)
        self.bitrate_kbps, self.prefer = int(bitrate_kbps), encoder
        self.encoder: H264Encoder | None = None
        self._frames: LatestSlot[np.ndarray] = LatestSlot()
        self._size_wh: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._appsrcs: dict[Any, threading.Event] = {}  # appsrc -> "has room" (need-data)
        self._gst: tuple[Any, Any, Any] | None = None
        self._server: Any = None
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return self._server.get_bound_port() if self._server is not None else self._port

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}{self.path}"

    def open(self) -> RtspOutput:
        if self._server is not None:
            return self
        Gst, GstRtspServer, GLib = self._gst = load_gstreamer()
        if self._frames.closed:  # reopened after a close
            self._frames = LatestSlot()
        available = {name for name in KNOWN_ELEMENTS if Gst.ElementFactory.find(name) is not None}
        self.encoder = choose_h264_encoder(available, read_board_model(), self.prefer)
        missing = [name for name in self.encoder.needs if name not in available]
        if missing:
            packages = sorted({ELEMENT_PACKAGES[name] for name in missing})
            raise MissingDependencyError(
                f"RTSP streaming needs the GStreamer elements {missing}: sudo apt-get install {' '.join(packages)}"
            )
        factory = GstRtspServer.RTSPMediaFactory.new()
        factory.set_launch(launch_description(self.encoder, self.bitrate_kbps, max(1, round(self.fps))))
        factory.set_shared(True)
        factory.connect("media-configure", self._on_media_configure)
        server = GstRtspServer.RTSPServer.new()
        server.set_address(self.host)
        server.set_service(str(self._port))
        server.get_mount_points().add_factory(self.path, factory)
        self._context = GLib.MainContext.new()
        self._loop = GLib.MainLoop.new(self._context, False)
        self._source_id = server.attach(self._context)
        if not self._source_id:
            raise InvalidInputError(f"cannot serve RTSP on {self.host}:{self._port} (port in use?)")
        self._server = server
        self._threads = [
            threading.Thread(target=self._run_loop, name="rtsp-glib"),
            threading.Thread(target=self._feed, name="rtsp-feed"),
        ]
        for thread in self._threads:
            thread.start()
        log.info("RTSP output at %s with %s", self.url, self.encoder.element)
        return self

    def publish(self, result: FrameResult) -> None:
        image = result.annotated
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InvalidInputError(
                f"FrameResult.annotated must be an (H, W, 3) uint8 BGR array, got "
                f"{getattr(image, 'shape', type(image).__name__)} {getattr(image, 'dtype', '')}"
            )
        size_wh = (image.shape[1], image.shape[0])
        if self._size_wh is None:
            self._size_wh = size_wh
        elif size_wh != self._size_wh:
            raise InvalidInputError(f"the RTSP stream is {self._size_wh} (W, H); a frame of {size_wh} came")
        self._frames.put(image)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        GstRtspServer = self._gst[1]
        self._frames.close()
        self._threads[1].join()
        with self._lock:
            for appsrc in self._appsrcs:
                appsrc.emit("end-of-stream")
        server.client_filter(lambda *_: GstRtspServer.RTSPFilterResult.REMOVE)
        # The media pipelines are torn down on the main loop: let it run until they are gone.
        deadline = time.monotonic() + 2.0
        while self._appsrcs and time.monotonic() < deadline:
            time.sleep(0.02)
        source = self._context.find_source_by_id(self._source_id)
        if source is not None:
            source.destroy()
        self._loop.quit()
        self._threads[0].join()
        self._threads = []

    def _run_loop(self) -> None:
        self._context.push_thread_default()
        try:
            self._loop.run()
        finally:
            self._context.pop_thread_default()

    def _set_caps(self, appsrc: Any) -> None:
        width, height = self._size_wh
        fps = f"{self.fps.numerator}/{self.fps.denominator}"
        caps = f"video/x-raw,format=BGR,width={width},height={height},framerate={fps}"
        appsrc.set_property("caps", self._gst[0].Caps.from_string(caps))
        # Two frames of queue: past that enough-data, and the feeder skips frames until need-data.
        appsrc.set_property("max-bytes", 2 * 3 * width * height)

    def _on_media_configure(self, _factory: Any, media: Any) -> None:
        appsrc = media.get_element().get_by_name_recurse_up("src")
        room = threading.Event()
        room.set()
        appsrc.connect("need-data", lambda *_: room.set())
        appsrc.connect("enough-data", lambda *_: room.clear())
        if self._size_wh is not None:
            self._set_caps(appsrc)
        with self._lock:
            self._appsrcs[appsrc] = room
        media.connect("unprepared", lambda *_: self._forget(appsrc))

    def _forget(self, appsrc: Any) -> None:
        with self._lock:
            self._appsrcs.pop(appsrc, None)

    def _feed(self) -> None:
        Gst = self._gst[0]
        seen = 0
        while True:
            got = self._frames.wait_newer(seen, timeout_s=0.5)
            if got is None:
                if self._frames.closed:
                    return
                continue
            seen, image = got
            with self._lock:
                ready = [src for src, room in self._appsrcs.items() if room.is_set()]
            if not ready:
                continue
            buffer = Gst.Buffer.new_wrapped(np.ascontiguousarray(image).tobytes())
            for appsrc in ready:
                if appsrc.get_property("caps") is None:
                    self._set_caps(appsrc)
                appsrc.emit("push-buffer", buffer)
