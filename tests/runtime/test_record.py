"""`edge-isp record` and record(): frames written atomically, a manifest, limits, a clean stop on
Ctrl-C, and a recording that replays to the same frames and ground truth."""

from __future__ import annotations

import json
import os
import signal
import threading

import numpy as np
import pytest

from edge_isp import cli
from edge_isp.data import sources as data_sources
from edge_isp.errors import InvalidInputError
from edge_isp.runtime.interfaces import CameraSource, SourceError
from edge_isp.runtime.record import record
from edge_isp.runtime.sources import ManualClock, ReplaySource, SimulatedSource
from edge_isp.runtime.sources.scene import MovingScene, Sprite
from edge_isp.sensor.frame import RawFrame

HAVE_SCENE_DATA = (data_sources.fashion_mnist_dir() / "t10k-images-idx3-ubyte.gz").is_file()


def scene() -> MovingScene:
    background = np.full((24, 32, 3), 0.5, np.float32)
    sprite = Sprite(
        label=6,
        rgb=np.full((8, 8, 3), 0.8, np.float32),
        alpha=np.ones((8, 8), np.float32),
        frequency_hz=(0.7, 0.4),
        phase=(0.0, 1.0),
    )
    return MovingScene(background, [sprite])


def sim(**kw) -> SimulatedSource:
    kw.setdefault("paced", False)
    return SimulatedSource(scene=scene(), seed=4, **kw)


class Counter(CameraSource):
    """Frames numbered 1, 2, ...; calls ``hook(n)`` before returning frame n; fails at ``fail_at``."""

    name = "counter"

    def __init__(self, hook=None, fail_at=None):
        super().__init__()
        self.hook, self.fail_at, self.n = hook, fail_at, 0

    def _open(self):
        self.n = 0

    def _close(self):
        pass

    def _read(self, timeout_s):
        self.n += 1
        if self.n == self.fail_at:
            raise SourceError("cable pulled")
        if self.hook:
            self.hook(self.n)
        return RawFrame(np.full((2, 4), self.n, np.uint16), "RGGB", 10, 64, 1023, timestamp_s=self.n / 10)


def pairs(folder) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.npy") if p.with_suffix(".json").exists())


def test_recording_replays_to_the_same_frames_and_truth(tmp_path):
    result = record(sim(), tmp_path / "rec", frames=5, handle_signals=False)
    assert (result.frames, result.interrupted, result.ended) == (5, False, False)
    assert pairs(tmp_path / "rec") == [f"{i:06d}" for i in range(5)]
    manifest = json.loads(result.manifest.read_text())
    assert manifest["frames"] == 5 and manifest["source"] == "sim" and len(manifest["truth"]) == 5
    assert manifest["class_names"][6] == "shirt"

    with sim() as again, ReplaySource(tmp_path / "rec", paced=False, restamp=False) as replay:
        for _ in range(5):
            expected, got = again.read(), replay.read()
            assert np.array_equal(expected.data, got.data)
            assert got.digital_gain == pytest.approx(expected.digital_gain)
            assert np.array_equal(replay.last_truth["boxes"], again.last_truth["boxes"])
            assert replay.last_truth["labels"].tolist() == [6]
    assert replay.class_names == manifest["class_names"]


def test_seconds_keeps_the_frames_of_the_window(tmp_path):
    clock = ManualClock()
    source = sim(paced=True, fps=10, clock=clock)
    result = record(source, tmp_path / "rec", seconds=0.35, clock=clock, handle_signals=False)
    assert result.frames == 4  # at 0.0, 0.1, 0.2 and 0.3 s
    assert json.loads(result.manifest.read_text())["fps"] == pytest.approx(10.0)


def test_a_finite_source_ends_the_recording(tmp_path):
    record(Counter(), tmp_path / "a", frames=3, handle_signals=False)
    result = record(ReplaySource(tmp_path / "a", paced=False), tmp_path / "b", handle_signals=False)
    assert (result.frames, result.ended) == (3, True)


