"""SensorProfile: the shipped profile, noise interpolation, validation, JSON."""

from __future__ import annotations

import copy
import json
import math

import pytest

from edge_isp.errors import InvalidInputError, MissingFileError, ProfileError
from edge_isp.sensor.cfa import CFA
from edge_isp.sensor.profile import NoiseAtGain, SensorProfile, shipped_profiles


def _dict(**overrides) -> dict:
    data = {
        "schema": "edge-isp/sensor-profile",
        "version": 1,
        "name": "test",
        "cfa": "GRBG",
        "bit_depth": 12,
        "black_level": [256.0, 256.0, 256.0, 256.0],
        "white_level": 4095.0,
        "color_matrix": [[1.6, -0.4, -0.2], [-0.3, 1.5, -0.2], [0.0, -0.5, 1.5]],
        "white_balance": [2.0, 1.0, 1.6],
        "base_iso": 50.0,
        "max_analogue_gain": 16.0,
        "electrons_at_white_per_lux": 10.0,
        "description": "test sensor",
        "noise": [
            {"analogue_gain": 1.0, "gain_dn_per_e": 0.2, "read_noise_dn": 1.0, "row_noise_dn": 0.1},
            {"analogue_gain": 2.0, "gain_dn_per_e": 0.4, "read_noise_dn": 1.6, "row_noise_dn": 0.2},
            {
                "analogue_gain": 4.0,
                "gain_dn_per_e": 0.8,
                "read_noise_dn": 3.0,
                "row_noise_dn": 0.3,
                "read_noise_lambda": 0.1,
            },
        ],
    }
    data.update(overrides)
    return data


def _with_noise(*entries) -> SensorProfile:
    return SensorProfile.from_dict(_dict(noise=list(entries)))


class TestShippedProfile:
    def test_listed(self):
        assert "nexus6p-rear" in shipped_profiles()

    def test_paper_noise_at_base_gain(self):
        p = SensorProfile.load("nexus6p-rear")
        a, sigma = p.normalized_noise(1.0)
        assert a == pytest.approx(0.00018724, rel=1e-9)
        assert sigma == pytest.approx(0.0004733, rel=1e-9)
        assert p.range_dn == 959.0

    def test_three_lux_is_about_eight_electrons(self):
        p = SensorProfile.load("nexus6p-rear")
        # Paper: l = 0.0015 at 3 lux, electrons at white = l / a.
        assert p.electrons_at_white(3.0) == pytest.approx(0.0015 / 0.00018724, rel=1e-6)
        assert p.electrons_at_white(3.0) == pytest.approx(8.0, abs=0.05)
        assert p.lux(p.electrons_at_white(3.0)) == pytest.approx(3.0)

    def test_load_by_path_equals_by_name(self, tmp_path):
        p = SensorProfile.load("nexus6p-rear")
        p.save(tmp_path / "copy.json")
        assert SensorProfile.load(tmp_path / "copy.json") == p


