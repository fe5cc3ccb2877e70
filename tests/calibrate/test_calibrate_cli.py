"""`edge-isp calibrate ...` end to end through its argument parser: files written, exports
consistent with the profile, and the capture command refusing cameras it cannot drive."""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import pytest

from edge_isp.calibrate import synthetic
from edge_isp.cli import calibrate_commands
from edge_isp.errors import InvalidInputError
from edge_isp.sensor import noise_formats
from edge_isp.sensor.profile import SensorProfile


def run(argv):
    parser = argparse.ArgumentParser(prog="edge-isp")
    calibrate_commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, profile):
    folder = tmp_path_factory.mktemp("sweep")
    sensor = synthetic.SyntheticSensor(profile, 96, 96, hot_pixels=10, seed=5)
    synthetic.write_frames(folder, synthetic.ptc_sweep(sensor, (1.0, 4.0), levels=16, dark_frames=8, seed=2))
    return folder, sensor


@pytest.fixture(scope="module")
def ptc_out(sweep_dir, tmp_path_factory):
    folder, _ = sweep_dir
    out = tmp_path_factory.mktemp("ptc")
    assert run(["calibrate", "ptc", str(folder), "--out", str(out), "--name", "cam", "--max-gain", "8"]) == 0
    return out


def test_ptc_writes_profile_plots_report_and_defects(ptc_out, sweep_dir, capsys):
    _, sensor = sweep_dir
    profile = SensorProfile.load(ptc_out / "profile.json")
    assert profile.name == "cam" and [n.analogue_gain for n in profile.noise] == [1.0, 4.0, 8.0]
    for gain in (1.0, 4.0):
        assert profile.noise_at(gain).gain_dn_per_e == pytest.approx(sensor.truth(gain).gain_dn_per_e, rel=0.03)
        assert profile.noise_at(gain).read_noise_dn == pytest.approx(sensor.truth(gain).read_noise_dn, rel=0.06)
    assert profile.black_level == pytest.approx((256.0,) * 4, abs=0.3)
    for name in ("ptc.png", "noise_vs_gain.png"):
        image = cv2.imread(str(ptc_out / name))
        assert image is not None and image.shape[0] > 300
    report = (ptc_out / "report.md").read_text()
    assert "K (channels combined)" in report and "±" in report and "χ²/dof" in report
    assert "Dark stack: 8 frames" in report and "linearity error" in report
    defects = json.loads((ptc_out / "defects.json").read_text())
    assert defects["counts"]["hot"] == 10


def test_exports_match_the_profile(ptc_out):
    profile = SensorProfile.load(ptc_out / "profile.json")
    dng = json.loads((ptc_out / "exports" / "dng_noise_profile.json").read_text())
    assert [e["analogue_gain"] for e in dng["entries"]] == [1.0, 4.0, 8.0]
    for entry in dng["entries"]:
        pairs = noise_formats.to_dng_noise_profile(profile, entry["analogue_gain"])
        assert entry["pairs"] == [list(p) for p in pairs] and len(entry["tag_51041"]) == 6
    darktable = json.loads((ptc_out / "exports" / "darktable_noiseprofiles.json").read_text())
    entries = noise_formats.darktable_entries(darktable, maker="edge-isp", model="cam")
    assert [e["iso"] for e in entries] == [100.0, 400.0, 800.0]
    back, _ = noise_formats.from_darktable(
        entries, name="back", cfa="RGGB", bit_depth=12, black_level=profile.black_level, white_level=4095.0
    )
    assert back.noise_at(4.0).gain_dn_per_e == pytest.approx(profile.noise_at(4.0).gain_dn_per_e, rel=1e-6)
    rpi = json.loads((ptc_out / "exports" / "rpi_noise.json").read_text())
    assert rpi["rpi.noise"] == pytest.approx(noise_formats.to_rpi_noise(profile))


