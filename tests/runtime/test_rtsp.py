"""RTSP output: encoder choice and pipeline description (pure), and a real stream read back
with OpenCV's FFmpeg client where GStreamer's RTSP server and its Python bindings are installed."""

from __future__ import annotations

import sys
import threading
import time

import cv2
import numpy as np
import pytest

from edge_isp.errors import InvalidInputError, MissingDependencyError
from edge_isp.runtime.interfaces import FrameResult
from edge_isp.runtime.outputs import make_outputs, parse_rtsp_address
from edge_isp.runtime.outputs.rtsp import (
    ENCODER_PREFERENCE,
    H264Encoder,
    RtspOutput,
    choose_h264_encoder,
    launch_description,
    load_gstreamer,
    read_board_model,
)

JETSON = {"appsrc", "videoconvert", "h264parse", "rtph264pay", "nvv4l2h264enc", "nvvidconv", "x264enc"}


def gstreamer_or_none():
    try:
        return load_gstreamer()[0]
    except MissingDependencyError:
        return None


GST = gstreamer_or_none()
needs_gstreamer = pytest.mark.skipif(
    GST is None,
    reason="GStreamer's RTSP server with Python bindings is not installed (python3-gi, gir1.2-gst-rtsp-server-1.0...)",
)


@pytest.mark.parametrize(
    ("available", "model", "expected", "hardware"),
    [
        (JETSON, "NVIDIA Jetson AGX Orin Developer Kit", "nvv4l2h264enc", True),
        (JETSON, "NVIDIA Jetson Orin Nano Developer Kit", "x264enc", False),  # no NVENC on the Orin Nano
        (JETSON - {"nvvidconv"}, "NVIDIA Jetson Xavier NX", "x264enc", False),  # NVENC is fed through nvvidconv
        ({"v4l2h264enc", "x264enc"}, "Raspberry Pi 4 Model B Rev 1.5", "v4l2h264enc", True),
        ({"x264enc", "openh264enc"}, "", "x264enc", False),
        ({"openh264enc"}, "", "openh264enc", False),
    ],
)
def test_encoder_choice(available, model, expected, hardware):
    assert choose_h264_encoder(available, model) == H264Encoder(expected, hardware)


def test_encoder_choice_refusals():
    with pytest.raises(MissingDependencyError, match=r"gstreamer1\.0-plugins-ugly"):
        choose_h264_encoder({"appsrc", "rtph264pay"})
    assert choose_h264_encoder(JETSON, "AGX Orin", prefer="x264enc").element == "x264enc"
    with pytest.raises(
        InvalidInputError, match=r"'v4l2h264enc' is not usable here; usable: \['nvv4l2h264enc', 'x264enc'\]"
    ):
        choose_h264_encoder(JETSON, "AGX Orin", prefer="v4l2h264enc")


@pytest.mark.parametrize("element", ENCODER_PREFERENCE)
def test_launch_description_names_the_parts_the_server_looks_for(element):
    encoder = H264Encoder(element, element.startswith(("nv", "v4l2")))
    text = launch_description(encoder, bitrate_kbps=2500, gop_frames=15)
    assert text.startswith("( appsrc name=src ") and text.endswith("rtph264pay name=pay0 pt=96 config-interval=1 )")
    assert f" {element} " in text and ("2500" in text or "2500000" in text) and "15" in text
    for name in encoder.needs:
        assert name in text
    if GST is not None and all(GST.ElementFactory.find(name) for name in encoder.needs):
        pipeline = GST.parse_launch(text.strip("() "))  # valid gst-launch syntax with these elements
        assert pipeline.get_by_name("src") is not None and pipeline.get_by_name("pay0") is not None


def test_read_board_model(tmp_path):
    path = tmp_path / "model"
    path.write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\x00")
    assert read_board_model(str(path)) == "NVIDIA Jetson Orin Nano Developer Kit"
    assert read_board_model(str(tmp_path / "missing")) == ""


def test_missing_bindings_name_the_debian_packages(monkeypatch):
    monkeypatch.setitem(sys.modules, "gi", None)  # import gi now raises ImportError
    with pytest.raises(MissingDependencyError) as info:
        RtspOutput(port=0).open()
    packages = ("python3-gi", "gir1.2-gst-rtsp-server-1.0", "gstreamer1.0-plugins-bad", "gstreamer1.0-plugins-ugly")
    for package in (*packages, "PyGObject"):
        assert package in str(info.value)


def test_rtsp_address_parsing_and_arguments():
    assert parse_rtsp_address("8554/stream") == ("127.0.0.1", 8554, "/stream")
    assert parse_rtsp_address("0.0.0.0:9000/cam") == ("0.0.0.0", 9000, "/cam")
    assert parse_rtsp_address("/live") == ("127.0.0.1", 8554, "/live")
    assert parse_rtsp_address("8000") == ("127.0.0.1", 8000, "/stream")
    for bad in ("", "80/", "stream", "1:2:3/x", "70000/x"):
        with pytest.raises(InvalidInputError):
            parse_rtsp_address(bad)
    (out,) = make_outputs(rtsp="0.0.0.0:9000/cam", fps=25)
    assert isinstance(out, RtspOutput) and out.url == "rtsp://0.0.0.0:9000/cam" and out.fps == 25
    with pytest.raises(InvalidInputError, match="path"):
        RtspOutput(path="nostart")


def frame(i: int, size=(160, 224)) -> np.ndarray:
    """Left half red, right half blue, a white block moving along the bottom."""
    h, w = size
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 2] = (0, 0, 220)
    image[:, w // 2 :] = (220, 0, 0)
    x = (i * 6) % (w - 32)
    image[h - 40 : h - 8, x : x + 32] = 255
    return image


@needs_gstreamer
@pytest.mark.skipif(not cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG), reason="OpenCV has no FFmpeg backend")
def test_stream_read_back_with_a_real_client(monkeypatch):
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    before = set(threading.enumerate())
    out = RtspOutput(port=0, path="/test", fps=30).open()
    assert out.port > 0 and out.encoder is not None
    stop = threading.Event()

    def run() -> None:
        i = 0
        while not stop.wait(1 / 30):
            out.publish(FrameResult(i, time.time(), frame(i), None, {}, {}))
            i += 1

    publisher = threading.Thread(target=run)
    publisher.start()
    try:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
        capture = cv2.VideoCapture(out.url, cv2.CAP_FFMPEG, params)
        assert capture.isOpened(), f"could not open {out.url}"
        frames = []
        for _ in range(20):
            ok, image = capture.read()
            if ok:
                frames.append(image)
        assert len(frames) >= 15
        first, last = frames[0], frames[-1]
        assert first.shape == (160, 224, 3)
        assert np.allclose(first[10:100, 10:100].mean(axis=(0, 1)), (0, 0, 220), atol=20)  # red stays red
        assert np.allclose(first[10:100, 124:214].mean(axis=(0, 1)), (220, 0, 0), atol=20)
        assert np.abs(first[120:152].astype(int) - last[120:152].astype(int)).mean() > 5  # the block moved
        with pytest.raises(InvalidInputError, match="RTSP stream is"):
            out.publish(FrameResult(0, 0.0, frame(0, size=(80, 96)), None, {}, {}))
        stop.set()
        publisher.join()
        start = time.monotonic()
        out.close()  # with the client still connected
        assert time.monotonic() - start < 3
        capture.release()
    finally:
        stop.set()
        publisher.join()
        out.close()
    assert set(threading.enumerate()) <= before
