"""The HTTP output under random request lines, headers and control bodies: every request gets
an HTTP answer (or a closed connection for an empty one), no handler raises, the service keeps
serving, and no control leaves its valid range."""

from __future__ import annotations

import contextlib
import json
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_isp.runtime.outputs import HttpOutput
from edge_isp.runtime.sources.simulated import CONTROL_RANGES, SimulatedSource
from tests.fuzz.tally import record
from tests.fuzz.test_parsers import JSON

TOKEN = "s3cret-token"
STATUSES = {200, 400, 401, 403, 404, 411, 413, 414, 415, 431, 501, 503, 505}


@pytest.fixture(scope="module")
def service():
    source = SimulatedSource(width=64, height=48, paced=False)
    out = HttpOutput("127.0.0.1", 0, token=TOKEN, controls=source).open()
    yield out, source
    out.close()


def exchange(out: HttpOutput, data: bytes) -> bytes:
    reply = b""
    with socket.create_connection(("127.0.0.1", out.port), timeout=10) as conn:
        # The server may answer (414, 431) and close before a long request is all sent.
        with contextlib.suppress(OSError):
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                reply += chunk
    return reply


def check_answered(out: HttpOutput, data: bytes) -> None:
    reply = exchange(out, data)
    if reply:
        assert reply.startswith(b"HTTP/1."), reply[:80]
        assert int(reply.split(b" ", 2)[1]) in STATUSES, reply[:80]
    assert out._server.handler_errors == 0
    status = exchange(out, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").split(b" ", 2)[1]
    assert status == b"503"  # still serving (503: no frame published here)


METHODS = st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"BREW", b"", b"G\x00T", b"get"])
PATHS = st.sampled_from([b"/", b"/control", b"/healthz", b"/../../etc/passwd", b"/%00", b"/?token=" + TOKEN.encode(),
                         b"*", b"http://[x", b"/" + b"a" * 70_000]) | st.binary(max_size=40)  # fmt: skip
VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1.1", b"HTTP/x", b"", b"HTTP/01.01"])
HEADERS = st.lists(
    st.sampled_from([b"Host: localhost", b"Host: evil.example", b"Host: [", b"Content-Length: -5",
                     b"Content-Length: 99999999999999999999", b"Authorization: Bearer " + TOKEN.encode(),
                     b"Content-Type: application/json", b"X: " + b"y" * 70_000, b"\x00\xff: \xfe"])
    | st.binary(max_size=30),
    max_size=4,
)  # fmt: skip


@given(request=st.tuples(METHODS, PATHS, VERSIONS, HEADERS) | st.binary(max_size=300))
def test_any_request_is_answered_and_the_service_goes_on(service, request):
    out, _ = service
    if isinstance(request, tuple):
        method, path, version, headers = request
        data = b" ".join(p for p in (method, path, version) if p) + b"\r\n" + b"".join(h + b"\r\n" for h in headers)
        data += b"\r\n"
    else:
        data = request
    record("HTTP request", data)
    check_answered(out, data)


@given(body=JSON.map(lambda v: json.dumps(v).encode()) | st.fixed_dictionaries(
    {"name": st.sampled_from(["lux", "electrons_at_white", "analogue_gain", "nope"]), "value": JSON}
).map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200))  # fmt: skip
def test_any_control_body_is_a_200_or_a_4xx_and_the_light_stays_in_range(service, body):
    out, source = service
    record("control body", body)
    head = (
        f"POST /control HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    reply = exchange(out, head.encode() + body)
    status = int(reply.split(b" ", 2)[1])
    assert status in (200, 400, 413), reply[:200]
    assert out._server.handler_errors == 0
    low, high = CONTROL_RANGES["electrons_at_white"]
    assert low <= source.controls()["electrons_at_white"] <= high
    assert CONTROL_RANGES["lux"][0] <= source.controls()["lux"] <= CONTROL_RANGES["lux"][1]
