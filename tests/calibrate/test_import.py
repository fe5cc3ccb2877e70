"""`edge-isp calibrate import`: profiles from darktable, DNG and Raspberry Pi noise descriptions.

Each source is made from a known profile with the existing ``to_*`` exporter, written as a
small JSON document (not the Debian files, which CI lacks), imported back and compared.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from edge_isp.calibrate import importing
from edge_isp.cli import main
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.sensor import noise_formats
from edge_isp.sensor.profile import NoiseAtGain, SensorProfile

# A made-up 10-bit sensor: K doubles with gain, read noise (DN) grows more slowly.
TABLE = ((1.0, 0.2, 0.9), (2.0, 0.4, 1.2), (4.0, 0.8, 1.9))


def known_profile(table=TABLE) -> SensorProfile:
    return SensorProfile(
        name="known",
        cfa="GRBG",
        bit_depth=10,
        black_level=(64.0, 64.0, 64.0, 64.0),
        white_level=1023.0,
        color_matrix=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        white_balance=(1.0, 1.0, 1.0),
        noise=tuple(NoiseAtGain(g, k, r) for g, k, r in table),
        base_iso=50.0,
        max_analogue_gain=4.0,
    )


def darktable_doc(profile: SensorProfile, maker: str = "Acme", model: str = "Cam 1") -> dict:
    return noise_formats.darktable_file(noise_formats.to_darktable(profile, maker=maker, model=model))


def write(tmp_path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return str(path)


def assert_same_noise(got: SensorProfile, want: SensorProfile) -> None:
    assert [n.analogue_gain for n in got.noise] == [n.analogue_gain for n in want.noise]
    for g, w in zip(got.noise, want.noise, strict=True):
        assert g.gain_dn_per_e == pytest.approx(w.gain_dn_per_e, rel=1e-9)
        assert g.read_noise_dn == pytest.approx(w.read_noise_dn, rel=1e-9)


def per_iso_import(*args, **kwargs):
    """The per-ISO conversion (each entry alone, planes averaged), which round-trips exactly."""
    return importing.import_darktable(*args, method="per-iso", **kwargs)


def cli(argv, capsys) -> tuple[int, str, str]:
    """Run the real `edge-isp` entry point; a user's mistake exits 1 with a message."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