def test_dark_method_updates_a_base_profile_or_reports_only(ptc_out, sweep_dir, tmp_path, capsys):
    folder, sensor = sweep_dir
    assert run(["calibrate", "dark", str(folder / "gain4"), "--out", str(tmp_path / "d")]) == 0
    assert not (tmp_path / "d" / "profile.json").exists()
    assert "No sensor profile written" in (tmp_path / "d" / "report.md").read_text()
    assert "read noise" in capsys.readouterr().out
    base = ptc_out / "profile.json"
    assert (
        run(["calibrate", "dark", str(folder / "gain4"), "--out", str(tmp_path / "e"), "--base-profile", str(base)])
        == 0
    )
    updated = SensorProfile.load(tmp_path / "e" / "profile.json")
    assert updated.noise_at(4.0).read_noise_dn == pytest.approx(sensor.truth(4.0).read_noise_dn, rel=0.06)
    assert updated.noise_at(4.0).gain_dn_per_e == pytest.approx(SensorProfile.load(base).noise_at(4.0).gain_dn_per_e)


def test_image_method_from_two_gains(tmp_path, profile):
    sensor = synthetic.SyntheticSensor(profile, 512, 512, seed=8)
    paths = []
    for gain in (2.0, 8.0):
        y = synthetic.scene(512, 512, seed=int(gain), peak=1.2)
        frame = sensor.frame(y * profile.range_dn / sensor.truth(gain).gain_dn_per_e, analogue_gain=gain,
                             rng=np.random.default_rng(1))  # fmt: skip
        paths.append(str(frame.save(tmp_path / f"scene_g{gain:g}")))
    assert run(["calibrate", "image", *paths, "--out", str(tmp_path / "out")]) == 0
    result = SensorProfile.load(tmp_path / "out" / "profile.json")
    for gain in (2.0, 8.0):
        assert result.noise_at(gain).gain_dn_per_e == pytest.approx(sensor.truth(gain).gain_dn_per_e, rel=0.1)
    assert cv2.imread(str(tmp_path / "out" / "level_sets.png")) is not None
    assert "Single image at gain 8" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("imx219", r"unknown kind 'imx219'; valid forms: sim"),
        # A replay has no exposure control, so it cannot run a calibration sweep (`--source sim`
        # is a simulated bench that can: tests/calibrate/test_capture_sim.py).
        ("replay:{recording}", r"cannot set exposure_time_s, analogue_gain manually"),
    ],
)
def test_capture_refuses_sources_it_cannot_drive(tmp_path, source, words):
    from edge_isp.calibrate.simulated_capture import SimulatedBench
    from edge_isp.sensor.profile import SensorProfile

    (tmp_path / "rec").mkdir()
    SimulatedBench(SensorProfile.load("nexus6p-rear"), (16, 8)).capture().save(tmp_path / "rec" / "000000.npy")
    source = source.format(recording=tmp_path / "rec")
    with pytest.raises(InvalidInputError, match=words):
        run(["calibrate", "capture", "--source", source, "--out", str(tmp_path / "frames")])
    assert not (tmp_path / "frames").exists()


def test_through_the_edge_isp_command(monkeypatch, tmp_path, capsys):
    """Registered beside the other commands, a user's mistake exits 1 with a message, no traceback."""
    from edge_isp import cli

    assert "edge_isp.cli.calibrate_commands" in cli.COMMAND_MODULES
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["calibrate", "capture", "--source", "imx219", "--out", str(tmp_path)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: source 'imx219'") and "Traceback" not in err
    with pytest.raises(SystemExit):
        cli.main(["calibrate", "ptc", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert "does not exist" in " ".join(capsys.readouterr().err.split())  # the message is wrapped


def test_measuring_commands_collect_less_often_and_restore_the_collector():
    import gc

    before = gc.get_threshold()
    seen = []

    def command(args):
        seen.append(gc.get_threshold())
        if args == "fail":
            raise InvalidInputError("bad input")
        return 0

    wrapped = calibrate_commands._few_collections(command)
    assert wrapped("ok") == 0 and gc.get_threshold() == before
    with pytest.raises(InvalidInputError):
        wrapped("fail")
    assert gc.get_threshold() == before
    assert all(t[0] >= 50_000 and t[1:] == before[1:] for t in seen)
