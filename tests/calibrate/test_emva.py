"""EMVA 1288 parity on simulated sweeps with known truth: saturation at the variance peak,
SNR max, absolute sensitivity threshold, dynamic range, dark current, the fixed-exposure
method, the stuck-pixel test on integer data, and the outputs that stop at saturation."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from edge_isp.calibrate import synthetic
from edge_isp.calibrate.dark import analyze_dark
from edge_isp.calibrate.defects import identical_probability
from edge_isp.calibrate.pipeline import calibrate_ptc
from edge_isp.calibrate.ptc import _running_median3, photon_transfer
from edge_isp.errors import InvalidInputError
from edge_isp.sensor.cfa import pack

from .conftest import refs_of


@pytest.fixture(scope="module")
def result(clean_refs):
    return photon_transfer(clean_refs)


def pair_variance_by_level(refs, gain: float) -> tuple[np.ndarray, np.ndarray]:
    """An independent, plain EMVA computation: per flat pair, the mean and half the variance of
    the difference over all pixels (clipped ones included), per channel, minus the dark's."""
    flats = [r for r in refs if r.kind == "flat" and r.analogue_gain == gain]
    darks = [r for r in refs if r.kind == "dark" and r.analogue_gain == gain][:2]
    d0, d1 = (pack(r.load().data, r.cfa).astype(np.float64) for r in darks)
    dark_mean, dark_var = (d0 + d1).mean(axis=(1, 2)) / 2, (d0 - d1).var(axis=(1, 2)) / 2
    means, variances = [], []
    for a, b in zip(flats[0::2], flats[1::2], strict=True):
        x, y = (pack(r.load().data, r.cfa).astype(np.float64) for r in (a, b))
        means.append((x + y).mean(axis=(1, 2)) / 2 - dark_mean)
        variances.append((x - y).var(axis=(1, 2)) / 2 - dark_var)
    return np.array(means), np.array(variances)


def test_saturation_is_at_the_variance_peak(result, clean_refs):
    moved = 0
    for g in result.gains:
        means, variances = pair_variance_by_level(clean_refs, g.analogue_gain)
        for c, fit in enumerate(g.channels):
            if not fit.saturation_reached:
                continue
            peak = int(np.argmax(variances[:, c]))
            # The level where the variance peaks, found by the plain computation.
            assert fit.saturation_dn == pytest.approx(means[peak, c], rel=0.01)
            raw = np.array([lv.all_variance_dn2[c] for lv in g.levels])
            smoothed_peak = int(np.argmax(_running_median3(raw)))
            moved += peak > smoothed_peak
    # The running median alone (the old rule) put saturation a level early on these sweeps.
    assert moved >= 3


def test_emva_quantities_match_the_truth(result, clean_sensor):
    for g in result.gains:
        truth = clean_sensor.truth(g.analogue_gain)
        dark_var = truth.read_noise_dn**2 + truth.row_noise_dn**2 + 1 / 12  # quantization included
        threshold = 0.5 + math.sqrt(0.25 + dark_var / truth.gain_dn_per_e**2)
        assert g.sensitivity_threshold_e == pytest.approx(threshold, rel=0.03)
        assert g.snr_max == pytest.approx(math.sqrt(g.saturation_e))
        assert g.dynamic_range_emva == pytest.approx(g.saturation_e / threshold, rel=0.03)
        for c, fit in enumerate(g.channels):
            assert fit.linearity_min_pct <= 0 <= fit.linearity_max_pct  # deviations of a fitted line
            assert fit.linearity_max_pct - fit.linearity_min_pct < 2.0  # the sensor is linear
            below = g.levels_below_saturation(c)
            assert all(lv.all_signal_dn[c] <= fit.saturation_dn * (1 + 1e-9) for lv in below)
            if fit.saturation_reached:
                assert len(below) < len(g.levels)


def test_dark_current_from_darks_at_several_exposures(profile):
    sensor = synthetic.SyntheticSensor(profile, 96, 96, seed=2)
    rng = np.random.default_rng(3)
    items = list(synthetic.ptc_sweep(sensor, (4.0,), levels=10, dark_frames=4, seed=4))
    current_e_per_s = 400.0
    for t in (0.05, 0.1, 0.2, 0.4):
        for _ in range(4):
            frame = sensor.frame(current_e_per_s * t, analogue_gain=4.0, rng=rng, exposure_time_s=t)
            items.append(synthetic.TruthFrame("dark", frame))
    g = photon_transfer(refs_of(items)).gains[0]
    d = g.dark_current
    assert len(d.exposures_s) == 5
    assert abs(d.mean_e_per_s - current_e_per_s) < 4 * d.mean_se + 0.05 * current_e_per_s
    assert abs(d.variance_e_per_s - current_e_per_s) < 4 * d.variance_se + 0.05 * current_e_per_s