# -- darktable ------------------------------------------------------------------------------
class TestDarktable:
    def test_round_trip_restores_the_noise_table(self):
        want = known_profile()
        result = per_iso_import(
            darktable_doc(want), maker="Acme", model="Cam 1", name="back", cfa="GRBG", bit_depth=10,
            black_level=64, white_level=1023, base_iso=50,
        )  # fmt: skip
        got = result.profile
        assert_same_noise(got, want)
        assert got.name == "back" and got.base_iso == 50.0 and got.max_analogue_gain == 4.0
        assert got.electrons_at_white_per_lux is None and got.color_matrix[0] == (1.0, 0.0, 0.0)
        assert "Acme Cam 1" in got.description and "variance_scale 0.25" in got.description
        # The exporter writes equal planes, so nothing was averaged away.
        assert all(s.relative < 1e-9 for s in result.spreads) and len(result.spreads) == 3

    def test_defaults_are_the_lowest_iso_and_full_scale_and_say_so(self):
        result = per_iso_import(
            darktable_doc(known_profile()), maker="Acme", model="Cam 1", name="x", cfa="RGGB", bit_depth=10,
            black_level=64,
        )  # fmt: skip
        assert result.profile.base_iso == 50.0 and result.profile.white_level == 1023.0
        assert [n.analogue_gain for n in result.profile.noise] == [1.0, 2.0, 4.0]
        assert any("lowest ISO imported, 50" in n for n in result.notes)
        assert any("full scale at 10 bits, 1023 DN" in n for n in result.notes)

    def test_k_scales_inversely_with_variance_scale_and_normalized_noise_ignores_levels(self):
        doc = darktable_doc(known_profile())
        kwargs = {"maker": "Acme", "model": "Cam 1", "name": "x", "cfa": "RGGB", "bit_depth": 12, "base_iso": 50}
        quarter = per_iso_import(doc, black_level=64, white_level=1023, **kwargs).profile
        eighth = per_iso_import(doc, black_level=64, white_level=1023, variance_scale=0.125, **kwargs)
        assert eighth.profile.noise[1].gain_dn_per_e == pytest.approx(2 * quarter.noise[1].gain_dn_per_e, rel=1e-12)
        assert eighth.profile.noise[1].read_noise_e == pytest.approx(
            quarter.noise[1].read_noise_e / math.sqrt(2), rel=1e-12
        )
        other_levels = per_iso_import(doc, black_level=256, white_level=4095, **kwargs).profile
        assert other_levels.normalized_noise(2.0) == pytest.approx(quarter.normalized_noise(2.0), rel=1e-12)
        assert other_levels.noise[1].gain_dn_per_e == pytest.approx(quarter.noise[1].gain_dn_per_e * 3839 / 959)

    def test_disagreeing_planes_are_averaged_with_a_note(self):
        doc = darktable_doc(known_profile())
        for entry in doc["noiseprofiles"][0]["models"][0]["profiles"]:
            entry["a"][0] *= 2.0  # red's slope twice green's, as darktable reports for phones
        result = per_iso_import(
            doc, maker="Acme", model="Cam 1", name="x", cfa="RGGB", bit_depth=10, black_level=64, white_level=1023,
            base_iso=50,
        )  # fmt: skip
        assert result.profile.noise[0].gain_dn_per_e == pytest.approx(0.2 * 4 / 3, rel=1e-9)
        assert result.spreads[0].gain_dn_per_e == pytest.approx((0.4, 0.2, 0.2))
        assert sum("planes disagree" in n for n in result.notes) == 3

    def test_a_misspelt_camera_lists_the_close_matches(self):
        doc = darktable_doc(known_profile())
        with pytest.raises(InvalidInputError, match=r"maker 'acme' model 'cam1'.*closest: maker 'Acme' model 'Cam 1'"):
            importing.find_darktable_camera(doc, maker="acme", model="cam1")
        with pytest.raises(InvalidInputError, match="nothing close among its 1 cameras"):
            importing.find_darktable_camera(doc, maker="Zeiss", model="Ikon 9000")

    def test_a_file_of_another_version_is_refused(self):
        with pytest.raises(InvalidInputError, match="version 0: got version 3"):
            importing.find_darktable_camera({"version": 3, "noiseprofiles": []}, maker="Acme", model="Cam 1")

    def test_k_falling_with_gain_is_refused_with_the_isos_and_a_subset_that_works(self):
        table = ((1.0, 0.2, 0.9), (2.0, 0.4, 1.2), (4.0, 0.8, 1.9), (8.0, 1.6, 2.5))
        doc = darktable_doc(known_profile(table))
        top = doc["noiseprofiles"][0]["models"][0]["profiles"][3]
        top["a"] = [v / 4 for v in top["a"]]  # K at ISO 400 now below ISO 200's
        kwargs = {"maker": "Acme", "model": "Cam 1", "name": "x", "cfa": "RGGB", "bit_depth": 10, "black_level": 64}
        with pytest.raises(
            InvalidInputError, match=r"K falls from 0\.8 DN/e- at ISO 200 to 0\.4 at ISO 400.*50, 100, 200"
        ):
            per_iso_import(doc, **kwargs)
        kept = per_iso_import(doc, isos=[50, 100, 200], **kwargs).profile
        assert [n.analogue_gain for n in kept.noise] == [1.0, 2.0, 4.0]

    def test_iso_selection_refuses_unknown_and_duplicated_isos(self):
        doc = darktable_doc(known_profile())
        profiles = doc["noiseprofiles"][0]["models"][0]["profiles"]
        profiles.append(dict(profiles[1]))  # a second ISO 100 entry, as darktable has for some cameras
        kwargs = {"maker": "Acme", "model": "Cam 1", "name": "x", "cfa": "RGGB", "bit_depth": 10, "black_level": 64}
        with pytest.raises(InvalidInputError, match=r"more than one entry .* ISO 100 .*e\.g\. 50, 200"):
            per_iso_import(doc, **kwargs)
        with pytest.raises(InvalidInputError, match=r"no entry .* ISO 800; expected ISOs among 50, 100, 200"):
            per_iso_import(doc, isos=[50, 800], **kwargs)
        with pytest.raises(InvalidInputError, match=r"more than one entry .* ISO 100"):
            per_iso_import(doc, isos=[50, 100], **kwargs)
        assert len(per_iso_import(doc, isos=[200, 50], **kwargs).profile.noise) == 2

    def test_max_gain_below_the_table_and_bad_lux_scale_are_refused(self):
        doc = darktable_doc(known_profile())
        kwargs = {"maker": "Acme", "model": "Cam 1", "name": "x", "cfa": "RGGB", "bit_depth": 10, "black_level": 64}
        with pytest.raises(InvalidInputError, match=r"expected >= 4 \(its highest gain\), got 2"):
            per_iso_import(doc, max_analogue_gain=2.0, **kwargs)
        with pytest.raises(InvalidInputError, match="electrons_at_white_per_lux must be a positive number"):
            per_iso_import(doc, electrons_at_white_per_lux=-1.0, **kwargs)
        with pytest.raises(InvalidInputError, match="black_level must be one number or 4"):
            per_iso_import(doc, **{**kwargs, "black_level": [64, 64]})


