"""Raspberry Pi tuning files -> shipped profiles: the read-noise model, the colour, and the
shipped JSON being exactly what the import makes of the files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_isp.calibrate import importing, rpi_tuning
from edge_isp.errors import InvalidInputError
from edge_isp.sensor.profile import NoiseAtGain, SensorProfile

DATA = Path(__file__).parent / "data"
TUNING_DIR = Path("/usr/share/libcamera/ipa/raspberrypi")
PI_PROFILES = ("imx219", "imx477", "imx296", "imx290", "ov5647", "imx519")


def reimport(tuning: dict, shipped: SensorProfile) -> SensorProfile:
    """Import ``tuning`` with the settings the shipped profile records."""
    first, last = shipped.noise[0], shipped.noise[-1]
    return importing.import_rpi_tuning(
        tuning, name=shipped.name, cfa=shipped.cfa, bit_depth=shipped.bit_depth,
        max_analogue_gain=shipped.max_analogue_gain, read_noise_e=(first.read_noise_e, last.read_noise_e),
        electrons_at_white_per_lux=shipped.electrons_at_white_per_lux, description=shipped.description,
        colour_temperature_k=6500.0 if shipped.has_colour else None,
    ).profile  # fmt: skip


def assert_same(a: SensorProfile, b: SensorProfile) -> None:
    da, db = a.to_dict(), b.to_dict()
    noise_a, noise_b = da.pop("noise"), db.pop("noise")
    assert {k: v for k, v in da.items() if k != "color_matrix"} == {k: v for k, v in db.items() if k != "color_matrix"}
    np.testing.assert_allclose(da["color_matrix"], db["color_matrix"], rtol=1e-12)
    for x, y in zip(noise_a, noise_b, strict=True):
        assert x.pop("read_noise_lambda") is None and y.pop("read_noise_lambda") is None
        assert x == pytest.approx(y, rel=1e-9)


def test_the_committed_extract_gives_the_shipped_imx477():
    shipped = SensorProfile.load("imx477")
    tuning = json.loads((DATA / "rpi_imx477_extract.json").read_text())
    assert_same(reimport(tuning, shipped), shipped)


@pytest.mark.skipif(not TUNING_DIR.is_dir(), reason="Debian's libcamera-ipa is not installed")
@pytest.mark.parametrize("name", PI_PROFILES)
def test_each_shipped_pi_profile_is_the_import_of_its_tuning_file(name):
    shipped = SensorProfile.load(name)
    tuning = json.loads((TUNING_DIR / f"{name}.json").read_text())
    assert_same(reimport(tuning, shipped), shipped)


def test_imx477_matches_a_published_photon_transfer_measurement():
    # Hogan 2020 (strollswithmydog.com, "Pi HQ Cam Sensor Performance"), 12-bit raw: K = 0.47 DN/e-
    # at gain 1; read noise 1.53 DN at gain 1 and 11.50 DN at gain 16. Only K comes from the tuning
    # file; the read noise in electrons was given, so this checks the slope conversion and the model.
    p = SensorProfile.load("imx477")
    assert p.noise_at(1.0).gain_dn_per_e == pytest.approx(0.47, rel=0.03)
    assert p.noise_at(1.0).read_noise_dn == pytest.approx(1.53, rel=0.08)
    assert p.noise_at(16.0).read_noise_dn == pytest.approx(11.50, rel=0.03)


@pytest.mark.parametrize("name", PI_PROFILES)
def test_shipped_pi_profiles_are_physical(name):
    p = SensorProfile.load(name)
    gains = [n.analogue_gain for n in p.noise]
    k = np.array([n.gain_dn_per_e for n in p.noise])
    read_e = np.array([n.read_noise_e for n in p.noise])
    np.testing.assert_allclose(k / np.array(gains), k[0], rtol=1e-12)  # K proportional to analogue gain
    assert np.all(np.diff(read_e) <= 1e-12) and 0.5 < read_e[-1] <= read_e[0] < 10
    assert 2000 < p.range_dn / k[0] < 20000  # electrons at white at gain 1: a full well of a small pixel
    assert p.electrons_at_white_per_lux and "tuning" in p.description
    if p.has_colour:
        np.testing.assert_allclose(np.sum(p.color_matrix, axis=1), 1.0, atol=0.02)


class TestReadNoiseModel:
    unity = NoiseAtGain(analogue_gain=1.0, gain_dn_per_e=0.5, read_noise_dn=0.0)

    def test_passes_through_both_points(self):
        table, pre_e, post_dn = rpi_tuning.read_noise_table(self.unity, (3.0, 1.5), 16.0)
        assert [n.analogue_gain for n in table] == [1, 2, 4, 8, 16]
        assert table[0].read_noise_e == pytest.approx(3.0) and table[-1].read_noise_e == pytest.approx(1.5)
        # By hand: pre^2 = (1.5^2 16^2 - 3^2) / (16^2 - 1) = 567 / 255; post = 0.5 sqrt(9 - pre^2).
        assert pre_e == pytest.approx(np.sqrt(567 / 255))
        assert post_dn == pytest.approx(0.5 * np.sqrt(9 - 567 / 255))

    def test_one_value_is_constant_in_electrons(self):
        table, _pre_e, post_dn = rpi_tuning.read_noise_table(self.unity, (2.0,), 8.0)
        assert post_dn == 0 and all(n.read_noise_e == pytest.approx(2.0) for n in table)

    def test_rising_read_noise_is_refused(self):
        with pytest.raises(InvalidInputError, match="cannot rise with analogue gain"):
            rpi_tuning.read_noise_table(self.unity, (1.0, 2.0), 8.0)


def test_colour_at_a_listed_temperature_is_that_matrix():
    tuning = json.loads((DATA / "rpi_imx477_extract.json").read_text())
    ccm = next(a["rpi.ccm"] for a in tuning["algorithms"] if "rpi.ccm" in a)["ccms"][3]
    matrix, wb, _note = rpi_tuning.rpi_colour(tuning, ccm["ct"])
    np.testing.assert_allclose(np.ravel(matrix), ccm["ccm"])
    curve = np.reshape(next(a["rpi.awb"] for a in tuning["algorithms"] if "rpi.awb" in a)["ct_curve"], (-1, 3))
    ct, r, b = curve[2]
    _, wb, _ = rpi_tuning.rpi_colour(tuning, ct)
    assert wb == pytest.approx((1 / r, 1.0, 1 / b))
    assert rpi_tuning.rpi_colour({"algorithms": [{"rpi.noise": {}}]}) is None


def test_a_tuning_file_without_a_noise_model_is_refused():
    with pytest.raises(InvalidInputError, match=r"no 'rpi\.noise' block"):
        importing.import_rpi_tuning(
            {"algorithms": [{"rpi.black_level": {"black_level": 4096}}]}, name="x", cfa="RGGB", bit_depth=10,
            read_noise_e=(3.0,),
        )  # fmt: skip


@pytest.mark.parametrize("name", PI_PROFILES)
def test_the_simulator_draws_each_pi_camera_at_its_own_noise(name):
    torch = pytest.importorskip("torch")
    from edge_isp.sensor.simulate import simulate

    p = SensorProfile.load(name)
    flat = torch.full((1, 3, 128, 128), 0.5, dtype=torch.float64)
    args = (flat, p, p.electrons_at_white(3.0))
    sim = simulate(*args, quantize=False, generator=torch.Generator().manual_seed(0))
    mean = simulate(*args, quantize=False, noise=False).packed
    a, sigma = (float(v) for v in sim.noise[0])
    gain = float(sim.analogue_gain[0])
    # The parameters are the profile's at the gain the simulator picked...
    want_a, want_sigma = p.normalized_noise(gain, float(sim.digital_gain[0]))
    assert (a, sigma) == pytest.approx((want_a, want_sigma), rel=1e-6)
    # ...and the frame it drew has that noise about its expected value: var = a x + sigma^2.
    residual = (sim.packed - mean).flatten()
    x = float(mean.mean())
    assert float(residual.var()) == pytest.approx(a * x + sigma**2, rel=0.1)
