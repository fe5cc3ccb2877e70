"""Auto-exposure wired into the camera sources through their device seams: a fake V4L2 node and
a fake picamera2 that behave as sensors (brightness follows exposure x gain, with the sensor's
control delay), so what each frame says it was taken with can be checked against what the
fake sensor really used."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from edge_isp.errors import InvalidInputError
from edge_isp.runtime.exposure import ExposureController, ExposureLimits, meter
from edge_isp.runtime.sources import open_source
from edge_isp.runtime.sources import picamera2_source as pc
from edge_isp.runtime.sources import v4l2_device as vd
from edge_isp.runtime.sources import v4l2_source as vs
from edge_isp.sensor.rawformat import Packing, RawFormat, encode

from .test_camera_decode import FakeNode, FakePicamera2

# Normalized brightness per gain-second of the fake scene: 0.18 needs 0.09 gain-seconds.
SCENE_PER_GAIN_S = 2.0
LIMITS = ExposureLimits(max_exposure_s=0.03, max_analogue_gain=10.0)


class SensorNode(FakeNode):
    """A node whose frames (flat, 10-bit, black 64) follow its gain and exposure controls two
    frames after they are written while streaming; ``used`` records, per sequence, what each frame was taken with."""

    delay = 2

    def __init__(self, path):
        super().__init__(path)
        self.sequence, self.used, self.pending = 0, {}, []
        self.sensor_state = dict(self.values_by_id)  # what the sensor exposes with now

    def set_control(self, control, value):
        super().set_control(control, value)  # V4L2 reports the value written at once
        if self.started:
            self.pending.append((self.sequence + self.delay, control.id, value))
        else:  # before streaming starts it holds from the first frame
            self.sensor_state[control.id] = value

    def dequeue(self, timeout_s):
        self.sequence += 1
        for when, cid, value in [p for p in self.pending if p[0] <= self.sequence]:
            self.sensor_state[cid] = value
            self.pending.remove((when, cid, value))
        gain, exposure_s = self.sensor_state[1] / 16, self.sensor_state[2] * 1e-6
        self.used[self.sequence] = (exposure_s, gain)
        level = min(1.0, SCENE_PER_GAIN_S * exposure_s * gain)
        values = np.full((4, 8), round(64 + level * (1023 - 64)), np.uint16)
        data = encode(values, vs.frame_format("RG10", None), stride=32)
        return vd.Dequeued(data, self.sequence, self.sequence / 30, False)


@pytest.fixture
def sensor_node(monkeypatch):
    FakeNode.instances = []
    monkeypatch.setattr(vd, "Device", SensorNode)
    return FakeNode


class TestV4L2:
    def test_converges_and_every_frame_records_what_the_sensor_used(self, sensor_node):
        ae = ExposureController(LIMITS)
        with open_source("v4l2:/dev/video0", black_level=64, auto_exposure=ae) as source:
            frames, sequences = [], []
            for _ in range(30):
                frames.append(source.read())
                sequences.append(source.sequence)
            node = sensor_node.instances[0]
        for frame, sequence in zip(frames, sequences, strict=True):
            exposure_s, gain = node.used[sequence]
            assert frame.exposure_time_s == pytest.approx(exposure_s) and frame.analogue_gain == pytest.approx(gain)
        last = frames[-1]
        assert meter(last) * last.digital_gain == pytest.approx(0.18, rel=0.05)
        # 0.09 gain-seconds: 0.03 s (the frame-time limit) at gain 3, no digital gain.
        assert last.exposure_time_s == pytest.approx(0.03) and last.analogue_gain == pytest.approx(3.0, rel=0.05)
        assert last.digital_gain == pytest.approx(1.0, abs=0.06)

    def test_limits_narrowed_to_the_node_and_values_rounded_to_its_steps(self, sensor_node):
        ae = ExposureController(ExposureLimits(max_exposure_s=1.0, max_analogue_gain=100.0))
        with vs.V4L2Source("/dev/video0", black_level=64, auto_exposure=ae) as source:
            source.read()
            with pytest.raises(InvalidInputError, match="auto-exposure sets gain"):
                source.set_control("gain", 32)
        assert ae.limits.max_exposure_s == pytest.approx(0.683709)  # the node's exposure maximum, us
        assert ae.limits.max_analogue_gain == pytest.approx(170 / 16)
        written = sensor_node.instances[0].set
        assert isinstance(written["Exposure"], int) and isinstance(written["Gain"], int)

    def test_a_node_without_exposure_controls_is_refused(self, sensor_node, monkeypatch):
        monkeypatch.setattr(SensorNode, "controls", lambda self: [self.ctrl["bypass_mode"]])
        with pytest.raises(InvalidInputError, match="needs the controls exposure, gain"):
            vs.V4L2Source("/dev/video0", black_level=64, auto_exposure=ExposureController()).open()


class SensorPicamera2(FakePicamera2):
    """A picamera2 whose requests report (and whose pixels follow) the controls in force: those
    set two requests earlier, as libcamera's per-request metadata does."""

    camera_controls = {  # noqa: RUF012 - as picamera2 lists them: (min, max, default)
        "ExposureTime": (26, 1_000_000, 20000),
        "AnalogueGain": (1.0, 10.667, 1.0),
        "FrameDurationLimits": (33333, 120_000_000, 33333),
    }

    def __init__(self, camera_num=0):
        super().__init__(camera_num)
        self.captures = 0
        self.history = [(0, {"ExposureTime": 20000, "AnalogueGain": 1.0})]  # (first capture, controls)

    def configure(self, config):
        super().configure(config)
        self.history.append((0, {**self.history[-1][1], **(config["controls"] or {})}))

    def set_controls(self, controls):
        super().set_controls(controls)
        self.history.append((self.captures + 2, {**self.history[-1][1], **controls}))

    def capture_request(self, wait=None):
        self.captures += 1
        now = [controls for first, controls in self.history if first <= self.captures][-1]
        self.metadata = {**self.metadata, "ExposureTime": now["ExposureTime"], "AnalogueGain": now["AnalogueGain"]}
        level = min(1.0, SCENE_PER_GAIN_S * now["ExposureTime"] * 1e-6 * now["AnalogueGain"])
        values = np.full((480, 640), round(64 + level * (1023 - 64)), np.uint16)
        self.buffer = encode(values, RawFormat("RGGB", 10, Packing.UNPACKED_MSB), stride=1280 + 64)
        return super().capture_request(wait)


