"""What jetson-inference users type (`csi://0`, `v4l2:///dev/video0`, `/dev/video0`,
`file://clip.mp4`, `rtsp://@:8554/live`, `file://out.mp4`) means something here or is
explained in one line; footage (a video or an image folder) is simulated into raw; `run` on a
file processes every frame and records H.264 at the source's resolution."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_isp.cli import main
from edge_isp.deploy.run_config import RunConfigError, parse_run_config
from edge_isp.errors import InvalidInputError
from edge_isp.runtime.interfaces import SourceEnded
from edge_isp.runtime.outputs import parse_record_target, parse_rtsp_address
from edge_isp.runtime.sources import FootageSource, ReplaySource, open_source, parse_source_spec
from edge_isp.sensor.profile import SensorProfile

from .onnx_models import spot_detector

W, H = 96, 64


def frame_with_square(i: int, size=(H, W)) -> np.ndarray:
    """Dark BGR picture with a white 16x16 square whose column tells the frame number."""
    image = np.full((*size, 3), 10, np.uint8)
    x = 8 + 4 * i
    image[24:40, x : x + 16] = 255
    return image


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (W, H))
    for i in range(12):
        writer.write(frame_with_square(i))
    writer.release()
    return path


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/dev/video0", ("v4l2", "/dev/video0")),
        ("v4l2:///dev/video1", ("v4l2", "/dev/video1")),
        ("file://clip.mp4", ("file", "clip.mp4")),
        ("file:///data/clip.mkv", ("file", "/data/clip.mkv")),
        ("clip.mp4", ("file", "clip.mp4")),
        ("frames/", ("file", "frames/")),
        ("file:frames", ("file", "frames")),
        ("replay:/data/rec", ("replay", "/data/rec")),
    ],
)
def test_forms_that_mean_something_here(spec, expected):
    assert parse_source_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("csi://1", "on a Jetson the sensor's raw comes through V4L2: give v4l2:/dev/video1"),
        ("rtsp://192.168.1.2:8554/cam", "not raw Bayer; to run on a clip, simulate raw from it with file://clip.mp4"),
        ("display://0", "display:// is an output, not a source"),
        ("gopro://x", "unknown scheme 'gopro'://; valid forms: sim, replay:DIR, file:VIDEO|DIR"),
    ],
)
def test_other_forms_are_explained_in_one_line(spec, says):
    with pytest.raises(InvalidInputError) as refused:
        parse_source_spec(spec)
    assert says in str(refused.value) and "\n" not in str(refused.value)


def test_a_folder_of_recorded_frames_replays_and_footage_is_simulated(tmp_path, clip):
    recorded = tmp_path / "rec"
    recorded.mkdir()
    (recorded / "000000.npy").write_bytes(b"")
    (recorded / "000000.json").write_text("{}")
    assert isinstance(open_source(f"file://{recorded}", profile="nexus6p-rear"), ReplaySource)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        cv2.imwrite(str(images / f"{i:03d}.png"), frame_with_square(i))
    assert isinstance(open_source(str(images)), FootageSource)
    assert isinstance(open_source(f"file://{clip}"), FootageSource)


def test_footage_becomes_raw_frames_of_the_profile_in_order_then_ends(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        cv2.imwrite(str(images / f"{i:03d}.png"), frame_with_square(i))
    profile = SensorProfile.load("nexus6p-rear")
    with FootageSource(images, profile, lux=2000, paced=False) as source:
        frames = [source.read() for _ in range(3)]
        with pytest.raises(SourceEnded):
            source.read()
    assert source.frame_size == (W, H) and source.fps == 30.0
    black = float(np.mean(profile.black_level))
    for i, frame in enumerate(frames):
        assert frame.data.shape == (H, W) and frame.cfa == profile.cfa and frame.white_level == profile.white_level
        columns = frame.data[24:40].astype(np.float32).mean(axis=0) - black
        bright = np.flatnonzero(columns > 0.5 * columns.max())
        assert bright.min() == 8 + 4 * i and bright.max() == 8 + 4 * i + 15, "the square is where the picture has it"
        assert abs(float(np.median(frame.data[:8, :8])) - black) < 0.05 * (profile.white_level - black)


def test_footage_loops_and_sizes(clip):
    with FootageSource(clip, lux=300, paced=False, loop=True, width=48, height=32) as source:
        frames = [source.read() for _ in range(30)]  # past the clip's 12 frames
    assert source.fps == 25.0 and source.frame_size == (48, 32)
    assert all(f.data.shape == (32, 48) for f in frames)
    with pytest.raises(InvalidInputError, match="even"):
        FootageSource(clip, width=47, height=32)


def test_rtsp_and_record_targets_in_url_form(tmp_path):
    assert parse_rtsp_address("rtsp://@:8554/live") == ("0.0.0.0", 8554, "/live")
    assert parse_rtsp_address("rtsp://127.0.0.1:9000/cam") == ("127.0.0.1", 9000, "/cam")
    assert parse_record_target("file://out.mp4") == {
        "directory": Path("."), "name": "out", "segment_s": None, "numbered": False
    }  # fmt: skip
    assert parse_record_target(f"file://{tmp_path}") == {"directory": tmp_path}
    with pytest.raises(InvalidInputError, match="serve a stream with --rtsp rtsp://@:8554/live"):
        parse_record_target("rtsp://@:8554/live")
    with pytest.raises(InvalidInputError, match="--rtsp serves RTSP"):
        parse_rtsp_address("file://out.mp4")


def test_run_config_takes_the_same_forms_relative_to_its_folder(tmp_path):
    config = parse_run_config(
        {"source": "file://clips/a.mp4", "model": "m.onnx", "outputs": {"rtsp": "rtsp://@:8554/live"}}, tmp_path
    )
    assert config.source == f"file:{tmp_path / 'clips/a.mp4'}"
    assert parse_run_config({"source": "/dev/video0", "model": "m"}, tmp_path).source == "/dev/video0"
    with pytest.raises(RunConfigError, match="csi://0"):
        parse_run_config({"source": "csi://0", "model": "m"}, tmp_path)


def test_run_on_a_clip_processes_every_frame_and_records_h264_at_its_size(tmp_path, clip, capsys):
    model = spot_detector(tmp_path / "det.onnx", 64, 64)
    out = tmp_path / "out.mp4"
    code = main(["run", "--source", f"file://{clip}", "--model", str(model), "--record", f"file://{out}"])
    assert code == 0
    summary = capsys.readouterr().out
    assert "12 frame(s) processed, 0 dropped" in summary, summary
    capture = cv2.VideoCapture(str(out))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == 12 and (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (W, H)
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(12)) and {line["video"] for line in lines} == {"out.mp4"}
