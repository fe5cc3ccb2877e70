"""A headless Chromium driven over the DevTools protocol, for the dashboard's browser test and
``scripts/dashboard_screenshots.py``: the smallest WebSocket client that speaks it (RFC 6455,
text frames), a launcher, screenshots and element crops."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def wait_for(check: Callable[[], object], what: str, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class DevTools:
    """One page's DevTools connection."""

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

    def resize(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def screenshot(self) -> np.ndarray:
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)

    def rect(self, element_id: str) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` of an element in CSS pixels."""
        rect = f"document.getElementById('{element_id}').getBoundingClientRect()"
        box = self.evaluate(f"(() => {{ const r = {rect}; return [r.left, r.top, r.width, r.height]; }})()")
        return tuple(round(v) for v in box)

    def crop(self, shot: np.ndarray, element_id: str) -> np.ndarray:
        x, y, w, h = self.rect(element_id)
        assert w > 0 and h > 0, f"#{element_id} is not displayed"
        return shot[y + 2 : y + h - 2, x + 2 : x + w - 2]


@contextlib.contextmanager
def chromium_page(url: str, size: tuple[int, int]) -> Iterator[DevTools]:
    """A headless Chromium showing ``url`` at ``size`` (width, height) CSS pixels."""
    assert CHROMIUM is not None, "needs a headless Chromium (Debian: apt-get install chromium)"
    # Chromium's helper processes can still write to the profile as the browser exits: the
    # whole process group is stopped, and a file they leave does not fail the test.
    with tempfile.TemporaryDirectory(prefix="chromium-profile-", ignore_cleanup_errors=True) as profile:
        args = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
            f"--window-size={size[0]},{size[1]}", "about:blank",
        ]  # fmt: skip
        browser = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            wait_for(lambda: port_file.exists() and port_file.read_text().count("\n") >= 1, "Chromium's DevTools port")
            port = int(port_file.read_text().split("\n")[0])
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
            devtools = DevTools(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
            devtools.resize(*size)
            devtools.call("Page.navigate", url=url)
            wait_for(lambda: devtools.evaluate("!!document.getElementById('learned')"), "the dashboard to load")
            yield devtools
            devtools.sock.close()
        finally:
            _stop_group(browser)


def _stop_group(process: subprocess.Popen) -> None:
    """Stop ``process`` and every process it started (its session's group)."""
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
