"""The guided capture against an in-memory fake camera (tests only: no real camera here)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edge_isp.calibrate import synthetic
from edge_isp.calibrate.capture import CapturePlan, ControlledSource, plan_exposures, run_capture
from edge_isp.calibrate.frames import discover
from edge_isp.calibrate.ptc import photon_transfer
from edge_isp.errors import InvalidInputError


class FakeCamera:
    """A simulated sensor looking at a flat field of ``rate`` electrons/s, or at a lens cap."""

    def __init__(self, sensor, rate, *, auto_exposure=False, leak=0.0):
        self.sensor, self.rate, self.auto_exposure, self.leak = sensor, rate, auto_exposure, leak
        self.covered = False
        self.exposure, self.gain = 0.001, 1.0
        self.rng = np.random.default_rng(0)
        self.field = synthetic.flat_field(sensor.height, sensor.width, sensor.profile.cfa)
        self.captured = 0

    def set_exposure(self, exposure_time_s, analogue_gain):
        self.exposure, self.gain = exposure_time_s, analogue_gain

    def capture(self):
        self.captured += 1
        exposure = 0.02 if self.auto_exposure else self.exposure
        light = self.leak if self.covered else 1.0
        electrons = light * self.rate * exposure * self.field
        return self.sensor.frame(electrons, analogue_gain=self.gain, rng=self.rng, exposure_time_s=exposure)


def _person(camera, log):
    def say(message):
        log.append(("say", message))

    def wait(prompt):
        log.append(("wait", prompt))
        camera.covered = "lens" in prompt

    return say, wait


PLAN = CapturePlan(gains=(1.0, 4.0), levels=10, flat_stack=4, dark_frames=8, dark_pair_per_level=False)


def test_guided_sweep_saves_frames_that_calibrate(tmp_path, profile):
    sensor = synthetic.SyntheticSensor(profile, 64, 64, seed=2)
    camera = FakeCamera(sensor, rate=1.5e6)  # saturates gain 1 in ~6 ms
    log = []
    say, wait = _person(camera, log)
    paths = run_capture(camera, PLAN, tmp_path, say=say, wait=wait)
    assert len(paths) == PLAN.frame_count() == 2 * (10 * 2 + 4 + 8)
    # The person is asked for the white surface first, then to cover the lens.
    waits = [m for kind, m in log if kind == "wait"]
    assert len(waits) == 2 and "white surface" in waits[0] and "lens is covered" in waits[1]
    says = " ".join(m for kind, m in log if kind == "say")
    assert "evenly lit" in says and "Cover the lens" in says and "edge-isp calibrate ptc" in says
    refs = discover(tmp_path)
    assert sum(r.kind == "dark" for r in refs) == 16
    flats_1 = sorted({r.exposure_time_s for r in refs if r.kind == "flat" and r.analogue_gain == 1.0})
    saturating = (profile.range_dn / sensor.truth(1.0).gain_dn_per_e) / 1.5e6
    assert flats_1[-1] == pytest.approx(PLAN.max_fraction * saturating, rel=0.1)
    result = photon_transfer(refs)
    for g in result.gains:
        assert g.gain_dn_per_e == pytest.approx(sensor.truth(g.analogue_gain).gain_dn_per_e, rel=0.05)


def test_auto_exposure_light_leaks_and_dim_light_are_caught(tmp_path, profile):
    sensor = synthetic.SyntheticSensor(profile, 32, 32)
    camera = FakeCamera(sensor, rate=1.5e6, auto_exposure=True)
    with pytest.raises(InvalidInputError, match="turn auto exposure"):
        run_capture(camera, PLAN, tmp_path / "a", say=lambda m: None, wait=_person(camera, [])[1])
    camera = FakeCamera(sensor, rate=1.5e6, leak=0.2)
    with pytest.raises(InvalidInputError, match="light reaches the sensor in the dark frames"):
        run_capture(camera, PLAN, tmp_path / "b", say=lambda m: None, wait=_person(camera, [])[1])
    camera = FakeCamera(sensor, rate=100.0)
    with pytest.raises(InvalidInputError, match=r"too dark.*brighten the light"):
        run_capture(camera, PLAN, tmp_path / "c", say=lambda m: None, wait=_person(camera, [])[1])


def test_plan_checks_and_exposures():
    with pytest.raises(InvalidInputError, match="levels >= 10"):
        CapturePlan(levels=3)
    plan = dataclasses.replace(PLAN, levels=10, max_fraction=1.2)
    exposures = plan_exposures(plan, 0.01)
    assert exposures[-1] == pytest.approx(0.012) and np.allclose(np.diff(exposures), 0.0012)


def test_runtime_source_needs_manual_controls():
    class Camera:
        name = "cam"

        def __init__(self, controls):
            self._controls, self.set = controls, []

        def controls(self):
            return self._controls

        def set_control(self, name, value):
            self.set.append((name, value))

        def read(self):
            return "frame"

    with pytest.raises(InvalidInputError, match=r"cannot set exposure_time_s, analogue_gain manually"):
        ControlledSource(Camera({"lux": 3.0}))
    camera = Camera({"exposure_time_s": 0.01, "analogue_gain": 1.0})
    source = ControlledSource(camera)
    source.set_exposure(0.002, 4.0)
    assert camera.set == [("exposure_time_s", 0.002), ("analogue_gain", 4.0)] and source.capture() == "frame"
