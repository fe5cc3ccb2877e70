"""The live pipeline through a camera outage and a damaged recording: FPS falls to 0 while no
frame arrives, a bad replay frame is a counted camera error (with and without --loop), and
only consecutive camera errors pause the capture."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edge_isp.runtime.backends import make_backend
from edge_isp.runtime.interfaces import CameraSource, SourceEnded, SourceError
from edge_isp.runtime.metrics import RateMeter
from edge_isp.runtime.sources import ReplaySource
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile
from tests.runtime.onnx_models import spot_detector
from tests.runtime.test_pipeline_flow import HEIGHT, WIDTH, Collect, make_pipeline


@pytest.fixture(scope="module")
def profile() -> SensorProfile:
    return SensorProfile.load("nexus6p-rear")


@pytest.fixture(scope="module")
def spot_model(tmp_path_factory):
    return spot_detector(tmp_path_factory.mktemp("spot") / "spot.onnx", WIDTH, HEIGHT)


def test_fps_falls_to_zero_during_an_outage():
    now = [0.0]
    meter = RateMeter(window_s=2.0, clock=lambda: now[0])
    for _ in range(90):  # 3 s at 30 FPS
        now[0] += 1 / 30
        meter.tick()
    assert meter.rate() == pytest.approx(30.0)
    now[0] += 0.02  # within the usual interval: no change
    assert meter.rate() == pytest.approx(30.0)
    now[0] += 0.5  # half a second without a frame
    assert 0 < meter.rate() < 30 * 2 / 2.5
    now[0] += 1.6  # the window has passed without a frame
    assert meter.rate() == 0.0
    for _ in range(3):  # the camera is back
        now[0] += 1 / 30
        meter.tick()
    assert meter.rate() > 0


def frame(width: int, height: int, seed: int) -> RawFrame:
    data = np.random.default_rng(seed).integers(64, 1024, (height, width), dtype=np.uint16)
    return RawFrame(data=data, cfa="RGGB", bit_depth=10, black_level=64, white_level=1023, timestamp_s=float(seed))


def damaged_recording(folder, width: int = 8, height: int = 6) -> list[str]:
    """Six frames: good, 0-byte .npy, good, truncated .npy, a frame of another size, good."""
    for i in range(6):
        frame(width, height, i).save(folder / f"{i:03d}")
    (folder / "001.npy").write_bytes(b"")
    full = (folder / "003.npy").read_bytes()
    (folder / "003.npy").write_bytes(full[: len(full) - 10])
    frame(4, 4, 4).save(folder / "004")
    return ["000", "002", "005"]


@pytest.mark.parametrize("loop", [False, True])
def test_a_bad_replay_frame_is_a_camera_error_not_the_end(tmp_path, loop):
    good = damaged_recording(tmp_path)
    got, errors = [], []
    with ReplaySource(tmp_path, paced=False, restamp=False, loop=loop) as source:
        for _ in range(12):
            try:
                got.append(source.read())
            except SourceError as exc:
                errors.append(str(exc))
            except SourceEnded:
                break
    passes = 2 if loop else 1
    assert [f.timestamp_s for f in got] == [float(name) for name in good] * passes
    assert len(errors) == 3 * passes
    assert "001.npy skipped" in errors[0] and "not a readable .npy" in errors[0]
    assert "003.npy skipped" in errors[1]
    assert "004.npy skipped" in errors[2] and "is 4x4, but the recording's frames are 8x6" in errors[2]


def test_the_pipeline_replays_past_bad_frames_with_loop(tmp_path, profile, spot_model):
    damaged_recording(tmp_path, WIDTH, HEIGHT)
    source = ReplaySource(tmp_path, paced=False, loop=True)
    out = Collect()
    pipeline = make_pipeline(source, make_backend(spot_model), profile, [out], when_full="block", max_frames=9)
    metrics = pipeline.run(handle_signals=False)
    assert metrics["frames"] == 9 and metrics["source_errors"] == 9  # three passes, three bad frames in each
    assert source.loops == 2 and not source.is_open


class ScriptedSource(CameraSource):
    """Reads fail where the script says "x"; ends after the script."""

    name = "scripted"

    def __init__(self, inner: CameraSource, script: str) -> None:
        super().__init__()
        self.inner, self.script, self.reads = inner, script, 0

    def _open(self) -> None:
        self.inner.open()

    def _close(self) -> None:
        self.inner.close()

    def _read(self, timeout_s):
        if self.reads >= len(self.script):
            raise SourceEnded("script done")
        self.reads += 1
        if self.script[self.reads - 1] == "x":
            raise SourceError("a frame was lost")
        return self.inner.read(timeout_s)


def test_only_consecutive_camera_errors_pause_the_capture(tmp_path, profile, spot_model):
    for i in range(2):
        frame(WIDTH, HEIGHT, i).save(tmp_path / f"{i:03d}")
    script = "oxoooxooooxxxoxo"  # lone losses, then three in a row
    source = ScriptedSource(ReplaySource(tmp_path, paced=False, loop=True), script)
    pause_s = 0.0123
    pipeline = make_pipeline(source, make_backend(spot_model), profile, [Collect()], when_full="block",
                             source_error_pause_s=pause_s)  # fmt: skip
    pauses = []
    stop_wait = pipeline._stop.wait

    def recording_wait(timeout=None):
        if timeout == pause_s and threading.current_thread().name == "edge-isp-capture":
            pauses.append(timeout)
        return stop_wait(timeout)

    pipeline._stop.wait = recording_wait
    metrics = pipeline.run(handle_signals=False)
    assert metrics["source_errors"] == script.count("x") == 6
    assert metrics["frames"] == script.count("o")
    assert len(pauses) == 2  # the second and third of the three in a row
