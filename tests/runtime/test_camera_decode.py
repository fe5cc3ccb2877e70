"""Raspberry Pi (picamera2) and V4L2 (Jetson) sources: format choice, byte decoding and metadata,
tested on bytes; the adapters driven through stand-ins for picamera2 and the V4L2 node that
record what the adapter asked for. The real devices are in test_camera_hw.py (``camera``)."""

from __future__ import annotations

import concurrent.futures
import ctypes
import errno
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from edge_isp.errors import InvalidInputError, MissingDependencyError, RawFormatError
from edge_isp.runtime.interfaces import SourceError
from edge_isp.runtime.sources import picamera2_source as pc
from edge_isp.runtime.sources import v4l2_device as vd
from edge_isp.runtime.sources import v4l2_source as vs
from edge_isp.sensor.cfa import CFA
from edge_isp.sensor.profile import SensorProfile
from edge_isp.sensor.rawformat import Packing, RawFormat, encode


def mosaic(bits: int, shape=(8, 12), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**bits, shape, dtype=np.uint16)


# ================================================================ picamera2: pure logic

MODES = [
    {"format": "SRGGB10_CSI2P", "unpacked": "SRGGB10", "bit_depth": 10, "size": (640, 480), "fps": 200.0},
    {"format": "SRGGB10_CSI2P", "unpacked": "SRGGB10", "bit_depth": 10, "size": (1640, 1232), "fps": 83.0},
    {"format": "SRGGB10_CSI2P", "unpacked": "SRGGB10", "bit_depth": 10, "size": (3280, 2464), "fps": 21.0},
    {"format": "SRGGB8", "unpacked": "SRGGB8", "bit_depth": 8, "size": (640, 480), "fps": 200.0},
]


class TestPicamera2Logic:
    def test_mode_choice(self):
        assert pc.select_sensor_mode(MODES)["size"] == (640, 480)  # deepest, smallest covering 640x480
        assert pc.select_sensor_mode(MODES, (1280, 720))["size"] == (1640, 1232)
        assert pc.select_sensor_mode(MODES, (8000, 6000))["size"] == (3280, 2464)  # none covers: the largest
        assert pc.select_sensor_mode(MODES, bit_depth=8)["bit_depth"] == 8
        with pytest.raises(InvalidInputError, match="no 12-bit mode; it offers 8, 10"):
            pc.select_sensor_mode(MODES, bit_depth=12)

    def test_raw_stream_is_requested_unpacked(self):
        assert pc.raw_request(MODES[1]) == {"format": "SRGGB10", "size": (1640, 1232)}
        assert pc.raw_request({"format": "SBGGR12_CSI2P", "size": (4056, 3040)})["format"] == "SBGGR12"
        assert pc.unpacked_name("BGGR_PISP_COMP1", 12) == "SBGGR12"
        with pytest.raises(InvalidInputError, match="bit depth"):
            pc.unpacked_name("RGGB_PISP_COMP1")

    def test_layout_pi4_unpacked_and_packed(self):
        lsb = pc.configured_layout({"format": "SBGGR12", "size": (64, 8), "stride": 128}, 12)
        assert lsb.fmt == RawFormat(CFA.BGGR, 12, Packing.UNPACKED_LSB) and lsb.msb_shift is None
        packed = pc.configured_layout({"format": "SRGGB10_CSI2P", "size": (64, 8), "stride": 96}, 10)
        assert packed.fmt.packing is Packing.CSI2P and packed.stride == 96

    def test_layout_pi5_sixteen_bit_words(self):
        layout = pc.configured_layout({"format": "SGRBG16", "size": (64, 8), "stride": 128}, 12)
        assert layout.fmt == RawFormat(CFA.GRBG, 12, Packing.UNPACKED_MSB) and layout.msb_shift == 4

    def test_compressed_format_is_refused(self):
        with pytest.raises(RawFormatError, match=r"PISP_COMP1.*lossy.*SRGGB12"):
            pc.configured_layout({"format": "RGGB_PISP_COMP1", "size": (64, 8), "stride": 64}, 12)

    def test_black_levels_scale_from_sixteen_bits(self):
        md = {"SensorBlackLevels": (4096, 4100, 4104, 4112)}
        assert pc.black_levels(md, 12) == pytest.approx((256.0, 256.25, 256.5, 257.0))
        assert pc.black_levels({}, 10) == pytest.approx((64.0,) * 4)  # libcamera's default
        with pytest.raises(InvalidInputError, match="SensorBlackLevels"):
            pc.black_levels({"SensorBlackLevels": (1, 2)}, 10)

    @pytest.mark.parametrize(
        ("name", "sensor_bits", "packing", "shift"),
        [("SRGGB10", 10, Packing.UNPACKED_LSB, None), ("SRGGB16", 10, Packing.UNPACKED_MSB, 6),
         ("SRGGB10_CSI2P", 10, Packing.CSI2P, None)],
    )  # fmt: skip
    def test_frame_from_bytes_with_padded_stride(self, name, sensor_bits, packing, shift):
        values = mosaic(sensor_bits, (8, 16))
        fmt = RawFormat(CFA.RGGB, sensor_bits, packing)
        stride = fmt.line_bytes(16) + 12
        buffer = encode(values, fmt, stride=stride, msb_shift=shift) + b"\0" * 40  # libcamera pads the end too
        layout = pc.configured_layout({"format": name, "size": (16, 8), "stride": stride}, sensor_bits)
        md = {"ExposureTime": 12500, "AnalogueGain": 2.5, "SensorBlackLevels": (4096,) * 4,
              "SensorTimestamp": 123_456_789_000}  # fmt: skip
        frame = pc.frame_from_capture(buffer, layout, md, "imx219")
        assert np.array_equal(frame.data, values) and frame.bit_depth == sensor_bits
        assert frame.black_level == (64.0,) * 4 and frame.white_level == 1023
        assert (frame.analogue_gain, frame.exposure_time_s) == (2.5, pytest.approx(0.0125))
        assert frame.timestamp_s == pytest.approx(123.456789) and frame.sensor == "imx219"

    def test_manual_controls(self):
        assert pc.manual_controls(None, None) == {}
        assert pc.manual_controls(0.01, 4) == {"AeEnable": False, "ExposureTime": 10000, "AnalogueGain": 4.0}
        with pytest.raises(InvalidInputError, match="analogue_gain"):
            pc.manual_controls(None, 0.5)


