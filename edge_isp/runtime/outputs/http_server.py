"""The HTTP output: MJPEG video, the dashboard, result events, Prometheus metrics, health.

Endpoints (all but ``/healthz`` need the access token when one is set, as ``?token=...`` or
``Authorization: Bearer ...``):

- ``GET /``: the dashboard page (:mod:`edge_isp.runtime.outputs.dashboard`).
- ``GET /stream.mjpg``: the annotated learned view, ``multipart/x-mixed-replace`` JPEGs.
- ``GET /conventional.mjpg``: the conventional ISP's view, when the pipeline renders one.
- ``GET /events``: server-sent events: ``result`` (one JSON object per frame: ``frame``,
  ``timestamp_s``, ``results``, ``latency_ms``, ``conventional``, and ``exposure`` (exposure
  time, analogue and digital gain) when the frame is known) and ``metrics`` (the
  pipeline's ``metrics()`` snapshot, once a second).
- ``GET /metrics``: Prometheus text format (:mod:`edge_isp.runtime.outputs.prometheus`).
- ``GET /healthz``: 200 and ``{"status": "ok", ...}`` while frames arrive, else 503.
- ``GET /controls``: the live controls and their values; ``POST /control`` with
  ``{"name": "lux", "value": 3.0}`` (``Content-Type: application/json``) changes one.
- The dashboard's views drawn for each viewer's display settings, snapshots, ``/info`` and
  ``/board``: see :mod:`edge_isp.runtime.outputs.dashboard_routes`.

:meth:`HttpOutput.publish` only stores the frame in a latest-value slot. One encoder thread
turns the newest frame into a JPEG (once, whatever the number of viewers, and only while
someone watches) and each client thread sends the newest JPEG it has not sent yet, so a slow
viewer skips frames and never holds up the pipeline or the other viewers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import cv2
import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.fileio import jsonable
from edge_isp.runtime.boardstats import BoardMonitor
from edge_isp.runtime.interfaces import FrameResult, Output
from edge_isp.runtime.outputs import dashboard_routes, prometheus
from edge_isp.runtime.outputs.dashboard_view import DisplaySettings
from edge_isp.runtime.outputs.http_handler import HttpServer, check_token, validate_control
from edge_isp.runtime.outputs.slots import LatestSlot

__all__ = ["Controls", "HttpOutput", "MetricsFn", "validate_control"]

log = logging.getLogger(__name__)

STREAMS = ("mjpeg", "conventional", "events", "dashboard")


class Controls(Protocol):
    """What the HTTP output needs from whatever owns the live controls (e.g. the source).

    ``set_control`` is called from an HTTP thread, so it must be thread-safe, and raises
    :class:`~edge_isp.errors.InvalidInputError` for a value it refuses.
    """

    def controls(self) -> Mapping[str, Any]: ...

    def set_control(self, name: str, value: Any) -> None: ...


MetricsFn = Callable[[], Mapping[str, Any]]


def _check_image(image: Any, what: str) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidInputError(
            f"FrameResult.{what} must be an (H, W, 3) uint8 BGR array, got "
            f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}"
        )


class HttpOutput(Output):
    """Serves the live stream over HTTP; see the module docstring for the endpoints.

    Args:
        host: address to bind; 127.0.0.1 keeps the stream on this machine.
        port: TCP port, 0 for any free one (read it back from :attr:`port`).
        token: optional access token (:data:`~edge_isp.runtime.outputs.http_handler.TOKEN_RULE`);
            compared in constant time.
        controls: the live controls (``lux`` on the simulated source), or None.
        metrics: a callable returning the pipeline's metrics snapshot, or None.
        jpeg_quality: 1..100.
        stale_after_s: /healthz reports 503 when no frame arrived for this long.
        info: what runs (model, backend, device, profile...), shown in the dashboard's header.
        class_names: the model's classes, to name the ground truth's labels.
        display: the dashboard's default display settings (a viewer's query overrides them).
        board: samples the board's load and temperatures for the dashboard while open (None: off).
        allowed_hosts: host names a loopback-bound server answers to besides localhost
            (the ``Host`` check against DNS rebinding; a server on another address answers all).
    """

    name = "http"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        token: str | None = None,
        controls: Controls | None = None,
        metrics: MetricsFn | None = None,
        jpeg_quality: int = 80,
        stale_after_s: float = 5.0,
        metrics_interval_s: float = 1.0,
        info: Mapping[str, Any] | None = None,
        class_names: Sequence[str] = (),
        display: DisplaySettings | None = None,
        board: BoardMonitor | None = None,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidInputError(f"HTTP port must be an integer 0..65535, got {port!r}")
        if token is not None:
            check_token(token)
        if not 1 <= jpeg_quality <= 100:
            raise InvalidInputError(f"jpeg_quality must be 1..100, got {jpeg_quality}")
        if not stale_after_s > 0 or not metrics_interval_s > 0:
            raise InvalidInputError(
                f"stale_after_s and metrics_interval_s must be > 0, got {stale_after_s}, {metrics_interval_s}"
            )
        self.host, self._port = host, port
        self.token = token
        self.allowed_hosts = tuple(allowed_hosts)
        self.controls, self.metrics = controls, metrics
        self.jpeg_quality, self.stale_after_s, self.metrics_interval_s = jpeg_quality, stale_after_s, metrics_interval_s
        self._new_slots()
        self.frames_published = 0
        self.last_publish_s: float | None = None
        self.has_conventional = False
        self.info, self.class_names = dict(info or {}), tuple(class_names)
        self.display_defaults = display or DisplaySettings()
        self.board = board
        self.routes = dict(dashboard_routes.ROUTES)
        self._with_conventional: FrameResult | None = None
        self._clients = dict.fromkeys(STREAMS, 0)
        self._clients_lock = threading.Lock()
        self._server: HttpServer | None = None
        self._threads: list[threading.Thread] = []

    def _new_slots(self) -> None:
        self.frames: LatestSlot[FrameResult] = LatestSlot()
        self.jpegs = {"mjpeg": LatestSlot[bytes](), "conventional": LatestSlot[bytes]()}
        self.events: LatestSlot[bytes] = LatestSlot()

    @property
    def port(self) -> int:
        """The bound port (the chosen one after :meth:`open` when 0 was asked)."""
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self) -> str:
        """The dashboard's address, without the token (add ``?token=...`` when one is set):
        it is printed and logged, and the token must not be."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def open(self) -> HttpOutput:
        if self._server is not None:
            return self
        if self.frames.closed:  # reopened after a close
            self._new_slots()
        try:
            self._server = HttpServer((self.host, self._port), self)
        except OSError as exc:
            raise InvalidInputError(f"cannot serve HTTP on {self.host}:{self._port}: {exc}") from exc
        self._threads = [
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="http-serve"),
            threading.Thread(target=self._encode_loop, name="http-encode"),
        ]
        for thread in self._threads:
            thread.start()
        if self.board is not None:
            self.board.start()
        log.info("HTTP output at %s", self.url)
        return self

    def publish(self, result: FrameResult) -> None:
        _check_image(result.annotated, "annotated")
        if result.conventional is not None:
            _check_image(result.conventional, "conventional")
        self.frames.put(result)
        if result.conventional is not None:
            self._with_conventional = result
            self.has_conventional = True
        self.frames_published += 1
        self.last_publish_s = time.monotonic()

    def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        if self.board is not None:
            self.board.stop()
        for slot in (self.frames, self.events, *self.jpegs.values()):
            slot.close()
        server.shutdown()
        # A client blocked in a send to a stalled viewer would hold server_close's join.
        with server.connections_lock:
            for conn in server.connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        for thread in self._threads:
            thread.join()
        self._threads = []

    def snapshot_result(self) -> FrameResult | None:
        """The frame a snapshot shows: the newest that has a conventional view when the pipeline
        renders one (every Nth frame), else the newest."""
        latest = self.frames.latest()[1]
        return self._with_conventional or latest

    def clients(self) -> dict[str, int]:
        """Connected clients per stream (``mjpeg``, ``conventional``, ``events``)."""
        with self._clients_lock:
            return dict(self._clients)

    def count_client(self, stream: str, delta: int) -> None:
        """Called by the request handler as a viewer of ``stream`` arrives (+1) or leaves (-1)."""
        with self._clients_lock:
            self._clients[stream] += delta

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``(healthy, body)`` for /healthz: healthy while frames arrived in ``stale_after_s``."""
        age = None if self.last_publish_s is None else time.monotonic() - self.last_publish_s
        status = "waiting" if age is None else "ok" if age <= self.stale_after_s else "stale"
        body = {
            "status": status,
            "frames": self.frames_published,
            "last_frame_age_s": age,
            "stale_after_s": self.stale_after_s,
        }
        return status == "ok", body

    def metrics_text(self) -> str:
        """The /metrics body: the pipeline's metrics plus this output's own."""
        families = prometheus.pipeline_families(self.metrics() if self.metrics else {})
        clients = self.clients()
        families += [
            prometheus.MetricFamily(
                "edge_isp_http_clients",
                "gauge",
                "Clients connected to the HTTP output, per stream.",
                tuple(prometheus.Sample(n, (("stream", s),)) for s, n in clients.items()),
            ),
            prometheus.MetricFamily(
                "edge_isp_http_frames_total",
                "counter",
                "Frames the HTTP output received from the pipeline.",
                (prometheus.Sample(self.frames_published),),
            ),
        ]
        return prometheus.render(families)

    def _encode_loop(self) -> None:
        seen = 0
        while True:
            got = self.frames.wait_newer(seen, timeout_s=0.5)
            if got is None:
                if self.frames.closed:
                    return
                continue
            seen, result = got
            try:
                self._encode(result)
            except Exception:  # a bad frame must not end the stream for every viewer
                log.exception("HTTP output could not encode frame %s", result.index)

    def _encode(self, result: FrameResult) -> None:
        clients = self.clients()
        params = [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
        if clients["mjpeg"]:
            self.jpegs["mjpeg"].put(cv2.imencode(".jpg", result.annotated, params)[1].tobytes())
        if result.conventional is not None:
            self.has_conventional = True
            if clients["conventional"]:
                self.jpegs["conventional"].put(cv2.imencode(".jpg", result.conventional, params)[1].tobytes())
        if clients["events"]:
            event = {
                "frame": result.index,
                "timestamp_s": result.timestamp_s,
                "results": result.results,
                "latency_ms": result.latency_ms,
                "conventional": result.conventional is not None,
            }
            if result.raw is not None:  # what the frame was taken with
                raw = result.raw
                event["exposure"] = {
                    "exposure_time_s": raw.exposure_time_s,
                    "analogue_gain": raw.analogue_gain,
                    "digital_gain": raw.digital_gain,
                }
            data = json.dumps(event, default=jsonable)
            self.events.put(f"event: result\nid: {result.index}\ndata: {data}\n\n".encode())
