"""Conversions between the profile's noise model and DNG, Foi, darktable and Raspberry Pi forms."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from edge_isp.errors import InvalidInputError
from edge_isp.sensor import noise_formats as nf
from edge_isp.sensor.profile import NoiseAtGain, SensorProfile

IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def _profile(black=(64.0, 64.0, 64.0, 64.0), white=1023.0, bit_depth=10, noise=None, **kw) -> SensorProfile:
    noise = noise or (
        NoiseAtGain(1.0, 0.2, 0.8, row_noise_dn=0.3, read_noise_lambda=0.14),
        NoiseAtGain(2.0, 0.4, 1.1),
        NoiseAtGain(8.0, 1.6, 3.5),
    )
    return SensorProfile(
        name="test",
        cfa="RGGB",
        bit_depth=bit_depth,
        black_level=black,
        white_level=white,
        color_matrix=IDENTITY,
        white_balance=(1.0, 1.0, 1.0),
        noise=tuple(noise),
        **kw,
    )


def _same_noise(got: NoiseAtGain, want: NoiseAtGain) -> None:
    assert got.analogue_gain == pytest.approx(want.analogue_gain, rel=1e-12)
    assert got.gain_dn_per_e == pytest.approx(want.gain_dn_per_e, rel=1e-12)
    assert got.read_noise_dn == pytest.approx(want.read_noise_dn, rel=1e-12)


NEXUS_A, NEXUS_SIGMA = 0.00018724, 0.0004733


class TestIsoAndGain:
    def test_hand_checked(self):
        p = _profile(base_iso=50.0)
        assert nf.gain_for_iso(p, 200) == 4.0
        assert nf.iso_for_gain(p, 4.0) == 200.0

    @pytest.mark.parametrize("bad", [0, -100, float("nan"), "fast"])
    def test_bad_iso_raises(self, bad):
        with pytest.raises(InvalidInputError, match="iso"):
            nf.gain_for_iso(_profile(), bad)

    def test_gain_and_iso_together_refused(self):
        with pytest.raises(InvalidInputError, match="not both"):
            nf.to_foi(_profile(), 2.0, iso=200)


class TestDng:
    def test_nexus_hand_checked(self):
        pairs = nf.to_dng_noise_profile(SensorProfile.load("nexus6p-rear"))
        assert len(pairs) == 3
        for s, o in pairs:
            assert s == pytest.approx(NEXUS_A, rel=1e-9)
            assert o == pytest.approx(NEXUS_SIGMA**2, rel=1e-9)

    def test_per_plane_black_levels(self):
        # Ranges: R 1060-60 = 1000, G 1060-(160+260)/2 = 850, B 1060-560 = 500.
        p = _profile(black=(60.0, 160.0, 260.0, 560.0), white=1060.0, bit_depth=11, noise=(NoiseAtGain(1.0, 0.5, 2.0),))
        got = nf.to_dng_noise_profile(p)
        want = [(0.5 / 1000, (2 / 1000) ** 2), (0.5 / 850, (2 / 850) ** 2), (0.5 / 500, (2 / 500) ** 2)]
        np.testing.assert_allclose(got, want, rtol=1e-12)
        noise, spread = nf.from_dng_noise_profile(got, black_level=p.black_level, white_level=1060.0)
        _same_noise(noise, p.noise[0])
        assert spread.relative == pytest.approx(0.0, abs=1e-12)

    @pytest.mark.parametrize("gain", [0.5, 1.0, 2.0, 3.0, 8.0, 12.0])
    def test_round_trip_through_profile(self, gain):
        p = _profile(black=(62.0, 64.0, 65.0, 61.0))
        pairs = nf.to_dng_noise_profile(p, gain)
        noise, _ = nf.from_dng_noise_profile(
            pairs, black_level=p.black_level, white_level=p.white_level, analogue_gain=gain
        )
        _same_noise(noise, p.noise_at(gain))

    def test_round_trip_from_pairs(self):
        pairs = [(2.1e-4, 3.0e-7)]
        noise, _ = nf.from_dng_noise_profile(pairs, black_level=64, white_level=1023)
        p = _profile(noise=(noise,))
        np.testing.assert_allclose(nf.to_dng_noise_profile(p), pairs * 3, rtol=1e-12)

    def test_iso_keyword_is_gain_times_base_iso(self):
        p = _profile(base_iso=64.0)
        assert nf.to_dng_noise_profile(p, iso=128) == nf.to_dng_noise_profile(p, 2.0)

    def test_matches_simulated_sensor(self):
        # Poisson electrons * K + Gaussian read noise, normalized as a DNG reader does.
        p = _profile(noise=(NoiseAtGain(1.0, 0.25, 1.5),))
        rng = np.random.default_rng(7)
        electrons = 1200.0
        dn = 0.25 * rng.poisson(electrons, 400_000) + rng.normal(0.0, 1.5, 400_000)
        x = dn / (1023.0 - 64.0)
        s, o = nf.to_dng_noise_profile(p)[0]
        assert x.var() == pytest.approx(s * x.mean() + o, rel=0.02)

    def test_disagreeing_planes_averaged_and_reported(self):
        pairs = [(1.0e-4, 1.0e-6), (2.0e-4, 4.0e-6), (3.0e-4, 9.0e-6)]
        with pytest.warns(nf.NoiseConversionWarning, match="disagree"):
            noise, spread = nf.from_dng_noise_profile(pairs, black_level=0, white_level=1000)
        # K per plane 0.1, 0.2, 0.3 DN/e-; read 1, 2, 3 DN -> rms sqrt(14/3).
        np.testing.assert_allclose(spread.gain_dn_per_e, [0.1, 0.2, 0.3], rtol=1e-12)
        np.testing.assert_allclose(spread.read_noise_dn, [1.0, 2.0, 3.0], rtol=1e-12)
        assert spread.planes == ("R", "G", "B")
        assert spread.relative == pytest.approx(1.0)
        assert noise.gain_dn_per_e == pytest.approx(0.2)
        assert noise.read_noise_dn == pytest.approx(math.sqrt(14 / 3))

    def test_small_spread_is_silent(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _, spread = nf.from_dng_noise_profile(
                [(1e-4, 1e-6), (1.001e-4, 1e-6), (1e-4, 1e-6)], black_level=0, white_level=1
            )
        assert 0 < spread.relative < 0.01

    @pytest.mark.parametrize(
        ("pairs", "match"),
        [
            ([(1e-4, 1e-6)] * 2, "1 or 3"),
            ([(1e-4, 1e-6)] * 4, "1 or 3"),
            ([(1e-4,)], "1 or 3"),
            ("S,O", "1 or 3"),
            ([(0.0, 1e-6)], "scale S of plane R"),
            ([(1e-4, 1e-6), (1e-4, -1e-9), (1e-4, 1e-6)], "offset O of plane G"),
            ([(1e-4, 1e-6), (1e-4, 1e-6), (float("nan"), 1e-6)], "scale S of plane B"),
        ],
    )
    def test_bad_pairs_raise(self, pairs, match):
        with pytest.raises(InvalidInputError, match=match):
            nf.from_dng_noise_profile(pairs, black_level=64, white_level=1023)

    @pytest.mark.parametrize(
        ("black", "white", "match"),
        [((64, 64, 64), 1023, "black_level"), (64, 64, "white_level"), (64, float("inf"), "white_level")],
    )
    def test_bad_levels_raise(self, black, white, match):
        with pytest.raises(InvalidInputError, match=match):
            nf.from_dng_noise_profile([(1e-4, 1e-6)], black_level=black, white_level=white)


class TestFoi:
    def test_nexus_hand_checked(self):
        a, b = nf.to_foi(SensorProfile.load("nexus6p-rear"))
        assert a == pytest.approx(NEXUS_A, rel=1e-9)
        assert b == pytest.approx(NEXUS_SIGMA**2, rel=1e-9)

    @pytest.mark.parametrize("gain", [0.5, 1.0, 1.5, 8.0, 20.0])
    def test_round_trip(self, gain):
        p = _profile(black=(60.0, 64.0, 68.0, 64.0))
        a, b = nf.to_foi(p, gain)
        noise = nf.from_foi(a, b, black_level=p.black_level, white_level=p.white_level, analogue_gain=gain)
        _same_noise(noise, p.noise_at(gain))
        assert (a, b) == pytest.approx(nf.to_foi(_profile(noise=(noise,)), gain), rel=1e-12)

    def test_from_hand_checked(self):
        # Range 1000 DN: K = 1e-4 * 1000, read = sqrt(4e-6) * 1000.
        noise = nf.from_foi(1e-4, 4e-6, black_level=0, white_level=1000, analogue_gain=2.0)
        assert (noise.analogue_gain, noise.gain_dn_per_e, noise.read_noise_dn) == pytest.approx((2.0, 0.1, 2.0))

    def test_negative_b_warns_and_clamps(self):
        with pytest.warns(nf.NoiseConversionWarning, match="negative"):
            noise = nf.from_foi(1e-4, -2e-7, black_level=0, white_level=1000)
        assert noise.read_noise_dn == 0.0
        assert noise.gain_dn_per_e == pytest.approx(0.1)

    @pytest.mark.parametrize(("a", "b", "match"), [(0.0, 1e-6, "Foi a"), (-1e-4, 1e-6, "Foi a"), (1e-4, "x", "Foi b")])
    def test_bad_values_raise(self, a, b, match):
        with pytest.raises(InvalidInputError, match=match):
            nf.from_foi(a, b, black_level=0, white_level=1000)


class TestDarktable:
    def test_nexus_hand_checked(self):
        (entry,) = nf.to_darktable(SensorProfile.load("nexus6p-rear"), maker="Google", model="Nexus 6P")
        assert entry["iso"] == 100.0
        assert entry["name"] == "Nexus 6P iso 100"
        np.testing.assert_allclose(entry["a"], [NEXUS_A / 4] * 3, rtol=1e-9)
        np.testing.assert_allclose(entry["b"], [NEXUS_SIGMA**2 / 4] * 3, rtol=1e-9)

    def test_one_entry_per_gain(self):
        entries = nf.to_darktable(_profile(base_iso=50.0), maker="M", model="X")
        assert [e["iso"] for e in entries] == [50.0, 100.0, 400.0]

    def test_round_trip_through_file(self):
        p = _profile(black=(62.0, 64.0, 66.0, 64.0))
        doc = json.loads(json.dumps(nf.darktable_file(nf.to_darktable(p, maker="M", model="X"))))
        assert doc["version"] == 0
        entries = nf.darktable_entries(doc, maker="M", model="X")
        back, spreads = nf.from_darktable(
            entries, name="x", cfa="RGGB", bit_depth=10, black_level=p.black_level, white_level=p.white_level
        )
        assert len(back.noise) == len(p.noise) == len(spreads)
        for got, want in zip(back.noise, p.noise, strict=True):
            _same_noise(got, want)
            assert got.row_noise_dn == 0.0 and got.read_noise_lambda is None
        assert back.max_analogue_gain == 8.0

    def test_variance_scale_is_linear(self):
        a1 = nf.to_darktable(_profile(), maker="M", model="X", variance_scale=0.25)[0]["a"]
        a2 = nf.to_darktable(_profile(), maker="M", model="X", variance_scale=0.05)[0]["a"]
        np.testing.assert_allclose(np.array(a1) / np.array(a2), 5.0)

    def test_haar_band_of_white_noise_has_quarter_variance(self):
        # The claim behind DARKTABLE_HAAR_WHITE, with darktable's lifting Haar step.
        x = np.random.default_rng(3).normal(0.0, 2.0, (1024, 1024))
        hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 4
        assert hh.var() == pytest.approx(nf.DARKTABLE_HAAR_WHITE * 4.0, rel=0.02)

    def _entry(self, iso=100, a=(1e-4, 1e-4, 1e-4), b=(1e-6, 1e-6, 1e-6)):
        return {"maker": "M", "model": "X", "name": f"X iso {iso}", "iso": iso, "a": list(a), "b": list(b)}

    def _convert(self, entries, **kw):
        kw = {"name": "x", "cfa": "RGGB", "bit_depth": 10, "black_level": 0, "white_level": 1000, **kw}
        return nf.from_darktable(entries, **kw)

    def test_from_hand_checked(self):
        # a / 0.25 * 1000 = 0.4 DN/e-; sqrt(1e-6 / 0.25) * 1000 = 2 DN; gain = 400 / 100.
        profile, _ = self._convert([self._entry(iso=400)])
        (n,) = profile.noise
        assert (n.analogue_gain, n.gain_dn_per_e, n.read_noise_dn) == pytest.approx((4.0, 0.4, 2.0))

    def test_unsorted_entries_are_sorted(self):
        profile, _ = self._convert([self._entry(iso=800), self._entry(iso=200)])
        assert [n.analogue_gain for n in profile.noise] == [2.0, 8.0]

    def test_zero_a_channel_left_out(self):
        with pytest.warns(nf.NoiseConversionWarning, match=r"\['R'\]"):
            profile, (spread,) = self._convert([self._entry(a=(0.0, 1e-4, 3e-4))], spread_tolerance=10.0)
        assert spread.planes == ("G", "B")
        assert profile.noise[0].gain_dn_per_e == pytest.approx((0.4 + 1.2) / 2)

    def test_negative_b_warns(self):
        with pytest.warns(nf.NoiseConversionWarning, match="negative"):
            profile, _ = self._convert([self._entry(b=(-1e-7, -1e-7, -1e-7))])
        assert profile.noise[0].read_noise_dn == 0.0

    def test_skipped_entries_ignored(self):
        doc = nf.darktable_file([self._entry(iso=100), {**self._entry(iso=200), "skip": True}])
        assert [e["iso"] for e in nf.darktable_entries(doc, maker="M", model="X")] == [100]

    @pytest.mark.parametrize(
        ("entries", "match"),
        [
            ([], "at least one"),
            ([{"iso": 100, "a": [1e-4] * 2, "b": [0] * 3}], "'a' must list 3"),
            ([{"iso": 100, "a": [1e-4] * 3}], "'b' must list 3"),
            ([{"iso": -5, "a": [1e-4] * 3, "b": [0] * 3}], "iso"),
            ([{"iso": 100, "a": [0.0] * 3, "b": [0] * 3}], "every channel"),
            ([{"iso": 100, "a": [1e-4] * 3, "b": [0] * 3}] * 2, "two darktable entries have iso 100"),
        ],
    )
    def test_bad_entries_raise(self, entries, match):
        with pytest.raises(InvalidInputError, match=match):
            self._convert(entries)

    def test_unknown_camera_lists_models(self):
        doc = nf.darktable_file([self._entry()])
        with pytest.raises(InvalidInputError, match=r"model 'Y'.*\['X'\]"):
            nf.darktable_entries(doc, maker="M", model="Y")
        with pytest.raises(InvalidInputError, match="version 0"):
            nf.darktable_entries({"version": 3}, maker="M", model="X")


class TestRaspberryPi:
    def test_hand_checked(self):
        # 12-bit: f = 16. K = 0.25 -> slope sqrt(16 * 0.25) = 2; read 2 DN -> constant 32.
        p = _profile(white=4095.0, bit_depth=12, noise=(NoiseAtGain(1.0, 0.25, 2.0),))
        assert nf.to_rpi_noise(p) == pytest.approx({"reference_constant": 32.0, "reference_slope": 2.0})

    def test_from_shipped_style_tuning(self):
        # A vc4 tuning file's block (version 2 layout); constant 0 is what the ctt writes for a negative fit.
        tuning = {
            "version": 2.0,
            "algorithms": [
                {"rpi.black_level": {"black_level": 4096}},
                {"rpi.noise": {"reference_constant": 0, "reference_slope": 4.25}},
            ],
        }
        block = nf.rpi_noise_block(tuning)
        with pytest.warns(nf.NoiseConversionWarning, match="unknown"):
            noise = nf.from_rpi_noise(**block, bit_depth=10)
        assert noise.gain_dn_per_e == pytest.approx(4.25**2 / 64)
        assert noise.read_noise_dn == 0.0

    def test_block_from_version_1_file(self):
        assert nf.rpi_noise_block({"rpi.noise": {"reference_constant": 1}}) == {"reference_constant": 1}
        with pytest.raises(InvalidInputError, match=r"no 'rpi\.noise'"):
            nf.rpi_noise_block({"algorithms": [{"rpi.agc": {}}]})

    @pytest.mark.parametrize("reference_gain", [1.0, 2.0, 5.0])
    def test_round_trip(self, reference_gain):
        p = _profile()
        block = nf.to_rpi_noise(p, reference_gain=reference_gain)
        noise = nf.from_rpi_noise(**block, bit_depth=10, reference_gain=reference_gain)
        _same_noise(noise, p.noise_at(reference_gain))

    def test_slope_is_gain_independent_for_proportional_k(self):
        # ctt divides each chart image by its gain, so K proportional to gain gives one slope.
        p = _profile()
        assert nf.to_rpi_noise(p, reference_gain=8.0)["reference_slope"] == pytest.approx(
            nf.to_rpi_noise(p, reference_gain=1.0)["reference_slope"]
        )

    def test_rpi_curve_exceeds_poisson_gaussian_by_at_most_sqrt2(self):
        c, s = 30.0, 3.0
        x = np.linspace(0, 2000, 200_001)
        ratio = (c + s * np.sqrt(x)) / np.sqrt(c**2 + s**2 * x)
        assert ratio.max() == pytest.approx(math.sqrt(2), rel=1e-6)
        assert x[ratio.argmax()] == pytest.approx(c**2 / s**2, rel=1e-3)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"reference_constant": -1.0, "reference_slope": 3.0, "bit_depth": 10}, "reference_constant"),
            ({"reference_constant": 10.0, "reference_slope": 0.0, "bit_depth": 10}, "reference_slope"),
            ({"reference_constant": 10.0, "reference_slope": 3.0, "bit_depth": 17}, "bit_depth"),
            ({"reference_constant": 10.0, "reference_slope": 3.0, "bit_depth": 10.0}, "bit_depth"),
            (
                {"reference_constant": 10.0, "reference_slope": 3.0, "bit_depth": 10, "reference_gain": 0},
                "reference_gain",
            ),
        ],
    )
    def test_bad_values_raise(self, kwargs, match):
        with pytest.raises(InvalidInputError, match=match):
            nf.from_rpi_noise(**kwargs)
