"""Round trip through the torch simulator: simulate a sweep from a profile, calibrate it,
simulate again from the calibrated profile: the noise statistics agree."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_isp.calibrate import synthetic  # noqa: E402
from edge_isp.calibrate.frames import ref_from_frame  # noqa: E402
from edge_isp.calibrate.gain_fit import GainPoint, build_profile, fit_gains  # noqa: E402
from edge_isp.calibrate.pipeline import _lambda_if_not_gaussian  # noqa: E402
from edge_isp.calibrate.ptc import photon_transfer  # noqa: E402
from edge_isp.calibrate.stats import measure_group  # noqa: E402
from edge_isp.sensor.simulate import simulate  # noqa: E402

GAINS = (1.0, 4.0, 16.0)
SIZE = 96


def _flats(profile, gain, electrons, count, generator, exposure):
    white = torch.ones(count, 3, SIZE, SIZE, dtype=torch.float64)
    sim = simulate(white, profile, electrons, analogue_gain=gain, generator=generator)
    return sim.to_frames(profile, exposure_time_s=exposure)


def _sweep(profile, seed):
    gen = torch.Generator().manual_seed(seed)
    refs = []
    for gain in GAINS:
        e_sat = profile.range_dn / profile.noise_at(gain).gain_dn_per_e
        for k in range(1, 17):
            for f in _flats(profile, gain, 1.1 * e_sat * k / 16, 2, gen, exposure=1e-3 * k / gain):
                refs.append(ref_from_frame(f, "flat"))
        # A black scene is darkness: no electrons whatever the light level.
        black = torch.zeros(16, 3, SIZE, SIZE, dtype=torch.float64)
        sim = simulate(black, profile, 100.0, analogue_gain=gain, generator=gen)
        refs += [ref_from_frame(f, "dark") for f in sim.to_frames(profile, exposure_time_s=1e-3 / gain)]
    return refs


def _calibrate(refs):
    result = photon_transfer(refs)
    points = [
        GainPoint(g.analogue_gain, g.gain_dn_per_e, g.gain_se, g.read_noise_dn, g.dark.read_noise_se,
                  g.dark.row_noise_dn, _lambda_if_not_gaussian(g.dark))
        for g in result.gains
    ]  # fmt: skip
    return build_profile(
        fit_gains(points), name="round-trip", cfa=result.cfa, bit_depth=result.bit_depth,
        black_level=result.gains[0].dark.black_level_dn, white_level=result.white_level,
    )  # fmt: skip


def _statistics(profile, seed):
    """Temporal variance at three levels and the dark noise, per gain, from simulated frames."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for gain in GAINS:
        e_sat = profile.range_dn / profile.noise_at(gain).gain_dn_per_e
        for fraction in (0.1, 0.4, 0.7):
            frames = _flats(profile, gain, fraction * e_sat, 8, gen, exposure=0.01)
            out[(gain, fraction)] = measure_group(frames).var_dn2.mean()
        dark = simulate(torch.zeros(8, 3, SIZE, SIZE, dtype=torch.float64), profile, 100.0, analogue_gain=gain,
                        generator=gen).to_frames(profile)  # fmt: skip
        out[(gain, 0.0)] = measure_group(dark).var_dn2.mean()
    return out


def test_calibrated_profile_simulates_the_same_noise():
    truth = synthetic.example_profile(row_noise_fraction=0.3, read_noise_lambda=-0.1)
    calibrated = _calibrate(_sweep(truth, seed=1))
    for gain in GAINS:
        a, b = truth.noise_at(gain), calibrated.noise_at(gain)
        assert b.gain_dn_per_e == pytest.approx(a.gain_dn_per_e, rel=0.02)
        assert b.read_noise_dn == pytest.approx(a.read_noise_dn, rel=0.05)
        assert b.row_noise_dn == pytest.approx(a.row_noise_dn, rel=0.2)
        assert b.read_noise_lambda is not None and b.read_noise_lambda < 0  # heavy tails carried over
    original, again = _statistics(truth, seed=7), _statistics(calibrated, seed=7)
    for key, value in original.items():
        assert again[key] == pytest.approx(value, rel=0.04), key
    # Between and beyond the measured gains the profile follows the fits.
    assert calibrated.noise_at(8.0).gain_dn_per_e == pytest.approx(truth.noise_at(8.0).gain_dn_per_e, rel=0.03)
    assert np.isclose(calibrated.max_analogue_gain, 16.0)