# -- DNG NoiseProfile -----------------------------------------------------------------------
class TestDng:
    def test_round_trip_at_an_iso(self):
        want = known_profile()
        pairs = noise_formats.to_dng_noise_profile(want, iso=100)
        text = ",".join(f"{v!r}" for pair in pairs for v in pair)
        result = importing.import_dng_noise_profile(
            importing.parse_dng_noise_profile(text), iso=100, base_iso=50, name="dng", cfa="RGGB", bit_depth=10,
            black_level=64, white_level=1023,
        )  # fmt: skip
        (entry,) = result.profile.noise
        assert entry.analogue_gain == 2.0
        assert entry.gain_dn_per_e == pytest.approx(0.4, rel=1e-12)
        assert entry.read_noise_dn == pytest.approx(1.2, rel=1e-12)
        assert result.profile.max_analogue_gain == 16.0 and any("one gain only" in n for n in result.notes)

    def test_parse_takes_one_or_three_pairs_and_refuses_the_rest(self):
        assert importing.parse_dng_noise_profile("2e-4, 1e-7") == [(2e-4, 1e-7)]
        assert len(importing.parse_dng_noise_profile("1 2 3 4 5 6")) == 3
        with pytest.raises(InvalidInputError, match=r"2 numbers .* or 6 .* got 4"):
            importing.parse_dng_noise_profile("1,2,3,4")
        with pytest.raises(InvalidInputError, match="must be numbers 'S,O"):
            importing.parse_dng_noise_profile("1,x")


# -- Raspberry Pi tuning file ---------------------------------------------------------------
class TestRpi:
    def tuning(self, profile: SensorProfile, black_16: int | None = 4096) -> dict:
        algorithms = [{"rpi.noise": noise_formats.to_rpi_noise(profile)}]
        if black_16 is not None:
            algorithms.insert(0, {"rpi.black_level": {"black_level": black_16}})
        return {"version": 2.0, "target": "bcm2835", "algorithms": algorithms}

    def test_round_trip_takes_the_black_level_from_the_file(self):
        want = known_profile()
        result = importing.import_rpi_tuning(self.tuning(want), name="pi", cfa="RGGB", bit_depth=10)
        (entry,) = result.profile.noise
        assert entry.analogue_gain == 1.0
        assert entry.gain_dn_per_e == pytest.approx(0.2, rel=1e-12)
        assert entry.read_noise_dn == pytest.approx(0.9, rel=1e-12)
        assert result.profile.black_level == (64.0,) * 4
        assert any("rpi.black_level, 64 DN at 10 bit" in n for n in result.notes)

    def test_zero_constant_is_a_note_and_a_missing_black_level_an_error(self):
        tuning = self.tuning(known_profile(), black_16=None)
        tuning["algorithms"][0]["rpi.noise"]["reference_constant"] = 0
        with pytest.raises(InvalidInputError, match=r"no 'rpi\.black_level' block"):
            importing.import_rpi_tuning(tuning, name="pi", cfa="RGGB", bit_depth=10)
        result = importing.import_rpi_tuning(tuning, name="pi", cfa="RGGB", bit_depth=10, black_level=64)
        assert result.profile.noise[0].read_noise_dn == 0.0
        assert any("read noise is unknown" in n for n in result.notes)

    def test_an_incomplete_noise_block_is_refused(self):
        with pytest.raises(InvalidInputError, match=r"missing \['reference_slope'\]"):
            importing.import_rpi_tuning(
                {"rpi.noise": {"reference_constant": 1}}, name="pi", cfa="RGGB", bit_depth=10, black_level=64
            )


