"""Request handling for :class:`~edge_isp.runtime.outputs.http_server.HttpOutput`.

One thread per connection (``ThreadingHTTPServer``); streaming responses (MJPEG, events) loop
in their thread, sending the newest value of a latest-value slot, until the viewer leaves or
the output closes. The server tracks its connections so that closing it can cut a stalled
viewer's socket and then join every thread.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import math
import socket
import socketserver
import threading
import time
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from edge_isp.errors import InvalidInputError
from edge_isp.fileio import jsonable
from edge_isp.runtime.outputs.dashboard import DASHBOARD_HTML

if TYPE_CHECKING:
    from edge_isp.runtime.outputs.http_server import HttpOutput

log = logging.getLogger(__name__)

MAX_CONTROL_BODY_BYTES = 4096


def validate_control(current: Mapping[str, Any], payload: Any) -> tuple[str, Any]:
    """Check a ``POST /control`` body against the current controls; returns ``(name, value)``.

    A numeric control takes a finite number (not a boolean), a boolean control a boolean;
    other controls take the value as given, for the owner to check.
    """
    if not isinstance(payload, Mapping) or set(payload) != {"name", "value"}:
        raise InvalidInputError(f'the body must be a JSON object {{"name": ..., "value": ...}}, got {payload!r}')
    name, value = payload["name"], payload["value"]
    if not isinstance(name, str) or name not in current:
        raise InvalidInputError(f"no control {name!r}; the controls are {sorted(current) or 'none'}")
    now = current[name]
    if isinstance(now, bool):
        if not isinstance(value, bool):
            raise InvalidInputError(f"control {name!r} takes true or false, got {value!r}")
    elif isinstance(now, (int, float)) and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
    ):
        raise InvalidInputError(f"control {name!r} takes a finite number, got {value!r}")
    return name, value


class HttpServer(ThreadingHTTPServer):
    # Non-daemon handler threads, so server_close() joins them: a clean close ends them all.
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], output: HttpOutput) -> None:
        self.output = output
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup of the host, which can stall.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class RequestHandler(BaseHTTPRequestHandler):
    server: HttpServer
    timeout = 30  # seconds a read or a send may take: a stalled client cannot hold a thread
    server_version = "edge-isp"

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            with contextlib.suppress(OSError):
                super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        # The default logs the full request line to stderr, token included.
        log.debug("%s %s", self.client_address[0], urlsplit(self.path).path)

    def do_GET(self) -> None:
        out, path = self.server.output, urlsplit(self.path).path
        if path == "/healthz":
            healthy, body = out.health()
            return self._json(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE, body)
        if not self._authorized():
            return None
        if path in ("/", "/index.html"):
            return self._send(HTTPStatus.OK, DASHBOARD_HTML.encode(), "text/html; charset=utf-8")
        if path == "/stream.mjpg":
            return self._mjpeg("mjpeg")
        if path == "/conventional.mjpg":
            if not out.has_conventional:
                return self._json(HTTPStatus.NOT_FOUND, {"error": "this pipeline renders no conventional ISP view"})
            return self._mjpeg("conventional")
        if path == "/events":
            return self._events()
        if path == "/metrics":
            try:
                text = out.metrics_text()
            except Exception as exc:
                log.exception("/metrics failed")
                return self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"metrics failed: {exc}"})
            return self._send(HTTPStatus.OK, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
        if path == "/controls":
            return self._json(HTTPStatus.OK, dict(out.controls.controls()) if out.controls else {})
        if path in out.routes:  # the dashboard's own pages (dashboard_routes)
            return out.routes[path](self, out)
        return self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page {path!r}"})

    def do_POST(self) -> None:
        out, path = self.server.output, urlsplit(self.path).path
        if not self._authorized():
            return None
        if path != "/control":
            return self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page {path!r}"})
        if out.controls is None:
            return self._json(HTTPStatus.NOT_FOUND, {"error": "this pipeline has no live controls"})
        # JSON only: a cross-site HTML form cannot send it, so no other page can turn the knobs.
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            error = f"POST /control takes Content-Type application/json, got {ctype or 'none'!r}"
            return self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": error})
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._json(HTTPStatus.LENGTH_REQUIRED, {"error": "POST /control needs a Content-Length"})
        if not 0 < length <= MAX_CONTROL_BODY_BYTES:
            error = f"the body must be 1..{MAX_CONTROL_BODY_BYTES} bytes, got {length}"
            return self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": error})
        try:
            payload = json.loads(self.rfile.read(length))
            name, value = validate_control(out.controls.controls(), payload)
            out.controls.set_control(name, value)
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError and InvalidInputError too
            return self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        return self._json(HTTPStatus.OK, {"name": name, "value": out.controls.controls().get(name)})

    def _authorized(self) -> bool:
        token = self.server.output.token
        if token is None:
            return True
        given = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
        auth = self.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        if hmac.compare_digest(given.encode(), token.encode()):
            return True
        self._send(
            HTTPStatus.UNAUTHORIZED,
            b'{"error": "an access token is needed: ?token=... or Authorization: Bearer ..."}',
            "application/json",
            {"WWW-Authenticate": 'Bearer realm="edge-isp"'},
        )
        return False

    def _send(self, status: int, body: bytes, ctype: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    def _json(self, status: int, body: Any) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _start_stream(self, ctype: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()

    def _mjpeg(self, stream: str) -> None:
        out = self.server.output
        slot = out.jpegs[stream]
        out.count_client(stream, +1)
        # Frames from now on (the last one may be minutes old), taken before the headers go out
        # so that a frame published once the viewer has them is never missed.
        seen = slot.latest()[0]
        try:
            self._start_stream("multipart/x-mixed-replace; boundary=frame")
            while not slot.closed:
                got = slot.wait_newer(seen, timeout_s=1.0)
                if got is not None:
                    seen, jpeg = got
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    self.wfile.write(head.encode() + jpeg + b"\r\n")
        except OSError:  # the viewer went away (or close() shut the socket)
            pass
        finally:
            out.count_client(stream, -1)

    def _events(self) -> None:
        out = self.server.output
        out.count_client("events", +1)
        seen, last_write = out.events.latest()[0], time.monotonic()
        try:
            self._start_stream("text/event-stream; charset=utf-8")
            self.wfile.write(b"retry: 2000\n\n")
            next_metrics = last_write if out.metrics is not None else math.inf
            while not out.events.closed:
                now = time.monotonic()
                if now >= next_metrics:
                    next_metrics = now + out.metrics_interval_s
                    self.wfile.write(self._metrics_event())
                    last_write = now
                elif now - last_write > 10.0:  # a comment line finds out whether the viewer is gone
                    self.wfile.write(b": keep-alive\n\n")
                    last_write = now
                got = out.events.wait_newer(seen, timeout_s=min(1.0, max(0.01, next_metrics - now)))
                if got is not None:
                    seen = got[0]
                    self.wfile.write(got[1])
                    last_write = time.monotonic()
        except OSError:
            pass
        finally:
            out.count_client("events", -1)

    def _metrics_event(self) -> bytes:
        try:
            data = json.dumps(dict(self.server.output.metrics()), default=jsonable)
        except Exception:  # the pipeline's bug: say so in the log, keep the video going
            log.exception("the pipeline's metrics() failed")
            return b": metrics unavailable\n\n"
        return f"event: metrics\ndata: {data}\n\n".encode()
