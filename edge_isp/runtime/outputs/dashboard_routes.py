"""The dashboard's own routes on the HTTP output (GET only; the token check has run before):

- ``/view.mjpg`` and ``/conventional-view.mjpg``: the learned and conventional views as the
  dashboard shows them (:mod:`~edge_isp.runtime.outputs.dashboard_view`), drawn for this viewer's
  display settings given in the query (``?score=0.5&one=1&truth=1``). Each viewer's thread
  draws and encodes its own frames, so viewers' settings never mix; a slow viewer skips frames.
- ``/snapshot.png`` (the learned view as shown) and ``/snapshot.zip`` (both views, the results
  and the raw frame), for the same query.
- ``/info``: what runs (model, task, backend, device, profile, sizes, source), and the defaults
  of the display settings.
- ``/board``: the board's CPU/GPU load, memory, power and temperatures, where it reports them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import cv2

from edge_isp.errors import InvalidInputError
from edge_isp.runtime.interfaces import FrameResult
from edge_isp.runtime.outputs import dashboard_view
from edge_isp.runtime.outputs.dashboard_view import DisplaySettings

if TYPE_CHECKING:
    from edge_isp.runtime.outputs.http_handler import RequestHandler
    from edge_isp.runtime.outputs.http_server import HttpOutput

Route = Callable[["RequestHandler", "HttpOutput"], None]


def _settings(handler: RequestHandler, out: HttpOutput) -> DisplaySettings | None:
    try:
        return DisplaySettings.from_query(parse_qs(urlsplit(handler.path).query), out.display_defaults)
    except InvalidInputError as exc:
        handler._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        return None


def _stream(handler: RequestHandler, out: HttpOutput, draw: Callable[[FrameResult, DisplaySettings], object]) -> None:
    settings = _settings(handler, out)
    if settings is None:
        return
    params = [cv2.IMWRITE_JPEG_QUALITY, out.jpeg_quality]
    out.count_client("dashboard", +1)
    seen = 0  # the newest frame at once: a viewer arriving sees a picture without waiting
    try:
        handler._start_stream("multipart/x-mixed-replace; boundary=frame")
        while not out.frames.closed:
            got = out.frames.wait_newer(seen, timeout_s=1.0)
            if got is None:
                continue
            seen, result = got
            image = draw(result, settings)
            if image is None:
                continue
            jpeg = cv2.imencode(".jpg", image, params)[1].tobytes()
            head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            handler.wfile.write(head.encode() + jpeg + b"\r\n")
    except OSError:  # the viewer went away (or close() shut the socket)
        pass
    finally:
        out.count_client("dashboard", -1)


def view(handler: RequestHandler, out: HttpOutput) -> None:
    _stream(handler, out, lambda result, s: dashboard_view.learned_view(result, s, out.class_names))


def conventional(handler: RequestHandler, out: HttpOutput) -> None:
    if not out.has_conventional:
        handler._json(HTTPStatus.NOT_FOUND, {"error": "this pipeline renders no conventional ISP view"})
        return
    _stream(handler, out, lambda result, s: dashboard_view.conventional_view(result, s, out.class_names))


def _snapshot(handler: RequestHandler, out: HttpOutput, kind: str) -> None:
    settings = _settings(handler, out)
    if settings is None:
        return
    result = out.snapshot_result()
    if result is None:
        handler._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "no frame yet"})
        return
    name = f"edge-isp-frame-{result.index:06d}"
    if kind == "png":
        body, ctype = dashboard_view.png(dashboard_view.learned_view(result, settings, out.class_names)), "image/png"
    else:
        body, ctype = dashboard_view.snapshot_zip(result, settings, out.class_names), "application/zip"
    disposition = {"Content-Disposition": f'attachment; filename="{name}.{kind}"'}
    handler._send(HTTPStatus.OK, body, ctype, disposition)


def info(handler: RequestHandler, out: HttpOutput) -> None:
    handler._json(HTTPStatus.OK, {**out.info, "display": dataclasses.asdict(out.display_defaults)})


def board(handler: RequestHandler, out: HttpOutput) -> None:
    latest = None if out.board is None else out.board.latest()
    handler._json(HTTPStatus.OK, {} if latest is None else latest.to_dict())


ROUTES: dict[str, Route] = {
    "/view.mjpg": view,
    "/conventional-view.mjpg": conventional,
    "/snapshot.png": lambda handler, out: _snapshot(handler, out, "png"),
    "/snapshot.zip": lambda handler, out: _snapshot(handler, out, "zip"),
    "/info": info,
    "/board": board,
}
