"""The HTTP output against hostile and careless clients: malformed request lines, absurd control
bodies, foreign Host headers (DNS rebinding), and what already held (loopback bind, token on
every route but /healthz, path traversal)."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from edge_isp.runtime.outputs import HttpOutput
from edge_isp.runtime.outputs.http_handler import check_token, host_allowed, is_loopback
from edge_isp.runtime.sources.simulated import SimulatedSource
from tests.runtime.test_http_output import METRICS, FakeControls, get, post


@pytest.fixture
def serve():
    made = []

    def start(**kwargs) -> HttpOutput:
        made.append(HttpOutput("127.0.0.1", 0, **kwargs).open())
        return made[-1]

    yield start
    for out in made:
        out.close()


def raw_request(out: HttpOutput, data: bytes, host: str = "127.0.0.1") -> bytes:
    """Send ``data`` as is and return everything the server answers before it closes."""
    with socket.create_connection((host, out.port), timeout=5) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


MALFORMED = [
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n", 505),
    (b"GET / HTTP/1.1.1\r\n\r\n", 400),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 random bytes\r\n\r\n", 400),
    (b"GET / HTTP/1.1 extra words\r\n\r\n", 400),
    (b"BREW /coffee HTTP/1.1\r\nHost: localhost\r\n\r\n", 501),
    (b"POST /control\r\n\r\n", 400),  # HTTP/0.9 has GET only
]


@pytest.mark.parametrize(("data", "code"), MALFORMED, ids=[str(c) + "-" + repr(d[:12]) for d, c in MALFORMED])
def test_a_malformed_request_line_is_answered_and_logged_in_one_line(serve, caplog, data, code):
    out = serve(token="s3cret-token", metrics=lambda: METRICS)
    with caplog.at_level(logging.DEBUG, logger="edge_isp.runtime.outputs.http_handler"):
        reply = raw_request(out, data)
    assert status_of(reply) == code
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and f"HTTP {code} to 127.0.0.1" in warnings[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)
    assert get(out, "/healthz")[0] == 503  # still serving (503: no frame yet)


def test_the_token_never_reaches_the_log(serve, caplog):
    out = serve(token="s3cret-token")
    with caplog.at_level(logging.DEBUG, logger="edge_isp.runtime.outputs.http_handler"):
        raw_request(out, b"GET /?token=s3cret-token HTTP/1.1 junk\r\n\r\n")
        get(out, "/?token=s3cret-token")
    assert caplog.records and "s3cret" not in caplog.text


ABSURD_BODIES = [
    (b'{"name": "lux", "value": ' + b"9" * 400 + b"}", "finite number, got an integer of 400 digits"),
    (b'{"name": "lux", "value": -' + b"9" * 4000 + b"}", "finite number"),
    (b'{"name": "lux", "value": ' + b"[" * 2000 + b"]" * 2000 + b"}", "nests JSON too deeply"),
    (b"[" * 2040 + b"]" * 2040, "nests JSON too deeply"),
    (b'{"name": "lux", "value": 1e400}', "finite number"),
    (b'{"name": "' + b"x" * 3000 + b'", "value": 1}', "no control"),
    (b"\xff\xfe\x00{", "Expecting value"),
    (b'{"name": "lux", "value": 1, "value": 2, "extra": 3}', "JSON object"),
]


@pytest.mark.parametrize(("body", "message"), ABSURD_BODIES, ids=range(len(ABSURD_BODIES)))
def test_absurd_control_bodies_are_400s(serve, body, message):
    controls = FakeControls()
    out = serve(controls=controls)
    status, reply = post(out, body)
    assert status == 400 and message in reply["error"] and len(reply["error"]) < 400
    assert controls.calls == []
    assert post(out, b'{"name": "lux", "value": 5}') == (200, {"name": "lux", "value": 5.0})


def test_out_of_range_light_is_a_400_naming_the_control(serve):
    source = SimulatedSource(width=64, height=48, paced=False)
    out = serve(controls=source)
    for value in (1e300, 4e18, 1e-38, 0.001, 250_000):
        status, reply = post(out, json.dumps({"name": "lux", "value": value}).encode())
        assert status == 400 and "lux must be a number from 0.01 to 200000" in reply["error"], value
    status, reply = post(out, b'{"name": "electrons_at_white", "value": 1e19}')
    assert status == 400 and "electrons_at_white must be a number from 0.001 to 1e+07" in reply["error"]
    assert post(out, b'{"name": "lux", "value": 100000}')[0] == 200
    with source:  # the source still makes frames at the light it took
        assert source.read().data.shape == (48, 64)


def test_loopback_server_answers_loopback_names_and_the_allowed_list(serve):
    out = serve(allowed_hosts=("camera.local",))
    for host in ("localhost", "localhost:8080", "127.0.0.1", f"127.0.0.1:{out.port}", "[::1]:80", "camera.local"):
        assert get(out, "/healthz", {"Host": host})[0] == 503, host  # 503: no frame yet, but answered
    for host in ("evil.example", "evil.example:8080", "127.0.0.1.evil.example", "[bad", ""):
        status, _, body = get(out, "/", {"Host": host})
        assert status == 403 and b"--allow-host" in body, host
        assert get(out, "/healthz", {"Host": host})[0] == 403
    assert status_of(raw_request(out, b"GET /healthz HTTP/1.0\r\n\r\n")) == 503  # no Host: not a browser


def test_a_server_bound_to_every_address_answers_any_name():
    out = HttpOutput("0.0.0.0", 0).open()
    try:
        assert get(out, "/healthz", {"Host": "jetson:8080"})[0] == 503
        assert get(out, "/", {"Host": "jetson:8080"})[0] == 200
    finally:
        out.close()


def test_host_rules():
    assert is_loopback("127.0.0.1") and is_loopback("127.8.9.1") and is_loopback("::1") and is_loopback("[::1]")
    assert is_loopback("localhost") and not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert host_allowed("LOCALHOST:80", "127.0.0.1") and host_allowed(None, "127.0.0.1")
    assert not host_allowed("attacker.example", "localhost")
    assert host_allowed("Jetson", "127.0.0.1", ("jetson",)) and host_allowed("anything", "192.168.1.5")


def test_one_token_rule():
    assert check_token("eight-ch") == "eight-ch"
    for bad in ("x", "seven-c", "with space8", "\tabcdefgh", "ünïcödé-token", None, 12345678):
        with pytest.raises(ValueError, match="at least 8 printable ASCII characters") as info:
            check_token(bad)
        assert bad is None or str(bad) not in str(info.value).split(";")[1]  # the message never echoes a token


# What already held, kept under test: the token on every route but /healthz (see
# test_http_output.py), a loopback default bind, and no file reachable by path traversal.
TRAVERSALS = [
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/..%2f..%2f..%2fetc%2fpasswd",
    "/static/../../../etc/passwd",
    "//etc/passwd",
    "/....//....//etc/passwd",
    "/%252e%252e/etc/passwd",
    "/stream.mjpg/../../../etc/passwd",
    "/index.html/..%00/etc/passwd",
    "/?file=../../etc/passwd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_reaches_nothing(serve, path):
    out = serve(token="s3cret-token")
    reply = raw_request(out, f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    assert status_of(reply) in (400, 401, 404) and b"root:" not in reply
    authorized = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer s3cret-token\r\n\r\n"
    reply = raw_request(out, authorized.encode())
    assert b"root:" not in reply
    assert status_of(reply) == 404 or reply.count(b"<html") == 1  # a 404, or the dashboard page itself


def test_binds_loopback_by_default():
    out = HttpOutput(port=0).open()
    try:
        assert out.host == "127.0.0.1" and out._server.server_address[0] == "127.0.0.1"
    finally:
        out.close()


def test_the_token_is_compared_in_constant_time(serve, monkeypatch):
    from edge_isp.runtime.outputs import http_handler

    compared = []

    def spy(a, b):
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(http_handler.hmac, "compare_digest", spy)
    out = serve(token="s3cret-token")
    assert get(out, "/controls?token=guess-token")[0] == 401
    assert get(out, "/controls", {"Authorization": "Bearer s3cret-token"})[0] == 200
    assert compared == [(b"guess-token", b"s3cret-token"), (b"s3cret-token", b"s3cret-token")]


def test_the_printed_dashboard_address_holds_no_token(tmp_path, capsys):
    from edge_isp.cli import main
    from tests.fuzz.files import onnx_model

    model = onnx_model(tmp_path / "m.onnx")
    argv = ["run", "--model", str(model), "--source", "sim", "--http", "127.0.0.1:0", "--token", "s3cret-token",
            "--max-frames", "2"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "dashboard: open http://127.0.0.1:" in out.out and "?token=<your token>" in out.out
    assert "s3cret-token" not in out.out + out.err
