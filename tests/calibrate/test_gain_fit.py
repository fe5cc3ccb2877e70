"""K against gain, read noise against K, and the profile's noise table."""

from __future__ import annotations

import math

import pytest

from edge_isp.calibrate.gain_fit import GainPoint, build_profile, fit_gains, noise_table
from edge_isp.errors import InvalidInputError
from edge_isp.sensor.profile import SensorProfile


def _points(gains, k1=0.5, read1=3.0, power=0.7, lam=None):
    out = []
    for g in gains:
        k = k1 * g
        out.append(GainPoint(g, k, 0.002 * k, read1 * (k / k1) ** power, 0.01, 0.1 * g, lam))
    return out


def test_fits_recover_linear_k_and_log_linear_read():
    fit = fit_gains(_points([8.0, 1.0, 2.0, 4.0]))
    assert [p.analogue_gain for p in fit.points] == [1.0, 2.0, 4.0, 8.0]
    assert fit.k_fit.slope == pytest.approx(0.5) and fit.k_fit.intercept == pytest.approx(0.0, abs=1e-9)
    assert fit.read_fit.slope == pytest.approx(0.7)
    assert fit.read_at(fit.k_at(3.0)) == pytest.approx(3.0 * 3.0**0.7)
    assert fit.k_residuals_pct() == pytest.approx([0, 0, 0, 0], abs=1e-9)


def test_residuals_show_a_bad_gain():
    pts = _points([1.0, 2.0, 4.0, 8.0])
    pts[2] = GainPoint(4.0, 2.0 * 1.05, 0.004, pts[2].read_noise_dn, 0.01)
    fit = fit_gains(pts)
    residuals = fit.k_residuals_pct()
    assert residuals[2] == max(residuals) and residuals[2] > 2.0
    assert fit.k_fit.chi2_reduced > 1


def test_table_keeps_measurements_and_adds_fitted_ends():
    fit = fit_gains(_points([2.0, 4.0, 8.0], lam=-0.1))
    table = noise_table(fit, max_gain=16.0)
    assert [n.analogue_gain for n in table] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert table[1].gain_dn_per_e == pytest.approx(1.0) and table[1].read_noise_lambda == -0.1
    assert table[-1].gain_dn_per_e == pytest.approx(8.0)
    assert table[-1].read_noise_dn == pytest.approx(3.0 * 16.0**0.7)
    assert table[0].row_noise_dn == pytest.approx(0.1)  # scaled with K from the nearest gain
    # One gain: no fit, nothing invented.
    single = fit_gains(_points([2.0]))
    assert single.k_fit is None and len(noise_table(single, max_gain=16.0)) == 1
    with pytest.raises(InvalidInputError, match="2 or more gains"):
        single.k_at(4.0)


def test_profile_follows_the_fit_between_and_beyond_gains():
    fit = fit_gains(_points([1.0, 2.0, 4.0, 8.0]))
    base = SensorProfile.load("nexus6p-rear")
    profile = build_profile(
        fit, name="cam", cfa="GRBG", bit_depth=12, black_level=[256.2, 256.0, 255.9, 256.1], white_level=4095,
        base=base, max_gain=32.0,
    )  # fmt: skip
    assert profile.cfa.value == "GRBG" and profile.max_analogue_gain == 64.0  # the base allows 64
    assert profile.color_matrix == base.color_matrix and profile.electrons_at_white_per_lux is not None
    n = profile.noise_at(3.0)
    assert n.gain_dn_per_e == pytest.approx(1.5)
    assert n.read_noise_dn == pytest.approx(3.0 * 3.0**0.7, rel=1e-6)
    assert profile.noise_at(64.0).gain_dn_per_e == pytest.approx(32.0)
    assert math.isclose(profile.noise_at(64.0).read_noise_dn, 3.0 * 64.0**0.7, rel_tol=1e-6)
    assert SensorProfile.from_dict(profile.to_dict()) == profile
