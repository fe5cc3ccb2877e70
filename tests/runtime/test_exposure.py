"""Sensor auto-exposure: the split (exposure, then analogue gain, then digital gain), metering,
the controller, the control delay, and the simulated sensor that obeys the controls."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edge_isp.contract.model_input import Preprocessor
from edge_isp.errors import InvalidInputError
from edge_isp.runtime.exposure import (
    ControlDelay,
    ExposureController,
    ExposureLimits,
    ExposureSetting,
    meter,
    split_exposure,
)
from edge_isp.runtime.sources import SimulatedSource
from edge_isp.runtime.sources.scene import MovingScene
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile

LIMITS = ExposureLimits(max_exposure_s=0.03, min_exposure_s=1e-4, max_analogue_gain=8.0, max_digital_gain=16.0)


def flat_scene(level: float = 0.5, width: int = 64, height: int = 48, speed: float = 0.0) -> MovingScene:
    return MovingScene(np.full((height, width, 3), level, np.float32), [], speed=speed)


def sensor(lux: float, **kw) -> SimulatedSource:
    kw.setdefault("scene", flat_scene())
    return SimulatedSource(paced=False, lux=lux, **kw)


class TestSplit:
    def test_exposure_first_then_analogue_then_digital(self):
        assert split_exposure(0.01, LIMITS) == ExposureSetting(0.01, 1.0, 1.0)
        assert split_exposure(0.03 * 4, LIMITS) == pytest.approx(ExposureSetting(0.03, 4.0, 1.0))
        assert split_exposure(0.03 * 8 * 3, LIMITS) == pytest.approx(ExposureSetting(0.03, 8.0, 3.0))

    def test_clipped_at_both_ends(self):
        assert split_exposure(1e-6, LIMITS) == ExposureSetting(1e-4, 1.0, 1.0)
        assert split_exposure(100.0, LIMITS) == ExposureSetting(0.03, 8.0, 16.0)

    def test_every_total_in_range_is_met_exactly_and_stages_rise_in_order(self):
        totals = np.geomspace(1e-4, 0.03 * 8 * 16, 200)
        settings = [split_exposure(t, LIMITS) for t in totals]
        assert [s.total for s in settings] == pytest.approx(list(totals))
        for s in settings:  # a later stage is used only once the earlier one is at its limit
            assert s.analogue_gain == 1.0 or s.exposure_time_s == pytest.approx(0.03)
            assert s.digital_gain == 1.0 or s.analogue_gain == pytest.approx(8.0)

    def test_limits_are_checked_and_narrowed_to_a_device(self):
        with pytest.raises(InvalidInputError, match="max_exposure_s"):
            ExposureLimits(max_exposure_s=0)
        with pytest.raises(InvalidInputError, match=r"min_exposure_s 0\.1 is above"):
            ExposureLimits(min_exposure_s=0.1, max_exposure_s=0.01)
        narrowed = LIMITS.within(exposure_s=(1e-3, 0.02), analogue_gain=(1.0, 10.6))
        assert (narrowed.min_exposure_s, narrowed.max_exposure_s) == (1e-3, 0.02)
        assert narrowed.max_analogue_gain == 8.0  # the user's limit is below the device's


def test_meter_hand_checked():
    data = np.full((8, 8), 64, np.uint16)  # black
    data[0::2, 0::2] = 64 + 0.5 * (1023 - 64)  # R plane at 0.5
    data[1::2, 1::2] = 4000  # B plane above white: clipped to 1
    frame = RawFrame(data, "RGGB", 10, 64, 1023)
    assert meter(frame, step=1) == pytest.approx((0.5 + 0 + 0 + 1.0) / 4, abs=1e-3)
    with pytest.raises(InvalidInputError, match="step"):
        meter(frame, step=0)


class TestControlDelay:
    def test_a_value_shows_delay_frames_after_it_was_written(self):
        first, second = ExposureSetting(0.01, 1.0), ExposureSetting(0.02, 2.0)
        delay = ControlDelay(2, first)
        assert delay.at(0) == first
        delay.written(0, second)  # written after frame 0 was read
        assert [delay.at(n) for n in (1, 2, 3)] == [first, second, second]
        assert delay.latest == second
        delay.reset()
        assert delay.at(0) == second
        with pytest.raises(InvalidInputError, match=">= 1 frame"):
            ControlDelay(0, first)


class TestSimulatedSensor:
    def test_obeys_exposure_and_gain_after_the_control_delay_and_clips(self):
        with sensor(20000, exposure_time_s=0.002, analogue_gain=1.0, control_delay_frames=2) as source:
            frames = [source.read()]
            source.set_control("exposure_time_s", 0.004)
            frames += [source.read() for _ in range(3)]
            source.set_control("analogue_gain", 2.0)
            frames += [source.read() for _ in range(3)]
            source.set_control("exposure_time_s", 1.0)
            frames += [source.read() for _ in range(3)]
        times = [f.exposure_time_s for f in frames]
        gains = [f.analogue_gain for f in frames]
        assert times[:7] == [0.002, 0.002, 0.004, 0.004, 0.004, 0.004, 0.004] and times[-1] == 1.0
        assert gains[:7] == [1.0] * 5 + [2.0, 2.0]
        means = [meter(f) for f in frames]
        assert means[2] == pytest.approx(2 * means[0], rel=0.05)  # twice the exposure
        assert means[5] == pytest.approx(2 * means[2], rel=0.05)  # twice the gain
        assert means[-1] == pytest.approx(1.0, abs=1e-3)  # clipped at white
        assert all(f.digital_gain == 1.0 for f in frames)
        assert source.controls()["exposure_time_s"] == 1.0

    def test_manual_settings_are_refused_under_auto_exposure(self):
        with sensor(30, auto_exposure=ExposureController(LIMITS)) as source:
            with pytest.raises(InvalidInputError, match="auto-exposure sets exposure_time_s"):
                source.set_control("exposure_time_s", 0.01)
            source.set_control("lux", 3)  # the light still changes

    def test_ideal_exposure_stays_the_default(self):
        with sensor(30) as source:
            frame = source.read()
        assert "exposure_time_s" not in source.controls() and frame.digital_gain != 1.0

    @pytest.mark.parametrize("delay", [1, 3])
    def test_auto_exposure_reaches_the_target_in_the_right_order(self, delay):
        seen = {}
        for lux in (30000, 1000, 20):
            ae = ExposureController(LIMITS, target=0.18)
            with sensor(lux, auto_exposure=ae, control_delay_frames=delay) as source:
                frames = [source.read() for _ in range(40)]
            last = frames[-10:]
            for f in last:
                assert meter(f) * f.digital_gain == pytest.approx(0.18, rel=0.1), lux
            seen[lux] = last[-1]
            # Once there, it stays: the controller divides by the exposure each frame was really
            # taken with, so the sensor's delay makes it neither overshoot nor oscillate.
            shown = [meter(f) * f.digital_gain for f in frames]
            arrived = next(i for i, v in enumerate(shown) if abs(v / 0.18 - 1) < 0.1)
            assert arrived < 15 and max(abs(v / 0.18 - 1) for v in shown[arrived:]) < 0.15, shown
        bright, dim, dark = seen[30000], seen[1000], seen[20]
        assert bright.exposure_time_s < 0.03 and bright.analogue_gain == 1.0 and bright.digital_gain == 1.0
        assert dim.exposure_time_s == pytest.approx(0.03) and 1.0 < dim.analogue_gain < 8.0
        assert dark.analogue_gain == pytest.approx(8.0, rel=0.03) and dark.digital_gain > 4.0  # within the tolerance

    def test_noise_fed_to_the_model_matches_the_frames_noise(self):
        """Two frames of a static flat scene taken with the same settings: half the variance of
        their difference is the noise variance, which the preprocessing's (a, sigma) for that
        frame's analogue and digital gain must predict."""
        profile = SensorProfile.load("nexus6p-rear")
        ae = ExposureController(LIMITS, target=0.18, tolerance=0.5)
        scene = flat_scene(0.5, width=256, height=192)
        preprocess = Preprocessor(profile, None)
        with sensor(200, scene=scene, auto_exposure=ae) as source:
            frames = [source.read() for _ in range(30)]
        pairs = [  # the same sensor setting; the digital gain moves a little each frame
            (f, g)
            for f, g in itertools.pairwise(frames[10:])
            if (f.exposure_time_s, f.analogue_gain) == (g.exposure_time_s, g.analogue_gain)
            and abs(f.digital_gain / g.digital_gain - 1) < 0.02
        ]
        assert pairs, "the exposure never settled"
        first, second = pairs[-1]
        assert first.analogue_gain > 1.0  # a dim scene: the gain is in play
        x1 = preprocess(first).raw[0].astype(np.float64)
        x2 = preprocess(second).raw[0].astype(np.float64) * (first.digital_gain / second.digital_gain)
        a, sigma = (float(v) for v in preprocess(first).noise[0])
        measured = np.var(x1 - x2) / 2
        predicted = a * float(np.mean((x1 + x2) / 2)) + sigma**2
        assert measured == pytest.approx(predicted, rel=0.1)
        assert float(np.mean(x1)) == pytest.approx(0.18, rel=0.15)
