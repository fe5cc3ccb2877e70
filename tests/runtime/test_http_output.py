"""The HTTP output's endpoints, fed by a small fake pipeline thread (a moving rectangle with a box)."""

from __future__ import annotations

import http.client
import json
import math
import re
import socket
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from edge_isp.errors import InvalidInputError
from edge_isp.runtime.interfaces import FrameResult
from edge_isp.runtime.outputs import HttpOutput, make_outputs, parse_http_address, prometheus
from edge_isp.runtime.outputs.http_server import validate_control

H, W = 96, 128
METRICS = {
    "frames": 42,
    "dropped": 3,
    "fps": 29.5,
    "latency_ms": {"inference": {"p50": 21.0, "p99": 30.5}, "end_to_end": {"p50": 33.0, "p99": 47.0}},
    "queue_depth": 1,
    "dropped_inference": 2,
    "dropped_capture": 1,
    "source_errors_total": 4,
    "uptime_s": 12.5,
}


class FakeControls:
    """The simulated source's ``lux`` control; refuses non-positive light like a real source."""

    def __init__(self, lux: float = 3.0) -> None:
        self.lux = lux
        self.calls: list[tuple[str, object]] = []

    def controls(self) -> dict[str, float]:
        return {"lux": self.lux}

    def set_control(self, name: str, value: object) -> None:
        self.calls.append((name, value))
        if value <= 0:
            raise InvalidInputError(f"lux must be > 0, got {value}")
        self.lux = float(value)


def make_result(i: int, *, conventional: bool = True) -> FrameResult:
    image = np.full((H, W, 3), 40, np.uint8)
    x = 8 + (i * 5) % (W - 40)
    image[30:60, x : x + 24] = 230
    cv2.rectangle(image, (x - 2, 28), (x + 26, 62), (0, 255, 0), 2)
    conv = np.full((H, W, 3), (200, 60, 10), np.uint8) if conventional else None
    results = {"frame": i, "detections": [{"box": [x, 30, x + 24, 60], "label": "shirt", "score": np.float32(0.9)}]}
    return FrameResult(i, 1000.0 + i / 30, image, conv, results, {"inference": 2.0, "end_to_end": 5.0})


class Publisher:
    """Publishes a frame every ``period_s`` on its own thread, like the pipeline's output stage."""

    def __init__(self, output: HttpOutput, period_s: float = 0.02, conventional: bool = True) -> None:
        self.output, self.period_s, self.conventional = output, period_s, conventional
        self.publish_s: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(self.period_s):
            result = make_result(i, conventional=self.conventional)
            start = time.perf_counter()
            self.output.publish(result)
            self.publish_s.append(time.perf_counter() - start)
            i += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def serve():
    made = []

    def start(**kwargs) -> HttpOutput:
        out = HttpOutput("127.0.0.1", 0, **kwargs).open()
        made.append(out)
        return out

    yield start
    for out in made:
        out.close()


@pytest.fixture
def publish():
    made = []

    def start(out: HttpOutput, **kwargs) -> Publisher:
        made.append(Publisher(out, **kwargs))
        return made[-1]

    yield start
    for pub in made:
        pub.stop()


