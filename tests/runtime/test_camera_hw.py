"""Real cameras, run with ``pytest -m camera`` on the board.

- Raspberry Pi: the first camera through picamera2 (skipped where picamera2 is missing).
- V4L2 (Jetson): ``$EDGE_ISP_V4L2_DEVICE`` (default /dev/video0), fourcc ``$EDGE_ISP_V4L2_FOURCC``
  (default RG10), black level ``$EDGE_ISP_V4L2_BLACK`` (default 64, DN), bit alignment
  ``$EDGE_ISP_V4L2_MSB_SHIFT`` (default: LSB, as V4L2 documents). Skipped without the node.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
from pathlib import Path

import numpy as np
import pytest

from edge_isp.runtime.exposure import ExposureController, ExposureLimits, meter
from edge_isp.runtime.sources import Picamera2Source, V4L2Source

pytestmark = pytest.mark.camera


def check_frames(frames, bits_range=(8, 16)) -> None:
    first = frames[0]
    assert bits_range[0] <= first.bit_depth <= bits_range[1]
    for frame in frames:
        assert frame.data.shape == first.data.shape and frame.data.shape[0] % 2 == 0
        assert int(frame.data.max()) < 2**frame.bit_depth
        assert min(frame.black_level) >= 0 and max(frame.black_level) < 2**frame.bit_depth / 4
        assert frame.analogue_gain >= 1.0
    stamps = [f.timestamp_s for f in frames]
    assert all(b > a for a, b in itertools.pairwise(stamps))


@pytest.fixture
def picamera2_available():
    if importlib.util.find_spec("picamera2") is None:
        pytest.skip("picamera2 is not installed (not a Raspberry Pi)")


def test_picamera2_frames_and_metadata(picamera2_available):
    with Picamera2Source() as source:
        frames = [source.read(timeout_s=5.0) for _ in range(8)]
        assert "PISP_COMP" not in str(source.layout.fmt)
    check_frames(frames)
    assert all(f.exposure_time_s > 0 for f in frames)
    # Fully exposed pixels of an unpacked frame reach the top of the sensor's range, never beyond.
    assert frames[-1].white_level == 2 ** frames[-1].bit_depth - 1


def test_picamera2_manual_exposure_reaches_the_metadata(picamera2_available):
    with Picamera2Source(exposure_time_s=0.01, analogue_gain=2.0) as source:
        frames = [source.read(timeout_s=5.0) for _ in range(10)]
    settled = frames[-1]  # controls take a few frames to apply
    assert settled.exposure_time_s == pytest.approx(0.01, rel=0.1)
    assert settled.analogue_gain == pytest.approx(2.0, rel=0.1)


def check_auto_exposure(frames, limit_s: float) -> None:
    """Whatever the scene, the exposure stays within the limit, digital gain is used only once
    the exposure is at its limit, and a lit scene ends near the target."""
    for f in frames:
        assert 0 < f.exposure_time_s <= limit_s * 1.05
    for f in frames[-20:]:  # settled (while the sensor catches up, digital gain bridges)
        assert f.digital_gain == pytest.approx(1.0, abs=0.1) or f.exposure_time_s >= limit_s * 0.9
    last = frames[-1]
    shown = meter(last) * last.digital_gain
    assert shown == pytest.approx(0.18, rel=0.35) or last.digital_gain == pytest.approx(64.0), (
        "a scene too dark for every gain ends at the most digital gain"
    )


def test_picamera2_auto_exposure_uses_exposure_then_gain(picamera2_available):
    ae = ExposureController(ExposureLimits(max_exposure_s=1 / 30))
    with Picamera2Source(auto_exposure=ae) as source:
        frames = [source.read(timeout_s=5.0) for _ in range(60)]
    check_auto_exposure(frames, 1 / 30)


def v4l2_source(**kw) -> V4L2Source:
    device = os.environ.get("EDGE_ISP_V4L2_DEVICE", "/dev/video0")
    if not Path(device).exists():
        pytest.skip(f"{device} does not exist (set EDGE_ISP_V4L2_DEVICE)")
    shift = os.environ.get("EDGE_ISP_V4L2_MSB_SHIFT")
    return V4L2Source(
        device,
        fourcc=os.environ.get("EDGE_ISP_V4L2_FOURCC", "RG10"),
        black_level=float(os.environ.get("EDGE_ISP_V4L2_BLACK", "64")),
        msb_shift=None if shift is None else int(shift),
        **kw,
    )


def test_v4l2_auto_exposure_uses_exposure_then_gain():
    ae = ExposureController(ExposureLimits(max_exposure_s=1 / 30))
    with v4l2_source(auto_exposure=ae) as source:
        frames = [source.read(timeout_s=5.0) for _ in range(60)]
    check_auto_exposure(frames, 1 / 30)


def test_v4l2_frames_and_metadata():
    source = v4l2_source()
    with source:
        frames, sequences = [], []
        for _ in range(8):
            frames.append(source.read(timeout_s=5.0))
            sequences.append(source.sequence)
    check_frames(frames)
    assert np.all(np.diff(sequences) >= 1)
