"""ISO, exposure, capture time and the masked optical-black area, carried from real-format
files (a DNG written here with an ISO tag and a masked strip) through every command."""

from __future__ import annotations

import dataclasses
import datetime
import json

import cv2
import numpy as np
import pytest

from edge_isp.calibrate import synthetic
from edge_isp.cli import main
from edge_isp.errors import InvalidInputError
from edge_isp.runtime.sources.replay import ReplaySource
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile
from edge_isp.sensor.rawfile import describe, load_raw, load_raw_with_color
from tests.sensor.test_rawfile import write_dng

rawpy = pytest.importorskip("rawpy")

MASKED_COLUMNS = 16
# The black level each plane really has (R, Gr, Gb, B): not integers, as on real sensors.
TRUE_BLACK = (256.4, 257.3, 255.6, 258.8)
EXIF_TIME = datetime.datetime(2024, 5, 6, 7, 8, 9).timestamp()  # write_dng's DateTime, local time


def masked_dng(
    path, *, iso=640, height=256, width=256, seed=0, read_noise_dn=2.0, image=None, margin_signal=0.0, declare=True
):
    """A 12-bit RGGB DNG whose first MASKED_COLUMNS columns lie outside its ActiveArea, covered
    (declared in MaskedAreas when ``declare``) or, with ``margin_signal``, receiving light."""
    rng = np.random.default_rng(seed)
    full_w = width + MASKED_COLUMNS
    black = np.tile(np.array(TRUE_BLACK).reshape(2, 2), (height // 2, full_w // 2))
    signal = np.zeros((height, full_w))
    signal[:, :MASKED_COLUMNS] = margin_signal
    signal[:, MASKED_COLUMNS:] = rng.uniform(200, 3000, (height, width)) if image is None else image
    dn = np.clip(np.rint(black + signal + rng.normal(0, read_noise_dn, signal.shape)), 0, 4095).astype(np.uint16)
    write_dng(
        path, dn, pattern="RGGB", black=(256, 257, 256, 259), white=4095, iso=iso,
        extra=[(50829, "I", [0, MASKED_COLUMNS, height, full_w])]
        + ([(50830, "I", [0, 0, height, MASKED_COLUMNS])] if declare else []),
    )  # fmt: skip
    return path


class TestLoader:
    def test_iso_exposure_and_capture_time_reach_the_frame(self, tmp_path):
        frame, colour = load_raw_with_color(masked_dng(tmp_path / "a.dng"))
        assert frame.iso == 640 and colour["iso"] == 640
        assert frame.exposure_time_s == pytest.approx(0.01)
        assert frame.capture_time_unix == pytest.approx(EXIF_TIME)
        assert frame.analogue_gain == 1.0  # not recorded in the file
        assert load_raw(tmp_path / "a.dng", base_iso=100).analogue_gain == pytest.approx(6.4)
        assert load_raw(tmp_path / "a.dng", base_iso=100, analogue_gain=2.0).analogue_gain == 2.0

    def test_iso_given_where_the_file_lacks_it(self, tmp_path):
        frame = RawFrame(data=np.zeros((4, 4), np.uint16), cfa="RGGB", bit_depth=10, black_level=64, white_level=1023)
        frame.save(tmp_path / "f")
        assert load_raw(tmp_path / "f.npy").iso is None
        back = load_raw(tmp_path / "f.npy", iso=800, base_iso=200)
        assert back.iso == 800 and back.analogue_gain == 4.0
        with pytest.raises(InvalidInputError, match="states no ISO"):
            load_raw(tmp_path / "f.npy", base_iso=100)

    def test_sidecar_keeps_iso_and_capture_time(self, tmp_path):
        frame = load_raw(masked_dng(tmp_path / "a.dng"))
        frame.save(tmp_path / "copy")
        back = RawFrame.load(tmp_path / "copy.npy")
        assert back.iso == 640 and back.capture_time_unix == frame.capture_time_unix
        with pytest.raises(InvalidInputError, match="iso"):
            RawFrame(data=frame.data, cfa="RGGB", bit_depth=12, black_level=0, white_level=4095, iso=-1.0)

    def test_masked_area_gives_black_level_and_read_noise(self, tmp_path):
        frame, colour = load_raw_with_color(masked_dng(tmp_path / "a.dng", height=512, read_noise_dn=2.0))
        ob = colour["optical_black"]
        assert ob.used and ob.regions == f"left {MASKED_COLUMNS} columns" and ob.pixels == 512 * MASKED_COLUMNS
        # 2048 samples per plane: the mean's standard error is 2 / sqrt(2048) = 0.044 DN.
        np.testing.assert_allclose(frame.black_level, TRUE_BLACK, atol=0.2)
        # LibRaw's own level from the MaskedAreas is a whole number, here 0.6 to 0.8 DN low on Gb and B.
        libraw = np.array(ob.file_black_level_dn)
        assert np.all(libraw == np.round(libraw)) and np.max(np.abs(libraw - TRUE_BLACK)) > 0.5
        # Rounding adds 1/12 DN^2 to the 4 DN^2 of the read noise.
        np.testing.assert_allclose(ob.read_noise_dn, np.sqrt(4 + 1 / 12), rtol=0.06)
        text = describe(frame, ob)
        assert "iso             640" in text and "optical black   left 16 columns" in text

    def test_margins_holding_light_are_not_taken_for_black(self, tmp_path):
        frame, colour = load_raw_with_color(masked_dng(tmp_path / "a.dng", margin_signal=500.0, declare=False))
        ob = colour["optical_black"]
        assert not ob.used and "differs from the file's black level" in ob.reason
        assert frame.black_level == (256.0, 257.0, 256.0, 259.0)

    def test_profile_looks_noise_up_at_the_files_iso(self, tmp_path):
        frame = load_raw(masked_dng(tmp_path / "a.dng"))
        profile = SensorProfile.load("nexus6p-rear")  # base ISO 100
        assert profile.gain_for_frame(frame) == pytest.approx(6.4)
        assert profile.normalized_noise(profile.gain_for_frame(frame))[0] == pytest.approx(
            6.4 * profile.normalized_noise(1.0)[0]
        )


class TestCommands:
    def test_info_shows_iso_and_masked_area(self, tmp_path, capsys):
        assert main(["info", str(masked_dng(tmp_path / "a.dng"))]) == 0
        out = capsys.readouterr().out
        assert "iso             640" in out and "captured" in out and "used as the black level" in out

    def test_replay_and_record_keep_the_files_iso_and_capture_time(self, tmp_path):
        (tmp_path / "rec").mkdir()
        masked_dng(tmp_path / "rec" / "a.dng")
        source = ReplaySource(tmp_path / "rec", paced=False)
        with source:
            frame = source.read()
        assert frame.iso == 640 and frame.capture_time_unix == pytest.approx(EXIF_TIME)
        assert frame.timestamp_s != pytest.approx(EXIF_TIME)  # the replay clock's
        assert main(["record", "--source", f"replay:{tmp_path / 'rec'}", "--out", str(tmp_path / "out")]) == 0
        (sidecar,) = [p for p in (tmp_path / "out").glob("*.json") if p.name != "recording.json"]
        meta = json.loads(sidecar.read_text())
        assert meta["iso"] == 640 and meta["capture_time_unix"] == pytest.approx(EXIF_TIME)

    def test_isp_denoise_keeps_the_files_colour_with_a_noise_only_profile(self, tmp_path):
        # A grey card under the file's as-shot neutral (0.5, 1, 1/3): R at 1/2 and B at 1/3 of G.
        h, w = 64, 64
        grey = np.empty((h, w))
        grey[0::2, 0::2], grey[0::2, 1::2], grey[1::2, 0::2], grey[1::2, 1::2] = 600, 1200, 1200, 400
        path = masked_dng(tmp_path / "grey.dng", height=h, width=w, image=grey, read_noise_dn=1.0)
        assert not SensorProfile.load("nexus6p-rear").has_colour
        outs = {}
        for label, extra in {"profile": ["--profile", "nexus6p-rear"], "noise": ["--noise", "0.0002,0.0005"]}.items():
            assert main(["isp", str(path), "--denoise", "nlm", "--out", str(tmp_path / label), *extra]) == 0
            rgb = cv2.cvtColor(cv2.imread(str(tmp_path / label / "grey.png")), cv2.COLOR_BGR2RGB).astype(float)
            outs[label] = rgb[8:-8, 8:-8].reshape(-1, 3).mean(axis=0)
        for mean in outs.values():  # neutral: the file's white balance was applied, not the profile's unit one
            assert np.ptp(mean) < 0.04 * mean.mean(), mean

    def test_isp_denoises_at_the_noise_of_the_files_iso(self, tmp_path, monkeypatch):
        import edge_isp.cli.sensor_commands as commands

        seen = []
        real_render = commands.render
        monkeypatch.setattr(commands, "render", lambda frame, config, profile=None: seen.append(config.noise) or
                            real_render(frame, dataclasses.replace(config, denoise="none"), profile))  # fmt: skip
        path = masked_dng(tmp_path / "a.dng", height=64, width=64)  # ISO 640
        assert main(["isp", str(path), "--denoise", "nlm", "--profile", "nexus6p-rear", "--out", str(tmp_path)]) == 0
        profile = SensorProfile.load("nexus6p-rear")  # base ISO 100: ISO 640 is gain 6.4, not 1
        assert seen == [pytest.approx(profile.normalized_noise(6.4))]

    def test_isp_denoise_without_any_noise_level_is_refused(self, tmp_path, capsys):
        path = masked_dng(tmp_path / "a.dng")
        with pytest.raises(SystemExit) as exit_info:
            main(["isp", str(path), "--denoise", "nlm", "--out", str(tmp_path / "o")])
        assert exit_info.value.code == 1 and "expected --profile or --noise" in capsys.readouterr().err


def test_calibrate_image_uses_the_files_iso_and_checks_the_masked_area(tmp_path, capsys):
    profile = synthetic.example_profile(black_level=256.0)
    truth = profile.noise_at(1.0)
    y = synthetic.scene(512, 512, seed=3, peak=1.2) * profile.range_dn / truth.gain_dn_per_e
    rng = np.random.default_rng(5)
    electrons = rng.poisson(np.maximum(y, 0))
    masked_dng(
        tmp_path / "iso640.dng",
        height=512,
        width=512,
        image=truth.gain_dn_per_e * electrons,
        read_noise_dn=truth.read_noise_dn,
    )
    assert main(["calibrate", "image", str(tmp_path / "iso640.dng"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "(ISO 640)" in out and "masked optical-black area of 1 file(s)" in out
    result = SensorProfile.load(tmp_path / "out" / "profile.json")
    assert result.base_iso == 640 and result.noise[0].analogue_gain == 1.0
    dt = json.loads((tmp_path / "out" / "exports" / "darktable_noiseprofiles.json").read_text())
    assert dt["noiseprofiles"][0]["models"][0]["profiles"][0]["iso"] == 640
    dng = json.loads((tmp_path / "out" / "exports" / "dng_noise_profile.json").read_text())
    assert dng["entries"][0]["iso"] == 640
    report = (tmp_path / "out" / "report.md").read_text()
    assert "masked optical-black area (1 file(s), left 16 columns)" in report
    np.testing.assert_allclose(result.black_level, TRUE_BLACK, atol=0.3)


def test_calibrate_ptc_on_camera_raw_files_keeps_their_iso(tmp_path, capsys):
    # A photon-transfer set as DNGs at ISO 200 and 800, one exposure time (the DNG writer's):
    # EMVA's fixed-exposure method, levels told apart by signal. No gain is given anywhere.
    profile = synthetic.example_profile(black_level=256.0)
    sensor = synthetic.SyntheticSensor(profile, 96, 96, seed=1)
    rng = np.random.default_rng(2)
    for iso, gain in ((200, 1.0), (800, 4.0)):
        top = sensor.saturation_electrons(gain) * 1.15
        for level, fraction in enumerate(np.arange(1, 11) / 10):
            for k in range(2):
                frame = sensor.frame(fraction * top, analogue_gain=gain, rng=rng)
                write_dng(tmp_path / f"iso{iso}_flat_{level:02d}_{k}.dng", frame.data, black=(256,) * 4, white=4095,
                          iso=iso)  # fmt: skip
        for k in range(4):
            frame = sensor.frame(0.0, analogue_gain=gain, rng=rng)
            write_dng(tmp_path / f"iso{iso}_dark_{k}.dng", frame.data, black=(256,) * 4, white=4095, iso=iso)
    assert main(["calibrate", "ptc", str(tmp_path), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "gain 1 (ISO 200)" in out and "gain 4 (ISO 800)" in out
    result = SensorProfile.load(tmp_path / "out" / "profile.json")
    assert result.base_iso == 200 and [n.analogue_gain for n in result.noise][:2] == [1.0, 4.0]
    for gain in (1.0, 4.0):
        assert result.noise_at(gain).gain_dn_per_e == pytest.approx(sensor.truth(gain).gain_dn_per_e, rel=0.05)
    dt = json.loads((tmp_path / "out" / "exports" / "darktable_noiseprofiles.json").read_text())
    assert [e["iso"] for e in dt["noiseprofiles"][0]["models"][0]["profiles"]][:2] == [200, 800]
