"""`calibrate capture --source sim`: a guided capture of a simulated sensor in front of a flat
light, whose frames `calibrate ptc` turns back into the profile they were drawn from."""

from __future__ import annotations

import json

import pytest

from edge_isp.calibrate.capture import CapturePlan, run_capture
from edge_isp.calibrate.simulated_capture import SimulatedBench
from edge_isp.cli import main
from edge_isp.sensor.profile import SensorProfile


def test_the_bench_answers_the_prompts_like_a_person():
    bench = SimulatedBench(SensorProfile.load("nexus6p-rear"), (32, 16))
    bench.set_exposure(0.005, 1.0)
    assert bench.covered and float(bench.capture().data.mean()) < 80  # black level 64, lens covered
    bench.wait("Press Enter when the camera sees the white surface. ")
    half = bench.capture()
    assert not bench.covered and half.exposure_time_s == 0.005 and half.analogue_gain == 1.0
    assert 0.4 < (float(half.data.mean()) - 64) / (1023 - 64) < 0.6  # half of the saturating 10 ms
    bench.wait("Press Enter when the lens is covered. ")
    assert bench.covered


@pytest.mark.slow
def test_capture_then_ptc_finds_the_simulated_profile(tmp_path, capsys):
    frames, out = tmp_path / "frames", tmp_path / "profile"
    argv = ["calibrate", "capture", "--source", "sim", "--out", str(frames), "--gains", "1", "2", "--levels", "10",
            "--size", "96x64", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "Next: edge-isp calibrate ptc" in capsys.readouterr().out
    assert main(["calibrate", "ptc", str(frames), "--out", str(out), "--name", "found"]) == 0
    found = SensorProfile.load(out / "profile.json")
    truth = SensorProfile.load("nexus6p-rear")
    for gain in (1.0, 2.0):
        got, want = found.noise_at(gain), truth.noise_at(gain)
        assert got.gain_dn_per_e == pytest.approx(want.gain_dn_per_e, rel=0.03), gain
        assert got.read_noise_dn == pytest.approx(want.read_noise_dn, rel=0.05), gain
    defects = json.loads((out / "defects.json").read_text())
    bench = SimulatedBench(truth, (96, 64), seed=0)  # the same fixed patterns as the capture's
    hot = {(int(i) // 96, int(i) % 96) for i in bench.sensor.hot_index}
    assert {tuple(p) for p in defects["pixels"]["hot"]} == hot


def test_a_sim_plan_runs_without_a_person(tmp_path):
    bench = SimulatedBench(SensorProfile.load("nexus6p-rear"), (32, 16))
    plan = CapturePlan(gains=(1.0,), levels=10, flat_stack=0, dark_frames=2, dark_pair_per_level=False)
    paths = run_capture(bench, plan, tmp_path, say=lambda _: None, wait=bench.wait)
    assert len(paths) == plan.frame_count() and bench.prompts == 2