class TestNoiseAt:
    @pytest.mark.parametrize("index", [0, 1, 2])
    def test_at_table_entries(self, index):
        p = SensorProfile.from_dict(_dict())
        entry = p.noise[index]
        got = p.noise_at(entry.analogue_gain)
        assert got.gain_dn_per_e == pytest.approx(entry.gain_dn_per_e, rel=1e-12)
        assert got.read_noise_dn == pytest.approx(entry.read_noise_dn, rel=1e-12)
        assert got.row_noise_dn == pytest.approx(entry.row_noise_dn, rel=1e-12)
        assert got.read_noise_lambda == entry.read_noise_lambda

    def test_between_entries_hand_checked(self):
        p = SensorProfile.from_dict(_dict())
        n = p.noise_at(1.5)
        assert n.gain_dn_per_e == pytest.approx(0.3)  # linear in gain between 0.2 and 0.4
        u = math.log(0.3 / 0.2) / math.log(0.4 / 0.2)  # position in log K
        assert n.read_noise_dn == pytest.approx(math.exp(math.log(1.0) + u * (math.log(1.6) - math.log(1.0))))
        assert n.row_noise_dn == pytest.approx(math.exp(math.log(0.1) + u * (math.log(0.2) - math.log(0.1))))
        assert 1.0 < n.read_noise_dn < 1.6

    def test_lambda_from_nearer_entry(self):
        p = SensorProfile.from_dict(_dict())
        assert p.noise_at(2.5).read_noise_lambda is None
        assert p.noise_at(3.5).read_noise_lambda == 0.1

    def test_extrapolation_above_keeps_read_noise_in_electrons(self):
        p = SensorProfile.from_dict(_dict())
        n = p.noise_at(16.0)
        assert n.gain_dn_per_e == pytest.approx(0.8 * 4)
        assert n.read_noise_dn == pytest.approx(3.0 * 4)
        assert n.row_noise_dn == pytest.approx(0.3 * 4)
        assert n.read_noise_e == pytest.approx(p.noise[-1].read_noise_e)
        assert n.read_noise_lambda == 0.1

    def test_extrapolation_below(self):
        p = SensorProfile.from_dict(_dict())
        n = p.noise_at(0.5)
        assert (n.gain_dn_per_e, n.read_noise_dn, n.row_noise_dn) == pytest.approx((0.1, 0.5, 0.05))

    def test_single_entry_is_proportional_everywhere(self):
        p = SensorProfile.load("nexus6p-rear")
        for gain in (0.25, 3.0, 64.0):
            n = p.noise_at(gain)
            assert n.gain_dn_per_e == pytest.approx(0.17956316 * gain)
            assert n.read_noise_e == pytest.approx(p.noise[0].read_noise_e)

    @pytest.mark.parametrize("gain", [0.0, -1.0, float("nan"), float("inf")])
    def test_bad_gain_raises(self, gain):
        with pytest.raises(InvalidInputError, match="analogue_gain"):
            SensorProfile.load("nexus6p-rear").noise_at(gain)

    def test_normalized_noise_digital_gain(self):
        p = SensorProfile.load("nexus6p-rear")
        a, sigma = p.normalized_noise(2.0, digital_gain=3.0)
        assert a == pytest.approx(0.00018724 * 2 * 3)
        assert sigma == pytest.approx(0.0004733 * 2 * 3)

    def test_interior_entry_next_to_zero_row_noise(self):
        p = _with_noise(
            {"analogue_gain": 1.0, "gain_dn_per_e": 0.2, "read_noise_dn": 0.5, "row_noise_dn": 0.0},
            {"analogue_gain": 2.0, "gain_dn_per_e": 0.4, "read_noise_dn": 0.7, "row_noise_dn": 0.3},
            {"analogue_gain": 4.0, "gain_dn_per_e": 0.8, "read_noise_dn": 1.0, "row_noise_dn": 0.5},
        )
        assert p.noise_at(2.0).row_noise_dn == pytest.approx(0.3)

    def test_equal_k_at_two_gains(self):
        try:
            p = _with_noise(
                {"analogue_gain": 1.0, "gain_dn_per_e": 0.2, "read_noise_dn": 0.5},
                {"analogue_gain": 2.0, "gain_dn_per_e": 0.2, "read_noise_dn": 0.7},
            )
        except ProfileError:
            return  # refusing the table is an acceptable fix
        assert p.noise_at(1.5).gain_dn_per_e == pytest.approx(0.2)


class TestLux:
    def test_without_calibration_refused(self):
        p = SensorProfile.from_dict(_dict(electrons_at_white_per_lux=None))
        with pytest.raises(ProfileError, match="electrons_at_white_per_lux"):
            p.electrons_at_white(3.0)

    @pytest.mark.parametrize("lux", [0.0, -3.0, float("nan")])
    def test_bad_lux(self, lux):
        with pytest.raises(InvalidInputError, match="lux"):
            SensorProfile.load("nexus6p-rear").electrons_at_white(lux)


def _set(data: dict, path: str, value) -> dict:
    data = copy.deepcopy(data)
    keys = path.split(".")
    target = data
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    last = keys[-1]
    target[int(last) if isinstance(target, list) else last] = value
    return data


