"""Where the live pipeline's annotated frames go: HTTP (MJPEG, dashboard, events, metrics),
RTSP (H.264 through GStreamer) and recordings (MP4 + JSON lines).

Every output is an :class:`~edge_isp.runtime.interfaces.Output`: a context manager whose
``publish(FrameResult)`` never blocks the pipeline. :func:`make_outputs` builds them from the
command line's options. The pipeline must not modify a FrameResult's arrays after publishing
it: outputs keep a reference and encode it on their own threads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edge_isp.errors import InvalidInputError
from edge_isp.runtime.boardstats import BoardMonitor
from edge_isp.runtime.interfaces import Output
from edge_isp.runtime.outputs.dashboard_view import DisplaySettings
from edge_isp.runtime.outputs.http_server import Controls, HttpOutput, MetricsFn
from edge_isp.runtime.outputs.recording import Recorder
from edge_isp.runtime.outputs.rtsp import RtspOutput

__all__ = [
    "HttpOutput",
    "Recorder",
    "RtspOutput",
    "make_outputs",
    "parse_http_address",
    "parse_record_target",
    "parse_rtsp_address",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8080
DEFAULT_RTSP_PORT = 8554
DEFAULT_RTSP_PATH = "/stream"
_ADDRESS = re.compile(r"^(?:(?P<host>\[[0-9a-fA-F:.]+\]|[^:/\[\]]*):)?(?P<port>\d*)(?P<path>/\S*)?$")


def _split(spec: str, what: str, example: str) -> tuple[str, int | None, str | None]:
    match = _ADDRESS.match(spec.strip())
    if not match or not spec.strip():
        raise InvalidInputError(f"{what} address must look like {example}, got {spec!r}")
    host = (match.group("host") or DEFAULT_HOST).strip("[]")
    port = int(match.group("port")) if match.group("port") else None
    if port is not None and not 0 <= port <= 65535:
        raise InvalidInputError(f"{what} port must be 0..65535, got {port} in {spec!r}")
    return host, port, match.group("path")


def parse_http_address(spec: str) -> tuple[str, int]:
    """``"HOST:PORT"``, ``":PORT"``, ``"PORT"`` or ``"[::1]:PORT"`` -> ``(host, port)``; host defaults to 127.0.0.1."""
    host, port, path = _split(spec, "HTTP", "HOST:PORT, :PORT or PORT")
    if path is not None:
        raise InvalidInputError(f"an HTTP address has no path, got {spec!r}")
    return host, DEFAULT_HTTP_PORT if port is None else port


def parse_rtsp_address(spec: str) -> tuple[str, int, str]:
    """``"[HOST:]PORT[/PATH]"`` -> ``(host, port, path)``; defaults 127.0.0.1, 8554, /stream.

    jetson-inference's URL form is taken too: ``rtsp://@:8554/live`` serves on every interface
    (its ``@``), ``rtsp://HOST:PORT/PATH`` on HOST."""
    spec = str(spec).strip()
    if spec.lower().startswith("rtsp://"):
        spec = spec[len("rtsp://") :]
        if spec.startswith("@"):
            spec = "0.0.0.0" + spec[1:]
    elif "://" in spec:
        raise InvalidInputError(f"--rtsp serves RTSP: give [HOST:]PORT[/PATH] or rtsp://@:PORT/PATH, got {spec!r}")
    host, port, path = _split(spec, "RTSP", "[HOST:]PORT[/PATH], e.g. 8554/stream")
    if path == "/":
        raise InvalidInputError(f"the RTSP path needs a name after '/', got {spec!r}")
    return host, DEFAULT_RTSP_PORT if port is None else port, path or DEFAULT_RTSP_PATH


def parse_record_target(spec: str | os.PathLike) -> dict[str, Any]:
    """Where `--record` writes, as :class:`Recorder` keyword arguments: a folder (``DIR`` or
    ``file://DIR``) of numbered segments, or one file (``out.mp4`` or ``file://out.mp4``) with
    its JSON lines beside it (``out.jsonl``)."""
    text = os.fspath(spec).strip()
    if text.lower().startswith("file://"):
        text = text[len("file://") :]
    elif re.match(r"^[a-z][a-z0-9+.-]*://", text, re.I):
        scheme = text.split("://")[0].lower()
        hint = "serve a stream with --rtsp rtsp://@:8554/live" if scheme in ("rtsp", "rtp", "webrtc") else ""
        raise InvalidInputError(
            f"--record writes a file or a folder (out.mp4, file://out.mp4, DIR), not {scheme}://"
            + (f"; {hint}" if hint else "")
        )
    if not text:
        raise InvalidInputError("--record needs a file (out.mp4) or a folder")
    path = Path(text)
    if path.suffix.lower() == ".mp4":
        return {"directory": path.parent, "name": path.stem, "segment_s": None, "numbered": False}
    if path.suffix and not path.is_dir():
        raise InvalidInputError(f"--record writes MP4: give out.mp4 or a folder, got {text!r}")
    return {"directory": path}


def make_outputs(
    *,
    http: str | None = None,
    rtsp: str | None = None,
    record: str | os.PathLike | None = None,
    token: str | None = None,
    controls: Controls | None = None,
    metrics: MetricsFn | None = None,
    fps: float = 30.0,
    info: Mapping[str, Any] | None = None,
    class_names: Sequence[str] = (),
    score_threshold: float = 0.3,
    record_size: tuple[int, int] | Callable[[], tuple[int, int] | None] | None = None,
    allowed_hosts: tuple[str, ...] = (),
) -> list[Output]:
    """The outputs the options ask for, not yet open (open them with ``with`` / ExitStack).

    Args:
        http: ``HOST:PORT`` for the HTTP server and dashboard, or None.
        rtsp: ``[HOST:]PORT[/PATH]`` for the RTSP server, or None. Raises
            :class:`~edge_isp.errors.MissingDependencyError` at open when GStreamer is missing.
        record: where to record MP4 + JSON lines (:func:`parse_record_target`), or None.
        token: access token for the HTTP server (ignored without ``http``).
        controls: the live controls (the source, for ``lux``), shown on the dashboard.
        metrics: callable returning the pipeline's metrics snapshot
            (schema: :mod:`edge_isp.runtime.outputs.prometheus`).
        fps: the source's nominal frame rate, for the RTSP caps and the MP4 timing.
        info: what runs, for the dashboard's header (model, backend, device, profile...).
        class_names: the model's classes (names the simulator's ground truth on the dashboard).
        score_threshold: the dashboard's starting score threshold (the model's own).
        record_size: (width, height) to record at, the source's resolution when known (or a
            callable giving it once the first frame is recorded, after the source opened).
        allowed_hosts: host names the HTTP server answers to besides localhost when bound to
            loopback (see :func:`~edge_isp.runtime.outputs.http_handler.host_allowed`).
    """
    outputs: list[Output] = []
    if http is not None:
        host, port = parse_http_address(http)
        display = DisplaySettings(score_threshold=min(max(score_threshold, 0.0), 1.0))
        outputs.append(
            HttpOutput(
                host, port, token=token, controls=controls, metrics=metrics, info=info,
                class_names=class_names, display=display, board=BoardMonitor(), allowed_hosts=allowed_hosts,
            )
        )  # fmt: skip
    elif token is not None:
        raise InvalidInputError("an access token was given without an HTTP address to protect")
    if rtsp is not None:
        host, port, path = parse_rtsp_address(rtsp)
        outputs.append(RtspOutput(port, path, host=host, fps=fps))
    if record is not None:
        outputs.append(Recorder(**parse_record_target(record), fps=fps, size_wh=record_size))
    return outputs