# ================================================================ picamera2: the adapter


class FakeRequest:
    def __init__(self, cam, fail=False):
        self.cam, self.fail, self.released = cam, fail, False

    def make_buffer(self, name):
        if self.fail:
            raise RuntimeError("buffer gone")
        assert name == "raw"
        return np.frombuffer(self.cam.buffer, np.uint8)

    def get_metadata(self):
        return dict(self.cam.metadata)

    def release(self):
        self.released = True


class FakeJob:
    def __init__(self, cam):
        self.cam = cam

    def get_result(self, timeout=None):
        if self.cam.timeouts:
            self.cam.timeouts -= 1
            raise concurrent.futures.TimeoutError
        request = FakeRequest(self.cam, self.cam.fail_buffer)
        self.cam.requests.append(request)
        return request


class FakePicamera2:
    """Records the configuration asked for and delivers ``delivered`` as libcamera would."""

    instances: ClassVar[list] = []
    delivered = "SRGGB16"

    def __init__(self, camera_num=0):
        self.camera_num, self.requests, self.controls_set, self.jobs = camera_num, [], [], 0
        self.timeouts, self.fail_buffer, self.closed, self.started = 0, False, False, False
        self.sensor_modes = MODES
        self.camera_properties = {"Model": "imx219"}
        self.values = mosaic(10, (480, 640), 3)
        self.buffer = encode(self.values, RawFormat(CFA.RGGB, 10, Packing.UNPACKED_MSB), stride=1280 + 64)
        self.metadata = {"ExposureTime": 20000, "AnalogueGain": 3.0, "SensorBlackLevels": (4096,) * 4,
                         "SensorTimestamp": 5_000_000_000}  # fmt: skip
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main=None, lores=None, raw=None, buffer_count=6, controls=None, sensor=None):
        return {"main": main, "raw": raw, "buffer_count": buffer_count, "controls": controls, "sensor": sensor}

    def configure(self, config):
        self.asked = config

    def camera_configuration(self):
        w, h = self.asked["raw"]["size"]
        raw = {"format": self.delivered, "size": (w, h), "stride": 1280 + 64}
        return {"raw": raw, "sensor": {"bit_depth": 10, "output_size": (w, h)}}

    def start(self):
        self.started = True

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True

    def capture_request(self, wait=None):
        assert wait is False
        self.jobs += 1
        return FakeJob(self)

    def set_controls(self, controls):
        self.controls_set.append(dict(controls))


@pytest.fixture
def fake_picamera2(monkeypatch):
    FakePicamera2.instances = []
    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    return FakePicamera2


