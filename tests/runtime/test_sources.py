"""Camera sources: the factory, pacing, the simulated camera, replay, and the retry wrapper.

Everything runs on small frames and a manual clock: no test sleeps.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edge_isp.data import sources as data_sources
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.runtime.interfaces import CameraSource, SourceEnded, SourceError
from edge_isp.runtime.sources import (
    SOURCE_FORMS,
    ManualClock,
    ReplaySource,
    RetryingSource,
    RetryPolicy,
    SimulatedSource,
    V4L2Source,
    open_source,
    parse_source_spec,
    rawsynth,
)
from edge_isp.runtime.sources.clock import Pacer
from edge_isp.runtime.sources.replay import list_recording, recorded_interval
from edge_isp.runtime.sources.scene import MovingScene, Sprite, build_scene
from edge_isp.sensor.cfa import pack
from edge_isp.sensor.exposure import choose_exposure
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import NoiseAtGain, SensorProfile

HAVE_SCENE_DATA = (data_sources.fashion_mnist_dir() / "t10k-images-idx3-ubyte.gz").is_file()


def square_scene(width: int = 64, height: int = 48, colour=(0.9, 0.1, 0.1), size: int = 16) -> MovingScene:
    """A grey background and one square garment of ``colour`` moving on a known path."""
    background = np.full((height, width, 3), 0.4, np.float32)
    rgb = np.broadcast_to(np.asarray(colour, np.float32), (size, size, 3)).copy()
    sprite = Sprite(label=3, rgb=rgb, alpha=np.ones((size, size), np.float32), frequency_hz=(0.5, 0.25), phase=(0, 0))
    return MovingScene(background, [sprite])


def sim(**kw) -> SimulatedSource:
    kw.setdefault("scene", square_scene())
    kw.setdefault("paced", False)
    return SimulatedSource(**kw)


# ---------------------------------------------------------------- no torch at run time


def test_runtime_sources_import_and_run_without_torch(tmp_path):
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
        sys.meta_path.insert(0, Block())
        import edge_isp.runtime.sources as s
        import edge_isp.runtime.record as r
        import edge_isp.cli.record_commands
        from edge_isp.runtime.sources import picamera2_source, v4l2_source, v4l2_device, retry, replay, scene
        source = s.open_source("sim", size=(32, 24), paced=False, garments=0)
        r.record(source, {str(tmp_path / "rec")!r}, frames=2, handle_signals=False)
        with s.open_source("replay:{tmp_path / "rec"}", paced=False) as replayed:
            frames = list(replayed.frames())
        assert len(frames) == 2 and frames[0].data.shape == (24, 32)
        assert not [m for m in sys.modules if m == "torch" or m.startswith("torch.")]
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# ---------------------------------------------------------------- the factory


class TestFactory:
    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ("sim", ("sim", None)),
            ("replay:/data/rec", ("replay", "/data/rec")),
            ("picamera2", ("picamera2", "0")),
            ("picamera2:1", ("picamera2", "1")),
            ("v4l2:/dev/video2", ("v4l2", "/dev/video2")),
            ("v4l2:3", ("v4l2", "/dev/video3")),
        ],
    )
    def test_parse(self, spec, expected):
        assert parse_source_spec(spec) == expected

    @pytest.mark.parametrize("spec", ["webcam", "replay:", "v4l2", "picamera2:x", "sim:3"])
    def test_bad_spec_lists_the_valid_forms(self, spec):
        with pytest.raises(InvalidInputError) as err:
            open_source(spec)
        assert all(form in str(err.value) for form in SOURCE_FORMS)

    def test_builds_each_kind_without_opening(self, tmp_path):
        assert isinstance(open_source("sim", scene=square_scene()), SimulatedSource)
        replay = open_source(f"replay:{tmp_path}", loop=True)
        assert isinstance(replay, ReplaySource) and replay.loop and not replay.is_open
        v4l2 = open_source("v4l2:/dev/video5", black_level=64, size=(320, 240))
        assert isinstance(v4l2, V4L2Source) and (v4l2.device, v4l2.width, v4l2.height) == ("/dev/video5", 320, 240)

    def test_unknown_option_names_the_accepted_ones(self):
        with pytest.raises(InvalidInputError, match=r"does not take option\(s\) lux.*loop"):
            open_source("replay:/tmp", lux=3)

    def test_size_maps_to_width_and_height(self):
        source = open_source("sim", size=(32, 24), garments=0, paced=False, scene=square_scene(32, 24))
        with source:
            assert source.read().data.shape == (24, 32)


# ---------------------------------------------------------------- pacing


class TestPacer:
    def test_spaces_frames_by_the_interval(self):
        clock = ManualClock()
        pacer = Pacer(clock)
        times = [pacer.wait(0.1) for _ in range(4)]
        assert times == pytest.approx([0.0, 0.1, 0.2, 0.3])

    def test_a_late_consumer_gets_no_burst(self):
        clock = ManualClock()
        pacer = Pacer(clock)
        pacer.wait(0.1)
        clock.advance(1.0)  # the consumer stalled for 10 frames
        first = pacer.wait(0.1)
        second = pacer.wait(0.1)
        assert first == pytest.approx(1.0) and second == pytest.approx(1.1)


# ---------------------------------------------------------------- raw synthesis in numpy


class TestRawSynth:
    def test_white_becomes_one_over_white_balance(self):
        profile = dataclasses.replace(SensorProfile.load("nexus6p-rear"), white_balance=(2.0, 1.0, 1.5))
        camera = rawsynth.srgb_to_camera(np.ones((1, 1, 3)), profile)
        assert camera[0, 0] == pytest.approx([0.5, 1.0, 1 / 1.5], abs=1e-6)


def noisy_profile() -> SensorProfile:
    """Two gains, row noise and a Tukey-lambda read noise: every branch of the noise model."""
    base = SensorProfile.load("nexus6p-rear")
    return dataclasses.replace(
        base,
        noise=(
            NoiseAtGain(1.0, 0.5, 2.0, row_noise_dn=0.5, read_noise_lambda=0.2),
            NoiseAtGain(8.0, 4.0, 6.0, row_noise_dn=1.5, read_noise_lambda=0.2),
        ),
        max_analogue_gain=16.0,
    )


class TestAgainstTheTorchSimulator:
    """The numpy synthesis must draw from the same distribution as edge_isp.sensor.simulate."""

    @pytest.mark.parametrize("electrons", [4.0, 60.0, 400.0])
    def test_raw_statistics_match(self, electrons):
        torch = pytest.importorskip("torch")
        simulate = pytest.importorskip("edge_isp.sensor.simulate")
        profile = noisy_profile()
        size = 128
        grey = np.full((size, size, 3), 0.6, np.float32)
        ref = simulate.simulate(
            torch.from_numpy(np.moveaxis(grey, 2, 0)[None].copy()).repeat(4, 1, 1, 1),
            profile,
            electrons,
            generator=torch.Generator().manual_seed(0),
        )
        ref_raw = ref.raw_dn.numpy().astype(np.float64)
        exposure = choose_exposure(profile, electrons)
        assert exposure.analogue_gain == pytest.approx(float(ref.analogue_gain[0]))
        assert exposure.digital_gain == pytest.approx(float(ref.digital_gain[0]), rel=1e-5)
        camera = rawsynth.srgb_to_camera(grey, profile)
        mosaic = np.take_along_axis(camera, rawsynth.channel_index(profile.cfa, size, size)[..., None], 2)[..., 0]
        rng = np.random.default_rng(0)
        ours = np.stack([rawsynth.synthesize_raw(mosaic, profile, exposure, rng) for _ in range(4)]).astype(float)
        assert ours.mean() == pytest.approx(ref_raw.mean(), rel=0.01)
        assert ours.var() == pytest.approx(ref_raw.var(), rel=0.06)
        # Row noise shows as variance of the row means beyond what pixel noise explains.
        assert ours.mean(axis=2).var() == pytest.approx(ref_raw.mean(axis=2).var(), rel=0.35)


# ---------------------------------------------------------------- the simulated camera


class TestSimulated:
    def test_frames_carry_the_profile_and_exposure(self):
        with sim(lux=10) as source:
            frame = source.read()
        profile = source.profile
        exposure = choose_exposure(profile, profile.electrons_at_white(10))
        assert frame.data.shape == (48, 64) and frame.data.dtype == np.uint16
        assert frame.cfa == profile.cfa and frame.black_level == profile.black_level
        assert frame.analogue_gain == pytest.approx(exposure.analogue_gain)
        assert frame.digital_gain == pytest.approx(exposure.digital_gain)
        assert frame.sensor == "sim:nexus6p-rear"

    def test_same_seed_same_frames_other_seed_other_noise(self):
        def first_frames(seed):
            with sim(seed=seed) as source:
                return [source.read().data for _ in range(3)]

        a, b, c = first_frames(1), first_frames(1), first_frames(2)
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        assert not np.array_equal(a[0], c[0])

    def test_truth_follows_the_garment_and_the_pixels_show_it(self):
        scene = square_scene()
        with sim(scene=scene, lux=2000) as source:
            for _ in range(5):
                frame = source.read()
            truth = source.last_truth
        t = truth["time_s"]
        assert t == pytest.approx(4 / 30)
        x, y = scene.positions(t)[0]
        assert truth["boxes"].tolist() == [[x, y, x + 16, y + 16]] and truth["labels"].tolist() == [3]
        red = pack(frame.normalized(), frame.cfa)[0] * frame.digital_gain  # the R plane, white at 1
        inside = red[y // 2 + 1 : (y + 16) // 2 - 1, x // 2 + 1 : (x + 16) // 2 - 1].mean()
        mask = np.ones(red.shape, bool)
        mask[max(0, y // 2 - 1) : (y + 16) // 2 + 1, max(0, x // 2 - 1) : (x + 16) // 2 + 1] = False
        assert inside > 2 * red[mask].mean()  # a red garment on grey

    def test_garments_move_between_frames(self):
        with sim() as source:
            source.read()
            first = source.last_truth["boxes"].copy()
            for _ in range(10):
                source.read()
            assert not np.array_equal(first, source.last_truth["boxes"])

    def test_lux_control_changes_the_noise_live(self):
        with sim(lux=1000) as source:
            bright = source.read()
            source.set_control("lux", 1.0)
            assert source.controls()["lux"] == pytest.approx(1.0)
            dark = source.read()
        assert dark.analogue_gain > bright.analogue_gain

        def background_noise(frame):  # std of the normalized green background, top-left corner
            return float((pack(frame.normalized(), frame.cfa)[1] * frame.digital_gain)[:4, :4].std())

        assert background_noise(dark) > 3 * background_noise(bright)

    def test_controls_are_validated(self):
        source = sim()
        with pytest.raises(InvalidInputError, match=r"has no control 'exposure'.*analogue_gain.*lux"):
            source.set_control("exposure", 1)
        with pytest.raises(InvalidInputError, match=r"lux must be a number from 0\.01 to 200000, got -3"):
            source.set_control("lux", -3)
        for name, value in [("lux", 1e300), ("lux", 4e18), ("lux", 1e-38), ("lux", 200_001), ("lux", True)]:
            with pytest.raises(InvalidInputError, match=r"lux must be a number from 0\.01 to 200000"):
                source.set_control(name, value)
        for value in (1e19, 0.0001, 10**400, "many"):
            with pytest.raises(InvalidInputError, match=r"electrons_at_white must be a number from 0\.001 to 1e\+07"):
                source.set_control("electrons_at_white", value)
        source.set_control("lux", 200_000)  # full daylight fits
        assert source.controls()["lux"] == pytest.approx(200_000)
        source.set_control("lux", 0.01)
        with pytest.raises(InvalidInputError, match="max_analogue_gain"):
            source.set_control("analogue_gain", 10_000)
        source.set_control("analogue_gain", 4)
        assert source.controls()["analogue_gain"] == 4.0

    def test_paced_frames_are_one_interval_apart(self):
        clock = ManualClock(100.0)
        with sim(paced=True, fps=20, clock=clock) as source:
            stamps = [source.read().timestamp_s for _ in range(4)]
        assert np.diff(stamps) == pytest.approx([0.05] * 3)

    def test_refuses_both_light_units(self):
        with pytest.raises(InvalidInputError, match="not both"):
            SimulatedSource(lux=3, electrons_at_white=8, scene=square_scene())

    @pytest.mark.skipif(not HAVE_SCENE_DATA, reason="Fashion-MNIST not installed")
    def test_scene_from_the_data_sources_is_reproducible(self):
        a = build_scene(96, 64, seed=5, garments=3)
        b = build_scene(96, 64, seed=5, garments=3)
        assert np.array_equal(a.render(1.5), b.render(1.5))
        truth = a.truth(1.5)
        assert len(set(truth["labels"].tolist())) == len(truth["labels"]) >= 1  # distinct classes
        boxes = truth["boxes"]
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= 96) and np.all(boxes[:, 3] <= 64)
        assert not np.array_equal(a.render(0.0), a.render(3.0))

    def test_missing_data_is_a_clear_error(self, tmp_path):
        with pytest.raises(MissingFileError, match=r"Fashion-MNIST|photograph"):
            build_scene(64, 48, fashion_mnist_dir=tmp_path, opencv_dir=tmp_path, split="train")


# ---------------------------------------------------------------- replay


def write_frames(folder, count: int, interval_s: float = 0.05, start: float = 10.0) -> list[RawFrame]:
    rng = np.random.default_rng(0)
    frames = []
    for i in range(count):
        frame = RawFrame(
            data=rng.integers(0, 1024, (4, 6), dtype=np.uint16), cfa="RGGB", bit_depth=10,
            black_level=64, white_level=1023, timestamp_s=start + i * interval_s,
        )  # fmt: skip
        frame.save(folder / f"{i:06d}")
        frames.append(frame)
    return frames


class TestReplay:
    def test_plays_once_then_ends(self, tmp_path):
        written = write_frames(tmp_path, 3)
        with ReplaySource(tmp_path, paced=False, restamp=False) as source:
            got = list(source.frames())
            with pytest.raises(SourceEnded):
                source.read()
        assert [f.data.tolist() for f in got] == [f.data.tolist() for f in written]
        assert [f.timestamp_s for f in got] == [f.timestamp_s for f in written]

    def test_loops(self, tmp_path):
        write_frames(tmp_path, 2)
        with ReplaySource(tmp_path, loop=True, paced=False) as source:
            frames = [source.read() for _ in range(5)]
            assert source.loops == 2 and source.sequence == 4
        assert np.array_equal(frames[0].data, frames[2].data) and np.array_equal(frames[1].data, frames[3].data)

    def test_recorded_rate_and_given_rate(self, tmp_path):
        write_frames(tmp_path, 4, interval_s=0.04)
        clock = ManualClock()
        with ReplaySource(tmp_path, clock=clock) as source:
            stamps = [source.read().timestamp_s for _ in range(4)]
        assert np.diff(stamps) == pytest.approx([0.04] * 3)
        clock = ManualClock()
        with ReplaySource(tmp_path, fps=10, clock=clock) as source:
            stamps = [source.read().timestamp_s for _ in range(4)]
        assert np.diff(stamps) == pytest.approx([0.1] * 3)

    def test_restamped_timestamps_keep_increasing_across_loops(self, tmp_path):
        write_frames(tmp_path, 2)
        with ReplaySource(tmp_path, loop=True, clock=ManualClock()) as source:
            stamps = [source.read().timestamp_s for _ in range(5)]
        assert np.all(np.diff(stamps) > 0)

    def test_recorded_interval_falls_back_on_implausible_gaps(self):
        assert recorded_interval(1.0, 1.04, 0.1) == pytest.approx(0.04)
        assert recorded_interval(None, 1.0, 0.1) == 0.1
        assert recorded_interval(2.0, 1.0, 0.1) == 0.1  # going back in time
        assert recorded_interval(1.0, 60.0, 0.1) == 0.1  # a pause, not a frame rate

    def test_unpaired_files_are_skipped(self, tmp_path):
        write_frames(tmp_path, 2)
        (tmp_path / "000001.json").unlink()  # a recording stopped mid-frame
        (tmp_path / "notes.txt").write_text("x")
        assert [p.name for p in list_recording(tmp_path)] == ["000000.npy"]

    def test_empty_or_missing_folder(self, tmp_path):
        with pytest.raises(InvalidInputError, match="holds no frames"):
            list_recording(tmp_path)
        with pytest.raises(MissingFileError):
            list_recording(tmp_path / "nope")

    def test_replays_dng_files(self, tmp_path):
        pytest.importorskip("rawpy")
        import importlib.util
        from pathlib import Path

        spec = importlib.util.spec_from_file_location(
            "rawfile_tests", Path(__file__).parents[1] / "sensor" / "test_rawfile.py"
        )
        helpers = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(helpers)
        image = helpers.mosaic(3, (24, 32), 4000)
        helpers.write_dng(tmp_path / "a.dng", image, black=(100, 100, 100, 100), white=4000)
        with ReplaySource(tmp_path, paced=False) as source:
            frame = source.read()
        assert np.array_equal(frame.data, image) and frame.black_level == (100.0,) * 4


# ---------------------------------------------------------------- retry


class FlakySource(CameraSource):
    """Fails reads at the given frame numbers and opens while ``open_failures`` lasts."""

    name = "flaky"

    def __init__(self, fail_reads=(), open_failures=0, error=SourceError):
        super().__init__()
        self.fail_reads, self.open_failures, self.error = set(fail_reads), open_failures, error
        self.reads = self.opens = self.closes = 0

    def _open(self):
        self.opens += 1
        if self.open_failures:
            self.open_failures -= 1
            raise SourceError("camera not there")

    def _close(self):
        self.closes += 1

    def _read(self, timeout_s):
        self.reads += 1
        if self.reads in self.fail_reads:
            raise self.error(f"read {self.reads} failed")
        return RawFrame(np.full((2, 2), self.reads, np.uint16), "RGGB", 10, 0, 1023)


class TestRetry:
    def test_reopens_with_capped_exponential_back_off(self):
        clock = ManualClock()
        events = []
        inner = FlakySource(fail_reads={2}, open_failures=0)
        source = RetryingSource(inner, RetryPolicy(0.5, 3.0, 2.0), on_event=events.append, clock=clock)
        with source:
            assert source.read().data[0, 0] == 1
            inner.open_failures = 4  # the camera stays away for four attempts
            assert source.read().data[0, 0] == 3
        assert clock.slept == [0.5, 1.0, 2.0, 3.0, 3.0]
        assert [e.kind for e in events] == ["lost", "retry", "retry", "retry", "retry", "recovered"]
        assert events[-1].attempt == 5
        stats = source.stats
        assert (stats.failures, stats.attempts, stats.recoveries, stats.reconnecting) == (1, 5, 1, False)

    def test_user_errors_and_the_end_pass_through(self):
        source = RetryingSource(FlakySource(fail_reads={1}, error=InvalidInputError), clock=ManualClock())
        with source, pytest.raises(InvalidInputError):
            source.read()

    def test_first_open_fails_fast_unless_asked(self):
        with pytest.raises(SourceError):
            RetryingSource(FlakySource(open_failures=1), clock=ManualClock()).open()
        clock = ManualClock()
        source = RetryingSource(FlakySource(open_failures=2), retry_first_open=True, clock=clock)
        with source:
            assert source.read().data[0, 0] == 1
        assert len(clock.slept) == 2

    def test_gives_up_after_max_attempts(self):
        inner = FlakySource(fail_reads={1})
        source = RetryingSource(inner, RetryPolicy(0.1, 1.0, max_attempts=3), clock=ManualClock())
        with source, pytest.raises(SourceError, match="not there"):
            inner.open_failures = 10
            source.read()
        assert source.stats.attempts == 3

    def test_close_during_back_off_ends_the_read(self):
        class ClosingClock(ManualClock):
            def wait(self, event, seconds):
                source.close()  # as the pipeline's shutdown would, from another thread
                return super().wait(event, seconds)

        source = RetryingSource(FlakySource(fail_reads={1}), clock=ClosingClock())
        source.open()
        with pytest.raises(SourceEnded, match="closed"):
            source.read()
        assert not source.is_open

    def test_a_failing_callback_does_not_stop_recovery(self):
        def broken(event):
            raise RuntimeError("dashboard down")

        source = RetryingSource(FlakySource(fail_reads={1}), on_event=broken, clock=ManualClock())
        with source:
            assert source.read().data[0, 0] == 2

    def test_policy_validation(self):
        with pytest.raises(InvalidInputError, match="max_delay_s"):
            RetryPolicy(2.0, 1.0)
        with pytest.raises(InvalidInputError, match="multiplier"):
            RetryPolicy(multiplier=0.5)
        assert RetryPolicy(1.0, 5.0, 3.0).delay(3) == 5.0