@pytest.fixture
def sensor_picamera2(monkeypatch):
    FakePicamera2.instances = []
    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=SensorPicamera2))
    return FakePicamera2


class TestPicamera2:
    def test_agc_off_frame_time_stretched_and_converges_on_its_own_metadata(self, sensor_picamera2):
        ae = ExposureController(LIMITS)
        with pc.Picamera2Source(auto_exposure=ae) as source:
            frames = [source.read(timeout_s=1.0) for _ in range(25)]
            cam = sensor_picamera2.instances[0]
        asked = cam.asked["controls"]
        assert asked["AeEnable"] is False and asked["FrameDurationLimits"] == (33333, 33333)
        assert all(c["AeEnable"] is False and isinstance(c["ExposureTime"], int) for c in cam.controls_set)
        last = frames[-1]
        assert meter(last) * last.digital_gain == pytest.approx(0.18, rel=0.05)
        assert last.exposure_time_s == pytest.approx(0.03, rel=1e-3)
        assert last.analogue_gain == pytest.approx(3, rel=0.05)

    def test_fixed_fps_caps_the_exposure_and_fixed_exposure_excludes_auto(self, sensor_picamera2):
        ae = ExposureController(ExposureLimits(max_exposure_s=0.1))
        refused = pytest.raises(InvalidInputError, match="auto-exposure sets analogue_gain")
        with pc.Picamera2Source(auto_exposure=ae, fps=50) as source, refused:
            source.set_control("analogue_gain", 2.0)
        assert ae.limits.max_exposure_s == pytest.approx(0.02)
        with pytest.raises(InvalidInputError, match="not both"):
            pc.Picamera2Source(auto_exposure=ae, exposure_time_s=0.01)

    def test_control_range(self):
        assert pc.control_range({"ExposureTime": (26, 1000, 20)}, "ExposureTime", 1e-6) == pytest.approx((26e-6, 1e-3))
        assert pc.control_range({}, "ExposureTime") is None
        assert pc.control_range({"AnalogueGain": (0, 0, 0)}, "AnalogueGain") is None
