"""Request handling for :class:`~edge_isp.runtime.outputs.http_server.HttpOutput`.

One thread per connection (``ThreadingHTTPServer``); streaming responses (MJPEG, events) loop
in their thread, sending the newest value of a latest-value slot, until the viewer leaves or
the output closes. The server tracks its connections so that closing it can cut a stalled
viewer's socket and then join every thread.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import math
import re
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
TOKEN_RULE = "at least 8 printable ASCII characters without spaces"
_TOKEN = re.compile(r"[\x21-\x7e]{8,}")


def check_token(token: Any, what: str = "the access token") -> str:
    """``token`` if it follows :data:`TOKEN_RULE` (the one rule for the command line, run
    configs and :class:`HttpOutput`); else an :class:`InvalidInputError` that does not echo it."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        got = f"{len(token)} character(s)" if isinstance(token, str) else type(token).__name__
        raise InvalidInputError(f"{what} must be {TOKEN_RULE}; got {got}")
    return token


def is_loopback(host: str) -> bool:
    """Whether a bind address (or host name) is this machine only: localhost, 127.0.0.0/8, ::1."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(host_header: str | None, bound_host: str, allowed: tuple[str, ...] = ()) -> bool:
    """Whether a request's ``Host`` header may reach a server bound to ``bound_host``.

    Bound to loopback, only loopback names (localhost, 127.0.0.0/8, ::1) and ``allowed``
    pass: a page whose own name an attacker made resolve to 127.0.0.1 (DNS rebinding) sends
    its own name and is refused. A browser always sends Host, so a request without one is
    not a web page's. Bound to any other address (a board serving its LAN, opened as
    http://jetson:8080), every name passes.
    """
    if not is_loopback(bound_host) or host_header is None:
        return True
    try:
        name = urlsplit("//" + host_header.strip()).hostname
    except ValueError:
        return False
    if not name:
        return False
    return is_loopback(name) or name in {a.strip("[]").lower() for a in allowed}


def validate_control(current: Mapping[str, Any], payload: Any) -> tuple[str, Any]:
    """Check a ``POST /control`` body against the current controls; returns ``(name, value)``.

    A numeric control takes a finite number (not a boolean), a boolean control a boolean;
    other controls take the value as given, for the owner to check. The owner checks the
    value's range (the simulated source's are ``simulated.CONTROL_RANGES``) and refuses
    one outside with an :class:`InvalidInputError` naming the control.
    """
    if not isinstance(payload, Mapping) or set(payload) != {"name", "value"}:
        raise InvalidInputError(f'the body must be a JSON object {{"name": ..., "value": ...}}, got {_short(payload)}')
    name, value = payload["name"], payload["value"]
    if not isinstance(name, str) or name not in current:
        raise InvalidInputError(f"no control {str(name)[:40]!r}; the controls are {sorted(current) or 'none'}")
    now = current[name]
    if isinstance(now, bool):
        if not isinstance(value, bool):
            raise InvalidInputError(f"control {name!r} takes true or false, got {_short(value)}")
    elif isinstance(now, (int, float)) and not _finite_number(value):
        raise InvalidInputError(f"control {name!r} takes a finite number, got {_short(value)}")
    return name, value


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float: 1e400 written out in digits
        return False


def _short(value: Any) -> str:
    if isinstance(value, int) and abs(value) >= 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _path_of(target: str) -> str:
    """The path of a request target; "" for one urlsplit cannot parse."""
    try:
        return urlsplit(target).path
    except ValueError:
        return ""


class HttpServer(ThreadingHTTPServer):
    # Non-daemon handler threads, so server_close() joins them: a clean close ends them all.
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], output: HttpOutput) -> None:
        self.output = output
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.handler_errors = 0
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver's default prints the traceback to stderr; a handler's exception is our
        # bug: log it once, count it, and keep serving the others.
        self.handler_errors += 1
        log.exception("HTTP request from %s failed", client_address[0] if client_address else "?")

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup of the host, which can stall.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class RequestHandler(BaseHTTPRequestHandler):
    server: HttpServer
    timeout = 30  # seconds a read or a send may take: a stalled client cannot hold a thread
    server_version = "edge-isp"
    # The stdlib's default, HTTP/0.9, answers a request line it cannot parse with a bare body
    # and no status line; every client today understands an HTTP/1.0 error reply.
    default_request_version = "HTTP/1.0"

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
        # The default logs the full request line to stderr, token included. A malformed
        # request line is answered before self.path is set.
        log.debug("%s %s", self.client_address[0], _path_of(getattr(self, "path", "")))

    def log_error(self, format: str, *args: Any) -> None:
        # send_error's "code %d, message %s" (a malformed request: 400, 414, 501, 505) or a
        # timeout: one line, without the request line, which may hold the token.
        if format.startswith("code %d") and args:
            code = int(args[0])
            log.warning("HTTP %d to %s: %s", code, self.client_address[0], self.responses.get(code, ("?",))[0])
        else:
            log.warning("HTTP client %s: %s", self.client_address[0], (format % args)[:200])

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        # Every route, /healthz too, answers only the host names it serves (DNS rebinding).
        output = self.server.output
        host = self.headers.get("Host")
        if host_allowed(host, output.host, getattr(output, "allowed_hosts", ())):
            return True
        error = (
            f"this server is bound to {output.host} and answers to localhost names only, not {host[:100]!r}; "
            "add the name with --allow-host NAME"
        )
        self._json(HTTPStatus.FORBIDDEN, {"error": error})
        return False

    def do_GET(self) -> None:
        out, path = self.server.output, _path_of(self.path)
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
        out, path = self.server.output, _path_of(self.path)
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
        except RecursionError:
            return self._json(HTTPStatus.BAD_REQUEST, {"error": "the body nests JSON too deeply"})
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError and InvalidInputError too
            return self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)[:300]})
        return self._json(HTTPStatus.OK, {"name": name, "value": out.controls.controls().get(name)})

    def _authorized(self) -> bool:
        token = self.server.output.token
        if token is None:
            return True
        try:
            given = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
        except ValueError:  # an unparsable target, such as "http://[x"
            given = ""
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
