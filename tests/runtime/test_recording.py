"""Recording: MP4 segments that play back, JSON lines that line up with them, and what a
Ctrl-C, a hard crash or a slow disk leaves behind; with GStreamer's H.264 in fragmented MP4
(where it is installed) and with OpenCV's fallback. Files are read back with OpenCV's FFmpeg,
a decoder we did not write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_isp.errors import InvalidInputError
from edge_isp.runtime.interfaces import FrameResult
from edge_isp.runtime.outputs import recording
from edge_isp.runtime.outputs.recording import Recorder
from edge_isp.runtime.outputs.video_writers import choose_writer

H, W = 64, 96
HAS_GSTREAMER = choose_writer("auto")[0] == "gstreamer"
WRITERS = [
    pytest.param("gstreamer", marks=pytest.mark.skipif(not HAS_GSTREAMER, reason="no GStreamer H.264 here")),
    "opencv",
]
CODECS = {"gstreamer": "H.264 (", "opencv": "MPEG-4 Part 2 (mp4v)"}


def result(i: int, size: tuple[int, int] = (H, W)) -> FrameResult:
    """A dark frame with a white block whose column tells the frame number."""
    h, w = size
    image = np.full((h, w, 3), 30, np.uint8)
    x = (i * 4) % (w - 8)
    image[16:48, x : x + 8] = 255
    return FrameResult(i, 10.0 + i / 30, image, None, {"labels": [{"label": "shirt", "score": np.float32(0.5)}]}, {})


def block_column(image: np.ndarray) -> float:
    """The left edge of the white block, from the centre of the bright columns."""
    columns = image[16:48].mean(axis=(0, 2))
    return float(np.flatnonzero(columns > 140).mean()) - 3.5


def read_video(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} does not open"
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def read_lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("writer", WRITERS)
def test_segments_play_back_and_json_lines_point_into_them(tmp_path, writer):
    with Recorder(tmp_path, fps=30, segment_s=1.0, name="run", writer=writer) as rec:
        for i in range(45):
            rec.publish(result(i))
    assert [p.name for p in rec.segments] == ["run-000.mp4", "run-001.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-000.mp4", "run-001.mp4", "run.jsonl"]
    videos = {p.name: read_video(p) for p in rec.segments}
    assert [len(v) for v in videos.values()] == [30, 15]
    assert rec.codec.startswith(CODECS[writer]) and rec.recorded == 45 and rec.dropped == 0
    lines = read_lines(tmp_path / "run.jsonl")
    assert [line["frame"] for line in lines] == list(range(45))
    assert lines[0]["results"]["labels"][0] == {"label": "shirt", "score": 0.5}
    for line in lines[::7]:
        image = videos[line["video"]][line["video_frame"]]
        assert abs(block_column(image) - (line["frame"] * 4) % (W - 8)) < 1.5  # frames are 4 px apart


@pytest.mark.parametrize("writer", WRITERS)
def test_ctrl_c_leaves_a_finalized_recording(tmp_path, writer):
    with pytest.raises(KeyboardInterrupt), Recorder(tmp_path, fps=30, name="intr", writer=writer) as rec:
        for i in range(12):
            rec.publish(result(i))
        raise KeyboardInterrupt
    assert len(read_video(tmp_path / "intr-000.mp4")) == 12
    assert len(read_lines(tmp_path / "intr.jsonl")) == 12
    assert not list(tmp_path.glob("*.partial.mp4"))


def test_a_hard_crash_keeps_finished_opencv_segments_and_complete_lines(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, signal, sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_recording import result
        from edge_isp.runtime.outputs.recording import Recorder
        rec = Recorder({str(tmp_path)!r}, fps=30, segment_s=0.5, name="crash", writer="opencv").open()
        for i in range(40):
            rec.publish(result(i))
        while rec.recorded < 40:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    finished = sorted(tmp_path.glob("crash-*[0-9].mp4"))
    assert [p.name for p in finished] == ["crash-000.mp4", "crash-001.mp4"]
    assert [len(read_video(p)) for p in finished] == [15, 15]
    assert [p.name for p in tmp_path.glob("*.partial.mp4")] == ["crash-002.partial.mp4"]
    lines = read_lines(tmp_path / "crash.jsonl")  # every line complete, none lost
    assert [line["frame"] for line in lines] == list(range(40))


def test_a_slow_disk_drops_frames_instead_of_blocking(tmp_path, monkeypatch):
    real = recording.open_video_writer

    class SlowWriter:
        def __init__(self, writer):
            self.writer = writer

        def write(self, image):
            time.sleep(0.03)
            self.writer.write(image)

        def release(self):
            self.writer.release()

        description = "slow"

    def slow_open(*args, **kwargs):
        writer = real(*args, **kwargs)
        writer.description = "slow"
        return SlowWriter(writer)

    monkeypatch.setattr(recording, "open_video_writer", slow_open)
    durations = []
    with Recorder(tmp_path, fps=30, name="slow", queue_frames=4) as rec:
        for i in range(30):
            start = time.perf_counter()
            rec.publish(result(i))
            durations.append(time.perf_counter() - start)
    assert max(durations) < 0.02
    assert rec.dropped > 0 and rec.recorded + rec.dropped == 30
    lines = read_lines(tmp_path / "slow.jsonl")
    assert len(lines) == rec.recorded == len(read_video(tmp_path / "slow-000.mp4"))  # video and lines agree


@pytest.mark.parametrize("writer", WRITERS)
def test_a_new_frame_size_starts_a_new_segment(tmp_path, writer):
    with Recorder(tmp_path, fps=30, segment_s=None, name="sizes", writer=writer) as rec:
        for i in range(5):
            rec.publish(result(i))
        for i in range(5, 8):
            rec.publish(result(i, size=(48, 80)))
    frames = [read_video(p) for p in rec.segments]
    assert [len(f) for f in frames] == [5, 3]
    assert frames[1][0].shape == (48, 80, 3)


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("size", [(192, 128), lambda: (193, 128)], ids=["given", "asked-at-first-frame"])
def test_recorded_at_the_sources_resolution(tmp_path, writer, size):
    with Recorder(tmp_path, fps=30, name="big", size_wh=size, writer=writer) as rec:
        for i in range(6):
            rec.publish(result(i))
    frames = read_video(tmp_path / "big-000.mp4")
    assert len(frames) == 6 and frames[0].shape == (128, 192, 3)
    assert abs(block_column(cv2.resize(frames[3], (W, H))) - 12) < 1.5


@pytest.mark.skipif(not HAS_GSTREAMER, reason="no GStreamer H.264 here")
def test_a_killed_h264_recording_plays_up_to_its_last_fragment(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_recording import result
        from edge_isp.runtime.outputs.recording import Recorder
        rec = Recorder({str(tmp_path)!r}, fps=30, segment_s=None, name="killed", writer="gstreamer").open()
        i = 0
        while True:  # recording until killed from outside
            rec.publish(result(i))
            i += 1
            time.sleep(1 / 300)
        """
    )
    video = tmp_path / "killed-000.mp4"
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (video.is_file() and video.read_bytes().count(b"moof") >= 3) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -9
    frames = read_video(video)
    assert len(frames) >= 60, "at least the two first one-second fragments play"  # 30 fps
    assert frames[0].shape == (H, W, 3)
    lines = read_lines(tmp_path / "killed.jsonl")
    assert len(lines) >= len(frames)
    for line in lines[: len(frames) : 9]:
        image = frames[line["video_frame"]]
        assert abs(block_column(image) - (line["frame"] * 4) % (W - 8)) < 1.5


def test_refusals(tmp_path, monkeypatch):
    with pytest.raises(InvalidInputError, match="fps"):
        Recorder(tmp_path, fps=0)
    with pytest.raises(InvalidInputError, match="segment_s"):
        Recorder(tmp_path, segment_s=-1)
    rec = Recorder(tmp_path, name="x")
    with pytest.raises(InvalidInputError, match="not open"):
        rec.publish(result(0))
    with rec:
        with pytest.raises(InvalidInputError, match=r"\(H, W, 3\) uint8"):
            rec.publish(FrameResult(0, 0.0, np.zeros((H, W), np.uint8), None, {}, {}))
        rec.publish(result(0))
    with pytest.raises(InvalidInputError, match="already exists"):
        Recorder(tmp_path, name="x").open()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(recording, "open_video_writer", broken)
    with Recorder(tmp_path, name="broken") as rec:
        rec.publish(result(0))
        deadline = time.monotonic() + 5
        while rec._error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(InvalidInputError, match="disk full"):
            rec.publish(result(1))
    assert os.path.getsize(tmp_path / "broken.jsonl") == 0
