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

from edge_isp.errors import InvalidInputError
from edge_isp.runtime.interfaces import Output
from edge_isp.runtime.outputs.http_server import Controls, HttpOutput, MetricsFn
from edge_isp.runtime.outputs.recording import Recorder
from edge_isp.runtime.outputs.rtsp import RtspOutput

__all__ = ["HttpOutput", "Recorder", "RtspOutput", "make_outputs", "parse_http_address", "parse_rtsp_address"]

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
    """``"[HOST:]PORT[/PATH]"`` -> ``(host, port, path)``; defaults 127.0.0.1, 8554, /stream."""
    host, port, path = _split(spec, "RTSP", "[HOST:]PORT[/PATH], e.g. 8554/stream")
    if path == "/":
        raise InvalidInputError(f"the RTSP path needs a name after '/', got {spec!r}")
    return host, DEFAULT_RTSP_PORT if port is None else port, path or DEFAULT_RTSP_PATH


def make_outputs(
    *,
    http: str | None = None,
    rtsp: str | None = None,
    record: str | os.PathLike | None = None,
    token: str | None = None,
    controls: Controls | None = None,
    metrics: MetricsFn | None = None,
    fps: float = 30.0,
    allowed_hosts: tuple[str, ...] = (),
) -> list[Output]:
    """The outputs the options ask for, not yet open (open them with ``with`` / ExitStack).

    Args:
        http: ``HOST:PORT`` for the HTTP server and dashboard, or None.
        rtsp: ``[HOST:]PORT[/PATH]`` for the RTSP server, or None. Raises
            :class:`~edge_isp.errors.MissingDependencyError` at open when GStreamer is missing.
        record: a directory to record MP4 + JSON lines into, or None.
        token: access token for the HTTP server (ignored without ``http``).
        controls: the live controls (the source, for ``lux``), shown on the dashboard.
        metrics: callable returning the pipeline's metrics snapshot
            (schema: :mod:`edge_isp.runtime.outputs.prometheus`).
        fps: the source's nominal frame rate, for the RTSP caps and the MP4 timing.
        allowed_hosts: host names the HTTP server answers to besides localhost when bound to
            loopback (see :func:`~edge_isp.runtime.outputs.http_handler.host_allowed`).
    """
    outputs: list[Output] = []
    if http is not None:
        host, port = parse_http_address(http)
        outputs.append(
            HttpOutput(host, port, token=token, controls=controls, metrics=metrics, allowed_hosts=allowed_hosts)
        )
    elif token is not None:
        raise InvalidInputError("an access token was given without an HTTP address to protect")
    if rtsp is not None:
        host, port, path = parse_rtsp_address(rtsp)
        outputs.append(RtspOutput(port, path, host=host, fps=fps))
    if record is not None:
        outputs.append(Recorder(record, fps=fps))
    return outputs