BAD_VALUES = [
    ("name", "", "'name'"),
    ("name", 3, "'name'"),
    ("bit_depth", 7, "'bit_depth'"),
    ("bit_depth", 17, "'bit_depth'"),
    ("bit_depth", 12.0, "'bit_depth'"),
    ("black_level", [256.0, 256.0, 256.0], "'black_level'"),
    ("black_level", [256.0, 256.0, float("nan"), 256.0], "'black_level'"),
    ("black_level", [-1.0, 0.0, 0.0, 0.0], "'black_level' must be >= 0"),
    ("black_level", "low", "'black_level'"),
    ("white_level", 4096.0, "'white_level'"),
    ("white_level", 256.0, "'white_level'"),
    ("white_level", float("inf"), "'white_level'"),
    ("color_matrix", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], "'color_matrix'"),
    ("color_matrix", [[1.0, 0.0], [0.0, 1.0]], "'color_matrix'"),
    ("white_balance", [2.0, 0.0, 1.5], "'white_balance'"),
    ("white_balance", [2.0, 1.0], "'white_balance'"),
    ("base_iso", 0.0, "'base_iso'"),
    ("max_analogue_gain", -1.0, "'max_analogue_gain'"),
    ("electrons_at_white_per_lux", 0.0, "'electrons_at_white_per_lux'"),
    ("noise", [], "'noise'"),
    ("noise", "lots", "'noise'"),
    ("noise.0.analogue_gain", 0.0, "noise[0].analogue_gain"),
    ("noise.1.gain_dn_per_e", -0.4, "noise[1].gain_dn_per_e"),
    ("noise.2.read_noise_dn", -1.0, "noise[2].read_noise_dn"),
    ("noise.0.row_noise_dn", float("nan"), "noise[0].row_noise_dn"),
    ("noise.2.analogue_gain", 1.5, "noise[2].analogue_gain"),
    ("noise.1", "entry", "noise[1]"),
    ("noise.0.gain", 1.0, "noise[0]"),
    ("cfa", "RGBW", "'cfa'"),
    ("schema", "other", "'schema'"),
    ("version", 2, "'version'"),
]


class TestValidation:
    @pytest.mark.parametrize(("path", "value", "field"), BAD_VALUES)
    def test_bad_value_names_field(self, path, value, field):
        with pytest.raises(ProfileError) as info:
            SensorProfile.from_dict(_set(_dict(), path, value), origin="cam.json")
        assert field in str(info.value)
        assert str(info.value).startswith("cam.json")

    def test_constructor_validates_too(self):
        good = SensorProfile.from_dict(_dict())
        with pytest.raises(ProfileError, match="'white_balance'"):
            SensorProfile(**{**good.__dict__, "white_balance": (1.0, -1.0, 1.0)})

    def test_missing_noise_field(self):
        data = _dict()
        del data["noise"][0]["read_noise_dn"]
        with pytest.raises(ProfileError, match=r"noise\[0\]"):
            SensorProfile.from_dict(data)

    @pytest.mark.parametrize("key", ["name", "cfa", "white_level", "noise"])
    def test_missing_field(self, key):
        data = _dict()
        del data[key]
        with pytest.raises(ProfileError, match=f"missing field '{key}'"):
            SensorProfile.from_dict(data)

    def test_unknown_field_refused(self):
        with pytest.raises(ProfileError, match=r"unknown field.*'exposure'"):
            SensorProfile.from_dict(_dict(exposure=1.0))

    def test_not_an_object(self):
        with pytest.raises(ProfileError, match="JSON object"):
            SensorProfile.from_dict([1, 2, 3])

    def test_profile_error_is_value_error(self):
        assert issubclass(ProfileError, ValueError)

    def test_string_number_in_noise(self):
        with pytest.raises(ProfileError, match=r"noise\[0\]\.analogue_gain"):
            SensorProfile.from_dict(_set(_dict(), "noise.0.analogue_gain", "1.0"))

    @pytest.mark.parametrize("value", ["gaussian", float("nan")])
    def test_read_noise_lambda_validated(self, value):
        with pytest.raises(ProfileError, match=r"noise\[0\]\.read_noise_lambda"):
            SensorProfile.from_dict(_set(_dict(), "noise.0.read_noise_lambda", value))


class TestJson:
    def test_round_trip(self, tmp_path):
        p = SensorProfile.from_dict(_dict())
        path = tmp_path / "sub" / "cam.json"
        p.save(path)
        back = SensorProfile.load(path)
        assert back == p
        assert back.cfa is CFA.GRBG
        assert back.noise[2].read_noise_lambda == 0.1
        assert json.loads(path.read_text())["schema"] == "edge-isp/sensor-profile"
        assert [f.name for f in tmp_path.joinpath("sub").iterdir()] == ["cam.json"]  # no temp file left

    def test_dict_round_trip(self):
        p = SensorProfile.from_dict(_dict())
        assert SensorProfile.from_dict(json.loads(json.dumps(p.to_dict()))) == p

    def test_missing_file(self, tmp_path):
        with pytest.raises(MissingFileError, match="nexus6p-rear"):
            SensorProfile.load(tmp_path / "none.json")
        with pytest.raises(FileNotFoundError):
            SensorProfile.load("no-such-camera")

    def test_not_json(self, tmp_path):
        path = tmp_path / "bad.json"
        path.write_text("{not json")
        with pytest.raises(ProfileError, match="not valid JSON"):
            SensorProfile.load(path)

    def test_noise_entry_read_noise_e(self):
        assert NoiseAtGain(1.0, 0.25, 1.0).read_noise_e == 4.0