# -- the command ----------------------------------------------------------------------------
class TestCommand:
    def test_darktable_import_writes_the_profile(self, tmp_path, capsys):
        source = write(tmp_path, "noiseprofiles.json", darktable_doc(known_profile(MODEL_TABLE)))
        out = tmp_path / "profiles" / "cam1.json"
        code, stdout, _ = cli(
            ["calibrate", "import", "--darktable", source, "--maker", "Acme", "--model", "Cam 1", "--cfa", "GRBG",
             "--bit-depth", "10", "--black", "64", "--base-iso", "50", "--electrons-per-lux", "3.5",
             "--output", str(out)],
            capsys,
        )  # fmt: skip
        assert code == 0
        got = SensorProfile.load(out)
        assert_same_noise(got, known_profile(MODEL_TABLE))
        assert got.name == "cam1" and got.electrons_at_white(2.0) == pytest.approx(7.0)
        assert "ISO 100 (gain 2): K = 0.4 DN/e-" in stdout and "note: white level not given" in stdout

    def test_dng_and_rpi_imports_write_profiles(self, tmp_path, capsys):
        want = known_profile()
        text = ",".join(repr(v) for pair in noise_formats.to_dng_noise_profile(want, 4.0) for v in pair)
        dng = tmp_path / "dng.json"
        common = ["--cfa", "RGGB", "--bit-depth", "10", "--base-iso", "50"]
        argv = ["calibrate", "import", "--dng-noise-profile", text, "--iso", "200", "--black", "64", "--white", "1023"]
        assert cli([*argv, *common, "--output", str(dng)], capsys)[0] == 0
        assert SensorProfile.load(dng).noise[0].gain_dn_per_e == pytest.approx(0.8, rel=1e-12)
        tuning = write(tmp_path, "imx.json", TestRpi().tuning(want))
        rpi = tmp_path / "rpi.json"
        code, _, _ = cli(["calibrate", "import", "--rpi-tuning", tuning, *common, "--output", str(rpi)], capsys)
        assert code == 0 and SensorProfile.load(rpi).noise[0].read_noise_dn == pytest.approx(0.9, rel=1e-12)

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["--darktable", "{dt}", "--model", "Cam 1", "--black", "64"], "--darktable needs --maker"),
            (["--darktable", "{dt}", "--maker", "Acme", "--model", "Cam 1"], "expected --black DN, got none"),
            (["--darktable", "{dt}", "--maker", "Acme", "--model", "Cam 1", "--black", "64", "--iso", "100"],
             "--iso cannot be used with --darktable"),
            (["--dng-noise-profile", "1e-4,1e-7", "--black", "64"], "--dng-noise-profile needs --iso"),
            (["--dng-noise-profile", "1e-4,1e-7", "--iso", "100", "--black", "64", "64"], "one level or 4"),
            (["--darktable", "{dt}", "--maker", "Acme", "--model", "Cam 2", "--black", "64"],
             "closest: maker 'Acme' model 'Cam 1'"),
            (["--darktable", "{bad}", "--maker", "Acme", "--model", "Cam 1", "--black", "64"], "is not valid JSON"),
            (["--rpi-tuning", "{missing}"], "does not exist"),
            (["--darktable", "{dt}", "--maker", "Acme", "--model", "Cam 1", "--black", "64", "--cfa", "RGBW"],
             "unknown CFA pattern 'RGBW'"),
        ],
    )  # fmt: skip
    def test_mistakes_exit_1_with_a_message(self, tmp_path, capsys, argv, message):
        paths = {
            "dt": write(tmp_path, "dt.json", darktable_doc(known_profile())),
            "bad": write(tmp_path, "bad.json", "{not json"),
            "missing": str(tmp_path / "nowhere.json"),
        }
        argv = [a.format(**paths) for a in argv]
        if "--cfa" not in argv:
            argv += ["--cfa", "RGGB"]
        out = tmp_path / "p.json"
        code, _, err = cli(["calibrate", "import", *argv, "--bit-depth", "10", "--output", str(out)], capsys)
        assert code == 1 and message in " ".join(err.split()) and not out.exists()

    def test_a_missing_required_option_is_named(self, tmp_path, capsys):
        code, _, err = cli(
            ["calibrate", "import", "--rpi-tuning", "x.json", "--output", str(tmp_path / "p.json")], capsys
        )
        assert code == 1 and "--cfa" in err and "--bit-depth" in err


