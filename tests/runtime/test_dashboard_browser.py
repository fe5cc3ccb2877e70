"""The dashboard in a real headless Chromium, driven over the DevTools protocol.

A fake pipeline thread publishes a moving rectangle with a green box, lit by a ``lux`` control
(brighter with more light), plus a conventional view. The page is opened with an access
token, so everything below also shows that the page passes the token on. Checks: two
screenshots apart in time differ in the video and show box-green pixels; the conventional
view is shown beside it; the detections list and FPS fill in; moving the light slider reaches
the control and brightens the video.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from edge_isp.runtime.interfaces import FrameResult
from edge_isp.runtime.outputs import HttpOutput

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (Debian: apt-get install chromium)")
TOKEN = "dash-token"
H, W = 240, 320
VIEWPORT = (1400, 900)


class DevTools:
    """The smallest WebSocket client that speaks the Chrome DevTools protocol (RFC 6455, text frames)."""

    def __init__(self, ws_url: str) -> None:
        url = urlsplit(ws_url)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=15)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        assert head.startswith(b"HTTP/1.1 101") and accept in head, head
        self.next_id = 0

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "DevTools closed the connection"
            data += chunk
        return data

    def _send(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        size = bytes([0x80 | n]) if n < 126 else bytes([0xFE]) + struct.pack(">H", n)
        if n >= 1 << 16:
            size = bytes([0xFF]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = (np.frombuffer(payload, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), n)).tobytes()
        self.sock.sendall(bytes([0x80 | opcode]) + size + mask + masked)

    def _message(self) -> dict:
        parts = []
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            payload = self._exact(n)
            opcode = b0 & 0x0F
            if opcode == 9:
                self._send(10, payload)
                continue
            assert opcode in (0, 1, 2), f"unexpected WebSocket opcode {opcode}"
            parts.append(payload)
            if b0 & 0x80:
                return json.loads(b"".join(parts))

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self._send(1, json.dumps({"id": self.next_id, "method": method, "params": params}).encode())
        while True:
            message = self._message()
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def screenshot(self) -> np.ndarray:
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)

    def crop(self, shot: np.ndarray, element_id: str) -> np.ndarray:
        rect = f"document.getElementById('{element_id}').getBoundingClientRect()"
        box = self.evaluate(f"(() => {{ const r = {rect}; return [r.left, r.top, r.width, r.height]; }})()")
        x, y, w, h = (round(v) for v in box)
        assert w > 0 and h > 0, f"#{element_id} is not displayed"
        return shot[y + 2 : y + h - 2, x + 2 : x + w - 2]


class LightControls:
    def __init__(self) -> None:
        self.lux = 3.0
        self.lock = threading.Lock()

    def controls(self) -> dict[str, float]:
        with self.lock:
            return {"lux": self.lux}

    def set_control(self, name: str, value: float) -> None:
        with self.lock:
            self.lux = float(value)


def scene(i: int, lux: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """The learned view (brightness follows lux, a moving grey block in a green box) and a conventional one."""
    level = int(np.clip(15 + 2 * lux, 0, 230))
    image = np.full((H, W, 3), level, np.uint8)
    x = 20 + (i * 9) % (W - 100)
    image[80:160, x : x + 60] = 128
    cv2.rectangle(image, (x - 4, 76), (x + 64, 164), (0, 255, 0), 3)
    conventional = np.full((H, W, 3), (level // 2, level // 2, level), np.uint8)
    return image, conventional, {"detections": [{"box": [x, 80, x + 60, 160], "label": "shirt", "score": 0.93}]}


def wait_for(check: Callable[[], object], what: str, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def live():
    controls = LightControls()
    out = HttpOutput("127.0.0.1", 0, token=TOKEN, controls=controls, metrics=lambda: {"fps": 25.0, "frames": 1})
    out.open()
    stop = threading.Event()

    def run() -> None:
        i = 0
        while not stop.wait(0.04):
            image, conventional, results = scene(i, controls.controls()["lux"])
            out.publish(FrameResult(i, time.time(), image, conventional, results, {"end_to_end": 12.0}))
            i += 1

    thread = threading.Thread(target=run)
    thread.start()
    yield out, controls
    stop.set()
    thread.join()
    out.close()


@pytest.fixture(scope="module")
def page(live, tmp_path_factory):
    out, _ = live
    profile = tmp_path_factory.mktemp("chromium-profile")
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
        "about:blank",
    ]
    browser = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        wait_for(lambda: port_file.exists() and port_file.read_text().count("\n") >= 1, "Chromium's DevTools port")
        port = int(port_file.read_text().split("\n")[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        devtools = DevTools(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
        devtools.call(
            "Emulation.setDeviceMetricsOverride",
            width=VIEWPORT[0],
            height=VIEWPORT[1],
            deviceScaleFactor=1,
            mobile=False,
        )
        devtools.call("Page.navigate", url=f"http://127.0.0.1:{out.port}/?token={TOKEN}")
        wait_for(lambda: devtools.evaluate("location.port") == str(out.port), "the dashboard to load")
        wait_for(lambda: devtools.evaluate("!!document.getElementById('learned')"), "the dashboard to load")
        yield devtools
        devtools.sock.close()
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()


def green_pixels(image: np.ndarray) -> int:
    b, g, r = (image[..., c].astype(int) for c in range(3))
    return int(np.sum((g > 180) & (r < 100) & (b < 100)))


def test_page_shows_moving_video_with_boxes_results_and_both_views(page):
    wait_for(lambda: page.evaluate("document.getElementById('learned').naturalWidth") == W, "the MJPEG video")
    wait_for(
        lambda: page.evaluate("document.getElementById('conventional').naturalWidth") == W, "the conventional view"
    )
    first = page.crop(page.screenshot(), "learned")
    time.sleep(0.4)
    shot = page.screenshot()
    second = page.crop(shot, "learned")
    assert first.shape[:2] == (H - 4, W - 4)
    assert green_pixels(first) > 200 and green_pixels(second) > 200
    assert np.abs(first.astype(int) - second.astype(int)).max() > 60, "the video did not move"
    conventional = page.crop(shot, "conventional")
    assert conventional[..., 2].mean() > conventional[..., 1].mean() + 5  # the red-tinted conventional view
    results = wait_for(lambda: page.evaluate("document.getElementById('results').textContent"), "detections")
    assert "shirt 0.93" in results
    assert "12.0 ms" in page.evaluate("document.getElementById('frame').textContent")  # the frame's latency
    assert "25.0 FPS" in wait_for(lambda: page.evaluate("document.getElementById('stats').textContent"), "FPS")


def test_light_slider_reaches_the_control_and_changes_the_stream(page, live):
    _, controls = live
    wait_for(lambda: page.evaluate("!document.getElementById('light').classList.contains('hidden')"), "the slider")
    wait_for(lambda: page.evaluate("document.getElementById('learned').naturalWidth") == W, "the MJPEG video")
    dark = page.crop(page.screenshot(), "learned")
    page.evaluate(
        "(() => { const s = document.getElementById('lux'); s.value = luxToSlider(100);"
        " s.dispatchEvent(new Event('input')); })()"
    )
    wait_for(lambda: abs(controls.controls()["lux"] - 100) < 2, "the POST /control to arrive")
    time.sleep(0.4)  # a few frames at the new light level
    bright = page.crop(page.screenshot(), "learned")
    assert bright.mean() > dark.mean() + 80, (dark.mean(), bright.mean())
    assert page.evaluate("document.getElementById('status').textContent") == ""