class TestPicamera2Adapter:
    def test_requests_unpacked_raw_and_reads_frame_with_its_metadata(self, fake_picamera2):
        with pc.Picamera2Source(exposure_time_s=0.02) as source:
            frame = source.read(timeout_s=1.0)
            cam = fake_picamera2.instances[0]
            assert cam.asked["raw"] == {"format": "SRGGB10", "size": (640, 480)}
            assert cam.asked["sensor"] == {"output_size": (640, 480), "bit_depth": 10}
            assert cam.asked["controls"] == {"AeEnable": False, "ExposureTime": 20000}
            assert np.array_equal(frame.data, cam.values) and frame.bit_depth == 10
            assert (frame.analogue_gain, frame.exposure_time_s, frame.timestamp_s) == (3.0, 0.02, 5.0)
            assert frame.black_level == (64.0,) * 4 and frame.sensor == "imx219"
            assert cam.requests[0].released
        assert cam.closed

    def test_compressed_substitution_is_refused_and_the_camera_closed(self, fake_picamera2, monkeypatch):
        monkeypatch.setattr(fake_picamera2, "delivered", "RGGB_PISP_COMP1")
        with pytest.raises(RawFormatError, match="lossy"):
            pc.Picamera2Source().open()
        assert fake_picamera2.instances[0].closed

    def test_request_is_released_when_copying_fails(self, fake_picamera2):
        with pc.Picamera2Source() as source:
            fake_picamera2.instances[0].fail_buffer = True
            with pytest.raises(RuntimeError, match="buffer gone"):
                source.read()
            assert fake_picamera2.instances[0].requests[0].released

    def test_timeout_keeps_the_capture_pending_for_the_next_read(self, fake_picamera2):
        with pc.Picamera2Source() as source:
            cam = fake_picamera2.instances[0]
            cam.timeouts = 1
            with pytest.raises(SourceError, match=r"no frame within 0.1 s"):
                source.read(timeout_s=0.1)
            source.read(timeout_s=0.1)
            assert cam.jobs == 1 and cam.requests[0].released

    def test_live_gain_control(self, fake_picamera2):
        with pc.Picamera2Source() as source:
            source.set_control("analogue_gain", 4)
            source.set_control("analogue_gain", None)
            assert fake_picamera2.instances[0].controls_set == [
                {"AeEnable": False, "AnalogueGain": 4.0},
                {"AeEnable": True},
            ]
            with pytest.raises(InvalidInputError, match="has no control 'iso'"):
                source.set_control("iso", 100)

    def test_without_picamera2_the_message_gives_raspberry_pis_route(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails, as on a machine without it
        with pytest.raises(MissingDependencyError, match=r"apt install python3-picamera2.*--system-site-packages"):
            pc.Picamera2Source().open()


# ================================================================ V4L2: the ioctl layer


class TestV4L2Layout:
    # From linux/videodev2.h on 64-bit Linux (aarch64 and x86_64 agree).
    SIZES: ClassVar[dict] = {"Capability": 104, "PixFormat": 48, "Format": 208, "RequestBuffers": 20, "Buffer": 88,
             "QueryCtrl": 68, "ExtControl": 20, "ExtControls": 32}  # fmt: skip
    IOCTLS: ClassVar[dict] = {"VIDIOC_QUERYCAP": 0x80685600, "VIDIOC_G_FMT": 0xC0D05604, "VIDIOC_S_FMT": 0xC0D05605,
              "VIDIOC_REQBUFS": 0xC0145608, "VIDIOC_QUERYBUF": 0xC0585609, "VIDIOC_QBUF": 0xC058560F,
              "VIDIOC_DQBUF": 0xC0585611, "VIDIOC_STREAMON": 0x40045612, "VIDIOC_STREAMOFF": 0x40045613,
              "VIDIOC_QUERYCTRL": 0xC0445624, "VIDIOC_G_EXT_CTRLS": 0xC0205647,
              "VIDIOC_S_EXT_CTRLS": 0xC0205648}  # fmt: skip

    @pytest.mark.skipif(ctypes.sizeof(ctypes.c_void_p) != 8, reason="layouts are for 64-bit Linux")
    def test_struct_sizes_and_ioctl_numbers(self):
        assert {n: ctypes.sizeof(getattr(vd, n)) for n in self.SIZES} == self.SIZES
        assert {n: getattr(vd, n) for n in self.IOCTLS} == self.IOCTLS
        assert (vd.Buffer.timestamp.offset, vd.Buffer.sequence.offset, vd.Buffer.m.offset) == (24, 56, 64)

    @pytest.mark.skipif(
        not (shutil.which("cc") and Path("/usr/include/linux/videodev2.h").is_file()),
        reason="needs a C compiler and the kernel headers",
    )
    def test_layouts_match_this_machines_kernel_header(self, tmp_path):
        structs = {
            "Capability": "capability",
            "Format": "format",
            "Buffer": "buffer",
            "ExtControl": "ext_control",
            "ExtControls": "ext_controls",
            "QueryCtrl": "queryctrl",
            "RequestBuffers": "requestbuffers",
        }
        checks = "".join(f'printf("{n} %zu\\n", sizeof(struct v4l2_{c}));' for n, c in structs.items())
        checks += "".join(f'printf("{n} %lu\\n", (unsigned long){n});' for n in self.IOCTLS)
        source = tmp_path / "v.c"
        source.write_text(f"#include <stdio.h>\n#include <linux/videodev2.h>\nint main(){{{checks}return 0;}}\n")
        subprocess.run(["cc", str(source), "-o", str(tmp_path / "v")], check=True, capture_output=True)
        out = dict(line.split() for line in subprocess.check_output([str(tmp_path / "v")], text=True).splitlines())
        for name, value in out.items():
            ours = getattr(vd, name) if name.startswith("VIDIOC") else ctypes.sizeof(getattr(vd, name))
            assert ours == int(value), name

    def test_fourcc(self):
        assert vd.fourcc_code("RG10") == 0x30314752  # V4L2_PIX_FMT_SRGGB10
        assert vd.fourcc_text(vd.fourcc_code("pRAA")) == "pRAA"


# ================================================================ V4L2: pure logic


class TestV4L2Logic:
    def test_control_keys_and_metadata(self):
        assert vs.control_key("Analogue Gain") == "analogue_gain" and vs.control_key("Bypass Mode") == "bypass_mode"
        assert vs.gain_exposure({"gain": 48, "exposure": 16600}) == (3.0, pytest.approx(0.0166))
        assert vs.gain_exposure({}) == (None, None)

    def test_levels(self):
        assert vs.sensor_levels(10, 64) == ((64.0,) * 4, 1023.0)
        profile = SensorProfile.load("nexus6p-rear")  # 10-bit: black 64, white 1023
        black, white = vs.sensor_levels(12, profile=profile)
        assert black == (256.0,) * 4 and white == 4092.0
        with pytest.raises(InvalidInputError, match="does not report its black level"):
            vs.sensor_levels(10)

    def test_lsb_words_with_line_padding_and_trailing_bytes(self):
        values = mosaic(10, (6, 10))
        fmt = vs.frame_format("RG10", None)
        data = encode(values, fmt, stride=32) + b"\xff" * 64  # the VI rounds the image size up
        frame = vs.frame_from_buffer(
            data, width=10, height=6, stride=32, fmt=fmt, msb_shift=None, black_level=(64,) * 4,
            white_level=1023, analogue_gain=2.0, exposure_time_s=0.01, timestamp_s=7.5, sensor="imx219",
        )  # fmt: skip
        assert np.array_equal(frame.data, values) and frame.cfa is CFA.RGGB
        assert (frame.analogue_gain, frame.exposure_time_s, frame.timestamp_s) == (2.0, 0.01, 7.5)

    def test_msb_aligned_words_with_replicated_low_bits(self):
        values = mosaic(10, (6, 10))
        words = (values << 6) | (values >> 4)  # bits [15:6] hold the value, its top bits repeat below
        fmt = vs.frame_format("RG10", 6)
        frame = vs.frame_from_buffer(
            words.astype("<u2").tobytes(), width=10, height=6, stride=20, fmt=fmt, msb_shift=6,
            black_level=(64,) * 4, white_level=1023, analogue_gain=None, exposure_time_s=None,
            timestamp_s=None, sensor="x",
        )  # fmt: skip
        assert np.array_equal(frame.data, values) and frame.analogue_gain == 1.0

    def test_msb_data_declared_lsb_suggests_the_shift(self):
        values = mosaic(10, (6, 10))
        values[0, 0] = 1023  # a saturated pixel, as in a bright capture
        data = (values << 6).astype("<u2").tobytes()
        with pytest.raises(RawFormatError, match="msb_shift=6"):
            vs.frame_from_buffer(
                data, width=10, height=6, stride=20, fmt=vs.frame_format("RG10", None), msb_shift=None,
                black_level=(64,) * 4, white_level=1023, analogue_gain=None, exposure_time_s=None,
                timestamp_s=None, sensor="x",
            )  # fmt: skip
        assert vs.suggest_msb_shift(values, 10) == 0

    def test_msb_shift_needs_a_word_format(self):
        with pytest.raises(InvalidInputError, match="16-bit word formats"):
            vs.frame_format("pRAA", 6)


# ================================================================ V4L2: the adapter


class FakeNode:
    """A V4L2 node that answers the adapter's calls: offers ``offered`` and delivers ``queue``."""

    offered = "RG10"
    instances: ClassVar[list] = []

    def __init__(self, path):
        if path == "/dev/video9":
            raise FileNotFoundError(errno.ENOENT, "No such file", path)
        self.path, self.closed, self.started, self.set = path, False, 0, {}
        self.values = mosaic(10, (4, 8))
        item = vd.Dequeued(encode(self.values, vs.frame_format("RG10", None), stride=32), 41, 12.5, False)
        self.queue = [item._replace(error=True, sequence=40), item]
        self.ctrl = {
            "gain": vd.Control(1, "Gain", vd.CTRL_TYPE_INTEGER64, 16, 170, 16),
            "exposure": vd.Control(2, "Exposure", vd.CTRL_TYPE_INTEGER64, 13, 683709, 2495),
            "bypass_mode": vd.Control(3, "Bypass Mode", vd.CTRL_TYPE_MENU, 0, 1, 1),
        }
        self.values_by_id = {1: 32, 2: 10000, 3: 1}
        FakeNode.instances.append(self)

    def capability(self):
        return types.SimpleNamespace(
            capabilities=vd.CAP_DEVICE_CAPS,
            device_caps=vd.CAP_VIDEO_CAPTURE | vd.CAP_STREAMING,
            card=b"vi-output, imx219",
        )

    def get_format(self):
        return types.SimpleNamespace(width=8, height=4, pixelformat=vd.fourcc_code("RG10"), bytesperline=32)

    def set_format(self, width, height, fourcc):
        return types.SimpleNamespace(width=width, height=height, pixelformat=vd.fourcc_code(self.offered),
                                     bytesperline=32)  # fmt: skip

    def controls(self):
        return list(self.ctrl.values())

    def get_control(self, control):
        return self.values_by_id[control.id]

    def set_control(self, control, value):
        self.values_by_id[control.id] = value
        self.set[control.name] = value

    def start(self, count):
        self.started = count

    def dequeue(self, timeout_s):
        item = self.queue.pop(0) if self.queue else None
        if isinstance(item, OSError):
            raise item
        return item

    def close(self):
        self.closed = True


@pytest.fixture
def fake_node(monkeypatch):
    FakeNode.instances = []
    monkeypatch.setattr(vd, "Device", FakeNode)
    return FakeNode


class TestV4L2Adapter:
    def test_reads_frames_with_metadata_and_skips_corrupt_ones(self, fake_node):
        # The gain written after frame 41 shows in frame 42: a control delay of 1.
        with vs.V4L2Source("/dev/video0", black_level=64, control_delay_frames=1) as source:
            node = fake_node.instances[0]
            frame = source.read()
            assert node.set == {"Bypass Mode": 0} and node.started == 4
            assert np.array_equal(frame.data, node.values) and source.sequence == 41
            assert (frame.analogue_gain, frame.exposure_time_s, frame.timestamp_s) == (2.0, 0.01, 12.5)
            assert frame.sensor == "vi-output, imx219"
            source.set_control("gain", 64)
            node.queue = [frame_item(node)]
            assert source.read().analogue_gain == 4.0
            assert source.controls()["gain"] == 64
            with pytest.raises(InvalidInputError, match=r"no control 'iso'.*bypass_mode, exposure, gain"):
                source.set_control("iso", 1)
        assert node.closed

    def test_format_the_node_cannot_deliver(self, fake_node, monkeypatch):
        monkeypatch.setattr(fake_node, "offered", "YUYV")
        with pytest.raises(InvalidInputError, match="cannot deliver RG10 8x4; it offered YUYV"):
            vs.V4L2Source("/dev/video0", black_level=64).open()
        assert fake_node.instances[0].closed

    def test_device_failures_are_source_errors(self, fake_node):
        with pytest.raises(SourceError, match="does not exist"):
            vs.V4L2Source("/dev/video9", black_level=64).open()
        with vs.V4L2Source("/dev/video0", black_level=64) as source:
            node = fake_node.instances[-1]
            node.queue = [OSError(errno.ENODEV, "No such device")]
            with pytest.raises(SourceError, match="disappeared"):
                source.read()
            node.queue = []
            with pytest.raises(SourceError, match=r"no frame within 0.5 s"):
                source.read(timeout_s=0.5)


def frame_item(node: FakeNode) -> vd.Dequeued:
    return vd.Dequeued(encode(node.values, vs.frame_format("RG10", None), stride=32), 42, 13.0, False)