def test_read_json_document_names_a_missing_file(tmp_path):
    with pytest.raises(MissingFileError, match=r"tuning file '.*nowhere\.json' does not exist"):
        importing.read_json_document(tmp_path / "nowhere.json", "tuning file")


# -- the shipped second camera --------------------------------------------------------------
def test_shipped_oneplus6_profile_loads_by_name_with_the_documented_lux_scale():
    profile = SensorProfile.load("oneplus6-rear")
    nexus = SensorProfile.load("nexus6p-rear")
    # Pixel area and aperture area (1/N^2) relative to the Nexus 6P, as its description states.
    scale = (1.22 / 1.55) ** 2 * (2.0 / 1.7) ** 2
    assert profile.electrons_at_white_per_lux == pytest.approx(nexus.electrons_at_white_per_lux * scale, rel=1e-12)
    assert profile.base_iso == 100.0 and profile.max_analogue_gain == 64.0 and len(profile.noise) == 7
    ks = [n.gain_dn_per_e for n in profile.noise]
    assert ks == sorted(ks)
    assert "darktable" in profile.description and "variance_scale 0.147" in profile.description


def test_shipped_oneplus6_profile_simulates():
    torch = pytest.importorskip("torch")
    from edge_isp.sensor.simulate import electrons_from_lux, simulate

    profile = SensorProfile.load("oneplus6-rear")
    generator = torch.Generator().manual_seed(0)
    sim = simulate(torch.full((1, 3, 64, 64), 0.5), profile, electrons_from_lux(profile, 3.0), generator=generator)
    assert sim.packed.shape == (1, 4, 32, 32) and float(sim.analogue_gain[0]) == 64.0
    electrons = float(sim.electrons_at_white[0])
    a, sigma = (float(v) for v in sim.noise[0])
    # The simulator's normalization: a = 1 / electrons, sigma = read noise (e-) / electrons.
    assert a == pytest.approx(1 / electrons, rel=1e-5)
    assert sigma == pytest.approx(profile.noise_at(64.0).read_noise_e / electrons, rel=1e-5)


# -- darktable, read the way darktable reads it: green only, one model across ISO ------------
# K = 0.2 DN/e- per gain, read^2 = (K x 2 e-)^2 + (0.5 DN)^2: the fit's own model, exactly.
MODEL_TABLE = tuple((g, 0.2 * g, math.hypot(0.2 * g * 2.0, 0.5)) for g in (1.0, 2.0, 4.0, 8.0))
EXTRACT = Path(__file__).parent / "data" / "darktable_extract.json"
# Cameras of the committed extract, with ISOs that are one analogue gain each (the import
# refuses the others by name: extended, pulled or pushed ISOs) and their raw levels.
REAL_CAMERAS = {
    ("OnePlus", "ONEPLUS A6003"): (None, 10, 64, 1023),
    ("Nikon", "D750"): ((100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600), 14, 600, 15520),
    ("Panasonic", "DMC-GH4"): ((200, 400, 800, 1600, 3200, 6400, 12800), 12, 128, 4095),
    ("Fujifilm", "X-T2"): ((200, 400, 800, 1600, 3200, 6400, 12800, 25600), 14, 1024, 16383),
    ("Olympus", "E-M1"): ((200, 400, 800, 1600, 3200, 6400, 12800, 25600), 12, 256, 4095),
    ("LGE", "Nexus 5X"): ((100, 200, 400, 800, 1600), 10, 64, 1023),
}