def get(out: HttpOutput, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{out.port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def post(out: HttpOutput, body: bytes, ctype: str = "application/json", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", out.port, timeout=5)
    conn.request("POST", "/control", body, {"Content-Type": ctype, **(headers or {})})
    response = conn.getresponse()
    result = response.status, json.loads(response.read())
    conn.close()
    return result


def open_stream(out: HttpOutput, path: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", out.port, timeout=5)
    conn.request("GET", path)
    return conn.getresponse()


def read_parts(response: http.client.HTTPResponse, count: int) -> list[np.ndarray]:
    """Parse ``count`` parts of a multipart/x-mixed-replace JPEG stream into images."""
    boundary = re.search(r"boundary=(\S+)", response.headers["Content-Type"]).group(1)
    images = []
    while len(images) < count:
        line = response.readline()
        if not line.strip():
            continue
        assert line.strip() == b"--" + boundary.encode()
        headers = {}
        while (line := response.readline().strip()) != b"":
            key, value = line.decode().split(":", 1)
            headers[key.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        jpeg = response.read(int(headers["content-length"]))
        assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
        images.append(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
    return images


def green_pixels(image: np.ndarray) -> int:
    b, g, r = (image[..., c].astype(int) for c in range(3))
    return int(np.sum((g > 180) & (r < 90) & (b < 90)))


def test_mjpeg_parts_are_jpegs_of_the_moving_annotated_view(serve, publish):
    out = serve()
    publish(out)
    response = open_stream(out, "/stream.mjpg")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
    images = read_parts(response, 4)
    response.close()
    assert all(image.shape == (H, W, 3) for image in images)
    assert all(green_pixels(image) > 50 for image in images)
    assert np.abs(images[0].astype(int) - images[-1].astype(int)).max() > 100  # the rectangle moved


def test_conventional_stream_serves_the_conventional_view(serve, publish):
    out = serve()
    publish(out)
    deadline = time.monotonic() + 5
    while not out.has_conventional and time.monotonic() < deadline:
        time.sleep(0.01)
    response = open_stream(out, "/conventional.mjpg")
    (image,) = read_parts(response, 1)
    response.close()
    assert np.allclose(image.mean(axis=(0, 1)), (200, 60, 10), atol=6)


def test_conventional_stream_is_404_without_a_conventional_view(serve, publish):
    out = serve()
    publish(out, conventional=False)
    status, _, body = get(out, "/conventional.mjpg")
    assert status == 404 and "conventional" in json.loads(body)["error"]
    assert get(out, "/nothing-here")[0] == 404


def test_jpeg_encoded_once_per_frame_whatever_the_viewers(serve, publish, monkeypatch):
    calls = []
    real = cv2.imencode
    monkeypatch.setattr(cv2, "imencode", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = serve()
    streams = [open_stream(out, "/stream.mjpg") for _ in range(3)]
    received = [0, 0, 0]

    def watch(k: int) -> None:
        received[k] = len(read_parts(streams[k], 5))

    watchers = [threading.Thread(target=watch, args=(k,)) for k in range(3)]
    for t in watchers:
        t.start()
    pub = publish(out, period_s=0.03, conventional=False)
    for t in watchers:
        t.join(10)
    pub.stop()
    for s in streams:
        s.close()
    assert received == [5, 5, 5]
    assert 5 <= len(calls) <= len(pub.publish_s)  # not 3 per frame


def test_a_stalled_viewer_neither_blocks_publish_nor_the_others_nor_close(serve):
    before = set(threading.enumerate())
    out = serve()
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect, so the window stays small
    stalled.connect(("127.0.0.1", out.port))
    stalled.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")  # and never reads
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)  # ~200 kB JPEGs
    deadline = time.monotonic() + 5
    while out.clients()["mjpeg"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    durations = []
    for i in range(150):
        start = time.perf_counter()
        out.publish(FrameResult(i, float(i), noise, None, {}, {}))
        durations.append(time.perf_counter() - start)
        time.sleep(0.004)
    assert max(durations) < 0.1, f"publish took up to {max(durations) * 1e3:.1f} ms"
    viewer = open_stream(out, "/stream.mjpg")
    out.publish(FrameResult(150, 150.0, noise, None, {}, {}))
    (image,) = read_parts(viewer, 1)
    assert image.shape == (480, 640, 3)
    start = time.monotonic()
    out.close()
    assert time.monotonic() - start < 3
    assert set(threading.enumerate()) <= before
    stalled.close()
    viewer.close()


def test_events_are_json_results_and_metrics(serve, publish):
    out = serve(metrics=lambda: METRICS, metrics_interval_s=0.2)
    publish(out)
    response = open_stream(out, "/events")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events: dict[str, list] = {"result": [], "metrics": []}
    name = None
    while len(events["result"]) < 3 or not events["metrics"]:
        line = response.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events[name].append(json.loads(line[6:]))
    response.close()
    frames = [e["frame"] for e in events["result"]]
    assert frames == sorted(frames) and len(set(frames)) == 3
    first = events["result"][0]
    assert first["results"]["detections"][0]["label"] == "shirt"
    assert first["results"]["detections"][0]["score"] == pytest.approx(0.9)  # a numpy float got through
    assert first["conventional"] is True and first["latency_ms"]["end_to_end"] == 5.0
    assert events["metrics"][0] == METRICS


SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})?'
    r" (?P<value>\S+)$"
)


def parse_exposition(text: str) -> dict[str, dict]:
    """A strict reader of the Prometheus text format: grouping, HELP/TYPE order, syntax."""
    assert text.endswith("\n")
    families: dict[str, dict] = {}
    current = None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in families, f"{name} is not one group"
            families[name] = {"type": None, "samples": []}
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == current and families[name]["type"] is None and not families[name]["samples"]
            assert kind in ("counter", "gauge", "summary", "histogram", "untyped")
            families[name]["type"] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            assert match["name"] == current, f"{match['name']} outside its group"
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
            families[current]["samples"].append((labels, float(match["value"])))
    return families


def test_metrics_are_prometheus_text(serve):
    out = serve(metrics=lambda: METRICS)
    out.publish(make_result(0))
    status, headers, body = get(out, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = parse_exposition(body.decode())
    assert families["edge_isp_frames_total"] == {"type": "counter", "samples": [({}, 42.0)]}
    assert families["edge_isp_frames_dropped_total"]["samples"] == [({}, 3.0)]
    assert families["edge_isp_fps"]["type"] == "gauge"
    latency = {(s["stage"], s["quantile"]): v for s, v in families["edge_isp_stage_latency_seconds"]["samples"]}
    assert latency[("inference", "0.99")] == pytest.approx(0.0305)
    assert latency[("end_to_end", "0.5")] == pytest.approx(0.033)
    assert families["edge_isp_queue_depth"] == {"type": "gauge", "samples": [({}, 1.0)]}
    assert families["edge_isp_stage_frames_dropped_total"] == {
        "type": "counter",
        "samples": [({"stage": "inference"}, 2.0), ({"stage": "capture"}, 1.0)],
    }
    assert families["edge_isp_source_errors_total"] == {"type": "counter", "samples": [({}, 4.0)]}
    assert families["edge_isp_uptime_seconds"] == {"type": "gauge", "samples": [({}, 12.5)]}
    assert families["edge_isp_http_frames_total"]["samples"] == [({}, 1.0)]


def test_metrics_parse_with_the_reference_client_parser(serve):
    parser = pytest.importorskip("prometheus_client.parser")
    out = serve(metrics=lambda: METRICS)
    families = {f.name: f for f in parser.text_string_to_metric_families(get(out, "/metrics")[2].decode())}
    assert families["edge_isp_frames"].type == "counter"  # the client strips _total from counters
    assert families["edge_isp_frames"].samples[0].value == 42
    assert {s.labels["stage"] for s in families["edge_isp_stage_latency_seconds"].samples} == {
        "inference",
        "end_to_end",
    }


def test_prometheus_rendering_rules():
    family = prometheus.MetricFamily(
        "edge_isp_x", "gauge", "help with \\ and\nnewline", (prometheus.Sample(math.nan, (("k", 'a"b\\c\nd'),)),)
    )
    text = prometheus.render(
        [family, prometheus.MetricFamily("edge_isp_y", "gauge", "y", (prometheus.Sample(-math.inf),))]
    )
    assert "# HELP edge_isp_x help with \\\\ and\\nnewline\n" in text
    assert 'edge_isp_x{k="a\\"b\\\\c\\nd"} NaN\n' in text and text.endswith("edge_isp_y -Inf\n")
    with pytest.raises(InvalidInputError, match="metric name"):
        prometheus.MetricFamily("bad-name", "gauge", "", ())
    with pytest.raises(InvalidInputError, match="_total"):
        prometheus.MetricFamily("edge_isp_frames", "counter", "", ())
    with pytest.raises(InvalidInputError, match="label name"):
        prometheus.MetricFamily("edge_isp_x", "gauge", "", (prometheus.Sample(1, (("__x", "v"),)),))
    with pytest.raises(InvalidInputError, match="twice"):
        prometheus.render([family, family])
    with pytest.raises(InvalidInputError, match="'fps' must be a number"):
        prometheus.pipeline_families({"fps": "fast"})
    with pytest.raises(InvalidInputError, match="quantile keys"):
        prometheus.pipeline_families({"latency_ms": {"inference": {"median": 1.0}}})


def test_metrics_failure_is_a_500_not_a_dead_server(serve):
    out = serve(metrics=lambda: {"fps": "fast"})
    status, _, body = get(out, "/metrics")
    assert status == 500 and "fps" in json.loads(body)["error"]
    assert get(out, "/healthz")[0] == 503


def test_healthz_waiting_ok_stale(serve):
    out = serve(stale_after_s=0.3, token="s3cret-token")
    status, _, body = get(out, "/healthz")  # no token needed: a liveness probe carries no secret
    assert status == 503 and json.loads(body)["status"] == "waiting"
    out.publish(make_result(0))
    status, _, body = get(out, "/healthz")
    assert status == 200 and json.loads(body) | {"last_frame_age_s": 0} == {
        "status": "ok",
        "frames": 1,
        "last_frame_age_s": 0,
        "stale_after_s": 0.3,
    }
    time.sleep(0.4)
    status, _, body = get(out, "/healthz")
    assert status == 503 and json.loads(body)["status"] == "stale"


def test_token_is_required_everywhere_but_healthz(serve, publish):
    out = serve(token="s3cret-token", metrics=lambda: METRICS, controls=FakeControls())
    publish(out)
    for path in ("/", "/stream.mjpg", "/events", "/metrics", "/controls", "/?token=wrong", "/?token="):
        status, headers, _ = get(out, path)
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith("Bearer")
    assert get(out, "/metrics", {"Authorization": "Bearer wrong"})[0] == 401
    assert post(out, b'{"name": "lux", "value": 5}')[0] == 401
    assert get(out, "/?token=s3cret-token")[0] == 200
    assert get(out, "/metrics", {"Authorization": "Bearer s3cret-token"})[0] == 200
    assert post(out, b'{"name": "lux", "value": 5}', headers={"Authorization": "Bearer s3cret-token"}) == (
        200,
        {"name": "lux", "value": 5.0},
    )
    response = open_stream(out, "/stream.mjpg?token=s3cret-token")
    assert read_parts(response, 1)[0].shape == (H, W, 3)
    response.close()


def test_dashboard_page_is_served(serve):
    out = serve()
    status, headers, body = get(out, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    for needle in ("view.mjpg", "conventional-view.mjpg", "EventSource", '"control"', "Authorization", "lux"):
        assert needle in page


def test_control_post_validates_then_calls_the_control(serve):
    controls = FakeControls()
    out = serve(controls=controls)
    assert json.loads(get(out, "/controls")[2]) == {"lux": 3.0}
    assert post(out, b'{"name": "lux", "value": 30}') == (200, {"name": "lux", "value": 30.0})
    assert controls.calls == [("lux", 30)]
    refused = [
        (b'{"name": "gain", "value": 2}', "no control 'gain'; the controls are ['lux']"),
        (b'{"name": "lux", "value": "bright"}', "finite number"),
        (b'{"name": "lux", "value": true}', "finite number"),
        (b'{"name": "lux", "value": NaN}', "finite number"),
        (b'{"name": "lux"}', "JSON object"),
        (b"lux=3", "Expecting value"),
    ]
    for body, message in refused:
        status, reply = post(out, body)
        assert status == 400 and message in reply["error"], body
    assert controls.calls == [("lux", 30)]  # none of those reached the control
    status, reply = post(out, b'{"name": "lux", "value": -1}')  # the control's own refusal
    assert status == 400 and "lux must be > 0" in reply["error"] and controls.lux == 30.0
    status, reply = post(out, b'{"name": "lux", "value": 1}', ctype="text/plain")  # what a cross-site form sends
    assert status == 415 and "application/json" in reply["error"]
    assert post(out, b"{" + b" " * 5000 + b"}")[0] == 413


def test_control_is_404_without_controls(serve):
    out = serve()
    assert json.loads(get(out, "/controls")[2]) == {}
    assert post(out, b'{"name": "lux", "value": 1}')[0] == 404


def test_validate_control_types():
    assert validate_control({"lux": 3.0}, {"name": "lux", "value": 7}) == ("lux", 7)
    assert validate_control({"on": True}, {"name": "on", "value": False}) == ("on", False)
    with pytest.raises(InvalidInputError, match="true or false"):
        validate_control({"on": True}, {"name": "on", "value": 1})
    with pytest.raises(InvalidInputError, match="finite"):
        validate_control({"lux": 3.0}, {"name": "lux", "value": math.inf})


def test_close_ends_every_client_thread(serve, publish):
    before = set(threading.enumerate())
    out = serve(metrics=lambda: METRICS)
    pub = publish(out)
    deadline = time.monotonic() + 5
    while not out.has_conventional and time.monotonic() < deadline:
        time.sleep(0.01)
    streams = [open_stream(out, p) for p in ("/stream.mjpg", "/events", "/conventional.mjpg", "/stream.mjpg")]
    read_parts(streams[0], 1)
    while sum(out.clients().values()) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert out.clients() == {"mjpeg": 2, "conventional": 1, "events": 1, "dashboard": 0}
    pub.stop()
    out.close()
    assert set(threading.enumerate()) <= before
    assert out.clients() == {"mjpeg": 0, "conventional": 0, "events": 0, "dashboard": 0}
    for s in streams:
        s.read()  # the server closed the connection: read() returns at EOF instead of hanging
        s.close()
    out.open()  # an output can be opened again after a close
    out.publish(make_result(0))
    assert get(out, "/healthz")[0] == 200
    response = open_stream(out, "/stream.mjpg")
    out.publish(make_result(1))
    assert read_parts(response, 1)[0].shape == (H, W, 3)
    response.close()


def test_publish_refuses_bad_frames(serve):
    out = serve()
    bad = FrameResult(0, 0.0, np.zeros((H, W, 3), np.float32), None, {}, {})
    with pytest.raises(InvalidInputError, match=r"annotated must be an \(H, W, 3\) uint8"):
        out.publish(bad)
    with pytest.raises(InvalidInputError, match="conventional"):
        out.publish(FrameResult(0, 0.0, np.zeros((H, W, 3), np.uint8), np.zeros((H, W), np.uint8), {}, {}))


def test_binds_localhost_by_default_and_parses_addresses():
    assert HttpOutput().host == "127.0.0.1"
    assert parse_http_address("8081") == ("127.0.0.1", 8081)
    assert parse_http_address(":8081") == ("127.0.0.1", 8081)
    assert parse_http_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_http_address("[::1]:8000") == ("::1", 8000)
    for bad in ("", "host:port", "1:2:3", "127.0.0.1:99999", "localhost:80/x"):
        with pytest.raises(InvalidInputError):
            parse_http_address(bad)
    for bad in (" padded-token ", "a", "1234567", "has space", "tökenöööö", ""):
        with pytest.raises(InvalidInputError, match="at least 8 printable ASCII characters without spaces"):
            HttpOutput(token=bad)
    # The printed address never carries the token.
    assert HttpOutput(port=9000, token="a&b=c;d!").url == "http://127.0.0.1:9000/"
    with pytest.raises(InvalidInputError, match="port"):
        HttpOutput(port=70000)


def test_make_outputs_builds_what_was_asked(tmp_path):
    controls = FakeControls()
    outputs = make_outputs(http="127.0.0.1:0", record=tmp_path, token="t0ken-t0ken", controls=controls, metrics=dict)
    assert [o.name for o in outputs] == ["http", "record"]
    assert outputs[0].token == "t0ken-t0ken" and outputs[0].controls is controls
    assert make_outputs() == []
    with pytest.raises(InvalidInputError, match="token"):
        make_outputs(token="t0ken-t0ken")


def test_port_in_use_is_a_clear_error(serve):
    out = serve()
    with pytest.raises(InvalidInputError, match=f"cannot serve HTTP on 127.0.0.1:{out.port}"):
        HttpOutput("127.0.0.1", out.port).open()