def fixed_exposure(items):
    return [synthetic.TruthFrame(t.kind, dataclasses.replace(t.frame, exposure_time_s=0.01)) for t in items]


def test_a_fixed_exposure_sweep_with_the_light_varied_is_grouped_by_signal(clean_sensor):
    items = fixed_exposure(synthetic.ptc_sweep(clean_sensor, (2.0,), levels=12, dark_frames=4, seed=5))
    g = photon_transfer(refs_of(items)).gains[0]
    assert g.varied == "light" and len(g.levels) == 12
    assert g.gain_dn_per_e == pytest.approx(clean_sensor.truth(2.0).gain_dn_per_e, rel=0.02)
    assert g.channels[1].linearity_error_pct is None and any("light varied" in n for n in g.notes)


def test_a_fixed_exposure_sweep_where_the_light_did_not_vary_is_refused(clean_sensor):
    rng = np.random.default_rng(6)
    flats = [clean_sensor.frame(3000.0, analogue_gain=1.0, rng=rng, exposure_time_s=0.01) for _ in range(12)]
    darks = [clean_sensor.frame(0.0, analogue_gain=1.0, rng=rng, exposure_time_s=0.01) for _ in range(4)]
    items = [synthetic.TruthFrame("flat", f) for f in flats] + [synthetic.TruthFrame("dark", d) for d in darks]
    with pytest.raises(InvalidInputError, match=r"share one exposure and the light did not vary.*fewer than 5 levels"):
        photon_transfer(refs_of(items))


def test_stuck_pixels_are_not_called_on_integer_data_at_low_noise():
    # 0.8 DN read noise, 8 frames: a healthy pixel repeats one value with probability 1.7e-3
    # (the old chi-square test flagged ~1700 per megapixel here).
    low = synthetic.example_profile(read_noise_dn_at_1=0.8)
    sensor = synthetic.SyntheticSensor(low, 256, 256, seed=7)
    rng = np.random.default_rng(8)
    frames = [sensor.frame(0.0, analogue_gain=1.0, rng=rng) for _ in range(8)]
    assert identical_probability(0.8**2 + 1 / 12, 8) == pytest.approx(1.7e-3, rel=0.1)
    dark = analyze_dark(frames)
    assert dark.defects.count("stuck") == 0
    assert any("stuck pixels not looked for" in n for n in dark.notes)


def test_stuck_pixels_are_found_where_the_noise_tells_them_apart():
    noisy = synthetic.example_profile(read_noise_dn_at_1=4.0)
    sensor = synthetic.SyntheticSensor(noisy, 128, 128, seed=9)
    rng = np.random.default_rng(10)
    frames = []
    assert identical_probability(4.0**2, 16) < 1e-9  # 16 frames at 4 DN: a repeat is not chance
    for _ in range(16):
        f = sensor.frame(0.0, analogue_gain=1.0, rng=rng)
        data = f.data.copy()
        data[10, 10:20] = 257  # ten pixels that never move, at the black level
        frames.append(dataclasses.replace(f, data=data))
    dark = analyze_dark(frames)
    stuck = {tuple(p) for p in dark.defects.pixels["stuck"]}
    assert {(10, x) for x in range(10, 20)} <= stuck and len(stuck) == 10


def test_one_gain_writes_no_noise_vs_gain_plot(clean_sensor, tmp_path):
    items = synthetic.ptc_sweep(clean_sensor, (1.0,), levels=10, dark_frames=4, seed=11)
    (tmp_path / "noise_vs_gain.png").write_bytes(b"stale")
    cal = calibrate_ptc(refs_of(items), tmp_path, name="one")
    assert "gain_plot" not in cal.files and not (tmp_path / "noise_vs_gain.png").exists()
    report = (tmp_path / "report.md").read_text()
    assert "past saturation left out" in report and "absolute sensitivity threshold" in report