class TestDarktableFit:
    def import_model(self, doc, **kwargs):
        options = dict(maker="Acme", model="Cam 1", name="x", cfa="RGGB", bit_depth=10, black_level=64,
                       white_level=1023, base_iso=50)  # fmt: skip
        return importing.import_darktable(doc, **{**options, **kwargs})

    def test_the_model_round_trips_exactly(self):
        want = known_profile(MODEL_TABLE)
        result = self.import_model(darktable_doc(want))
        assert_same_noise(result.profile, want)
        assert result.fit.pre_e == pytest.approx(2.0, rel=1e-9) and result.fit.post_dn == pytest.approx(0.5, rel=1e-9)
        assert result.fit.k_per_iso * 50 == pytest.approx(0.2, rel=1e-12)
        assert "green entries only" in result.profile.description

    def test_red_and_blue_slopes_do_not_move_k(self):
        doc = darktable_doc(known_profile(MODEL_TABLE))
        for entry in doc["noiseprofiles"][0]["models"][0]["profiles"]:
            entry["a"][0] *= 2.5  # darktable's white-balance-1 export inflates R and B
            entry["a"][2] *= 2.1
        assert_same_noise(self.import_model(doc).profile, known_profile(MODEL_TABLE))

    def test_negative_b_is_fitted_through_with_a_note(self):
        doc = darktable_doc(known_profile(MODEL_TABLE))
        doc["noiseprofiles"][0]["models"][0]["profiles"][0]["b"][1] *= -1.0
        result = self.import_model(doc)
        assert any("green b is negative at ISO 50" in n for n in result.notes)
        reads = [n.read_noise_dn for n in result.profile.noise]
        assert reads == sorted(reads) and reads[0] > 0

    def test_an_entry_without_a_usable_iso_is_refused(self):
        doc = darktable_doc(known_profile(MODEL_TABLE))
        doc["noiseprofiles"][0]["models"][0]["profiles"][1]["iso"] = "auto"
        with pytest.raises(InvalidInputError, match="has no usable ISO: expected a positive number, got 'auto'"):
            self.import_model(doc)

    def test_an_iso_off_the_line_is_refused_with_the_subset_that_fits(self):
        doc = darktable_doc(known_profile(MODEL_TABLE))
        doc["noiseprofiles"][0]["models"][0]["profiles"][0]["a"][1] *= 2.0  # an extended "Lo" ISO
        with pytest.raises(InvalidInputError, match=r"not proportional to ISO at ISO 50.*e\.g\. 100, 200, 400"):
            self.import_model(doc)

    def test_on_real_cameras_read_noise_rises_and_k_follows_iso(self):
        data = json.loads(EXTRACT.read_text())
        for (maker, model), (isos, bits, black, white) in REAL_CAMERAS.items():
            result = importing.import_darktable(
                data, maker=maker, model=model, name="x", cfa="RGGB", bit_depth=bits, black_level=black,
                white_level=white, isos=isos, variance_scale=0.147,
            )  # fmt: skip
            fit, noise = result.fit, result.profile.noise
            read_dn = [n.read_noise_dn for n in noise]
            read_e = [n.read_noise_e for n in noise]
            assert all(b > a for a, b in itertools.pairwise(read_dn)), (model, read_dn)
            assert all(b <= a + 1e-9 for a, b in itertools.pairwise(read_e)), (model, read_e)
            # Each entry's own K within 20 % of the line, and the line known to 5 %.
            assert max(map(abs, fit.k_deviation)) < 0.2 and fit.k_rel_se < 0.05, (model, fit)
            assert 0.5 < read_e[-1] < 10, (model, read_e)

    def test_real_canon_with_pulled_third_stops_is_refused_by_name(self):
        data = json.loads(EXTRACT.read_text())
        with pytest.raises(
            InvalidInputError,
            match=r"not proportional to ISO at ISO 50, 100, 125, 160, 320, 640, 1250",
        ):
            importing.import_darktable(
                data, maker="Canon", model="EOS 5D Mark III", name="x", cfa="RGGB", bit_depth=14, black_level=2048,
                white_level=15000,
            )  # fmt: skip