def test_stop_event_interrupts_cleanly(tmp_path):
    stop = threading.Event()
    result = record(Counter(hook=lambda n: n == 3 and stop.set()), tmp_path / "rec", stop=stop, handle_signals=False)
    assert (result.frames, result.interrupted) == (3, True)
    assert json.loads(result.manifest.read_text())["interrupted"] is True


def test_ctrl_c_stops_after_the_frame_being_written(tmp_path):
    before = signal.getsignal(signal.SIGINT)

    def press_ctrl_c(n):
        if n == 3:
            os.kill(os.getpid(), signal.SIGINT)

    result = record(Counter(hook=press_ctrl_c), tmp_path / "rec", frames=100)
    assert (result.frames, result.interrupted) == (3, True)
    assert pairs(tmp_path / "rec") == ["000000", "000001", "000002"]
    assert not [p for p in (tmp_path / "rec").iterdir() if p.name.endswith(".tmp")]
    assert signal.getsignal(signal.SIGINT) is before


def test_a_failing_camera_keeps_what_was_recorded(tmp_path):
    with pytest.raises(SourceError, match="cable pulled"):
        record(Counter(fail_at=4), tmp_path / "rec", handle_signals=False)
    assert pairs(tmp_path / "rec") == ["000000", "000001", "000002"]
    assert json.loads((tmp_path / "rec" / "recording.json").read_text())["frames"] == 3
    assert RawFrame.load(tmp_path / "rec" / "000002.npy").data[0, 0] == 3


def test_an_existing_recording_is_kept_unless_overwritten(tmp_path):
    record(Counter(), tmp_path / "rec", frames=4, handle_signals=False)
    with pytest.raises(InvalidInputError, match="already holds a recording"):
        record(Counter(), tmp_path / "rec", frames=2, handle_signals=False)
    (tmp_path / "rec" / "notes.txt").write_text("mine")
    record(Counter(), tmp_path / "rec", frames=2, overwrite=True, handle_signals=False)
    assert pairs(tmp_path / "rec") == ["000000", "000001"]
    assert (tmp_path / "rec" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("kw", "message"), [({"frames": 0}, "frames"), ({"seconds": -1.0}, "seconds")])
def test_bad_limits(tmp_path, kw, message):
    with pytest.raises(InvalidInputError, match=message):
        record(Counter(), tmp_path / "rec", **kw)


# ---------------------------------------------------------------- the command


@pytest.fixture
def main(monkeypatch):
    if "edge_isp.cli.record_commands" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "edge_isp.cli.record_commands"))
    return cli.main


def test_command_records_a_replay(tmp_path, main, capsys):
    record(Counter(), tmp_path / "src", frames=4, handle_signals=False)
    out = tmp_path / "copy"
    code = main(["record", "--source", f"replay:{tmp_path / 'src'}", "--out", str(out), "--frames", "2", "--loop"])
    assert code == 0 and pairs(out) == ["000000", "000001"]
    assert "2 frame(s)" in capsys.readouterr().out


@pytest.mark.skipif(not HAVE_SCENE_DATA, reason="Fashion-MNIST not installed")
def test_command_records_the_simulation(tmp_path, main):
    argv = ["record", "--source", "sim", "--out", str(tmp_path / "rec"), "--frames", "2", "--size", "48x32"]
    assert main([*argv, "--lux", "5", "--fps", "1000"]) == 0
    frame = RawFrame.load(tmp_path / "rec" / "000001.npy")
    assert frame.data.shape == (32, 48) and frame.sensor == "sim:nexus6p-rear"


def test_command_errors_name_the_valid_choices(tmp_path, main, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["record", "--source", "webcam", "--out", str(tmp_path / "x")])
    assert exit_.value.code == 1
    assert "sim, replay:DIR, file:VIDEO|DIR, picamera2" in " ".join(capsys.readouterr().err.split())  # wrapped
    with pytest.raises(SystemExit):
        main(["record", "--source", f"replay:{tmp_path}", "--out", str(tmp_path / "x"), "--lux", "3"])
    assert "does not take option(s) lux" in " ".join(capsys.readouterr().err.split())
