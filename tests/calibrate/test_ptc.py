"""Photon transfer on simulated sweeps: accuracy against the known truth, robustness, errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edge_isp.calibrate import synthetic
from edge_isp.calibrate.frames import ref_from_frame
from edge_isp.calibrate.ptc import photon_transfer
from edge_isp.calibrate.workers import MAX_WORKERS, group_workers
from edge_isp.errors import InvalidInputError

from .conftest import GAINS, SIZE, refs_of


@pytest.fixture(scope="module")
def clean_result(clean_refs):
    return photon_transfer(clean_refs)


@pytest.fixture(scope="module")
def dirty_result(dirty_refs):
    return photon_transfer(dirty_refs)


@pytest.mark.parametrize("which", ["clean", "dirty"])
def test_gain_and_read_noise_match_truth(which, clean_result, dirty_result, clean_sensor):
    result = clean_result if which == "clean" else dirty_result
    assert [g.analogue_gain for g in result.gains] == list(GAINS)
    for g in result.gains:
        truth = clean_sensor.truth(g.analogue_gain)
        assert g.gain_dn_per_e == pytest.approx(truth.gain_dn_per_e, rel=0.02)
        assert g.read_noise_dn == pytest.approx(truth.read_noise_dn, rel=0.05)
        assert g.dark.row_noise_dn == pytest.approx(truth.row_noise_dn, rel=0.15)
        # The stated uncertainty is honest: the error is within 4 standard errors.
        assert abs(g.gain_dn_per_e - truth.gain_dn_per_e) < 4 * g.gain_se
        for c in g.channels:
            assert c.gain_dn_per_e == pytest.approx(truth.gain_dn_per_e, rel=0.04)
            assert len(c.used) >= 10


def test_dirty_set_finds_its_defects_and_nonuniformity(dirty_result, dirty_sensor):
    for g in dirty_result.gains:
        found = g.defects.mosaic_mask()
        assert found.flat[dirty_sensor.hot_index].all()
        assert found.flat[dirty_sensor.dead_index].all()
        assert g.defects.count() < len(dirty_sensor.hot_index) + len(dirty_sensor.dead_index) + 20
        # Cosmic rays in the flats lift a pixel's mean, but they are not over-responsive pixels.
        assert g.defects.count("overresponsive") == 0
    base = dirty_result.gains[0]  # at gain 1 the temporal noise is small next to the patterns
    assert base.prnu_pct == pytest.approx(np.full(4, 100 * dirty_sensor.prnu), rel=0.15)
    assert base.dark.dsnu_dn == pytest.approx(np.full(4, dirty_sensor.dsnu_dn), rel=0.15)
    # The clipped disk is excluded, not fitted: every level keeps the rest of the frame.
    assert all(lv.clipped_fraction.min() > 0.03 for lv in base.levels)


def test_saturation_linearity_snr_and_dynamic_range(clean_result, clean_sensor, profile):
    g = clean_result.gains[0]
    green = g.channels[1]
    # Green saturates at ~87 % of the sweep's top (1.15 x the centre's saturation, with vignetting).
    assert green.saturation_reached
    assert 0.8 * profile.range_dn < green.saturation_dn <= profile.range_dn
    assert green.linearity_error_pct is not None and green.linearity_error_pct < 1.0
    truth = clean_sensor.truth(1.0)
    expected_dr = (profile.range_dn / truth.gain_dn_per_e) / (truth.read_noise_dn / truth.gain_dn_per_e)
    assert g.dynamic_range == pytest.approx(expected_dr, rel=0.15)
    s = np.array([lv.signal_dn[1] for lv in g.levels[:10]])
    measured = s / np.sqrt([lv.total_variance_dn2[1] for lv in g.levels[:10]])
    assert g.snr_model(s) == pytest.approx(measured, rel=0.05)
    assert clean_result.max_seen_dn == profile.white_level


def test_a_corrupted_level_is_rejected(clean_sensor):
    """A level whose second frame has a moving shadow is an outlier of the PTC, not data."""
    items = list(synthetic.ptc_sweep(clean_sensor, (2.0,), levels=20, dark_frames=8, seed=21))
    bad = 5 * 2 + 1  # the second frame of level 5
    frame = items[bad].frame
    shadow = np.linspace(0.8, 1.0, frame.width)[None, :]
    corrupted = np.clip(np.rint((frame.data.astype(float) - 256) * shadow + 256), 0, 4095).astype(np.uint16)
    items[bad] = synthetic.TruthFrame("flat", dataclasses.replace(frame, data=corrupted))
    result = photon_transfer(refs_of(items)).gains[0]
    assert all(5 in c.rejected for c in result.channels)
    assert result.gain_dn_per_e == pytest.approx(clean_sensor.truth(2.0).gain_dn_per_e, rel=0.02)


def test_missing_dark_says_what_to_capture(clean_refs):
    no_dark_at_4 = [r for r in clean_refs if not (r.kind == "dark" and r.analogue_gain == 4.0)]
    with pytest.raises(InvalidInputError, match=r"no dark frames at gain 4.*lens covered"):
        photon_transfer(no_dark_at_4)


def test_too_few_levels_says_what_to_capture(clean_sensor):
    items = synthetic.ptc_sweep(clean_sensor, (1.0,), levels=4, dark_frames=4)
    with pytest.raises(InvalidInputError, match=r"only \d exposure level.*at least 5.*20 or more exposures"):
        photon_transfer(refs_of(items))


def test_single_flat_frame_per_level_is_refused(clean_sensor):
    items = synthetic.ptc_sweep(clean_sensor, (1.0,), levels=6, frames_per_level=1, dark_frames=4)
    with pytest.raises(InvalidInputError, match="needs a pair"):
        photon_transfer(refs_of(items))


def test_mixed_sizes_and_cfa_are_refused(clean_refs, profile):
    other = synthetic.SyntheticSensor(profile, SIZE // 2, SIZE // 2)
    odd = ref_from_frame(other.frame(0.0, analogue_gain=1.0, rng=np.random.default_rng(0)), "dark", "small.npy")
    with pytest.raises(InvalidInputError, match=r"mix more than one size: 128x128 .*64x64 \(1 files, e.g. small.npy\)"):
        photon_transfer([*clean_refs, odd])
    frame = clean_refs[0].load()
    bggr = ref_from_frame(dataclasses.replace(frame, cfa="BGGR"), "flat", "bggr.npy")
    with pytest.raises(InvalidInputError, match="more than one CFA pattern"):
        photon_transfer([*clean_refs, bggr])


def test_a_pixel_blind_to_light_is_found_dead_in_the_flats(clean_sensor):
    """Normal in the dark, no response to light: only the flat fields can tell."""
    items = list(synthetic.ptc_sweep(clean_sensor, (1.0,), levels=12, dark_frames=8, seed=31))
    dark = next(t.frame for t in items if t.kind == "dark")
    blind = [(10, 20), (50, 61), (100, 33)]
    rows, cols = np.array(blind).T
    for i, item in enumerate(items):
        if item.kind == "flat":
            data = item.frame.data.copy()
            data[rows, cols] = dark.data[rows, cols]
            items[i] = synthetic.TruthFrame("flat", dataclasses.replace(item.frame, data=data))
    result = photon_transfer(refs_of(items)).gains[0]
    assert {tuple(p) for p in result.defects.pixels["dead"]} == set(blind)
    assert result.dark.defects.count() == 0


def test_results_do_not_depend_on_the_threads(monkeypatch, dirty_refs):
    # One worker measures the groups in the caller's thread, when asked for; several, on a
    # thread pool: the same numbers either way (the groups are independent, taken in order).
    from edge_isp.calibrate import ptc

    results = []
    for workers in (1, 3):
        monkeypatch.setattr(ptc, "group_workers", lambda workers=workers: workers)
        results.append(photon_transfer(dirty_refs))
    for a, b in zip(results[0].gains, results[1].gains, strict=True):
        for field in ("gain_dn_per_e", "gain_se", "prnu_pct", "prnu_se", "saturation_e"):
            assert np.array_equal(getattr(a, field), getattr(b, field), equal_nan=True), field
        for la, lb in zip(a.levels, b.levels, strict=True):
            for field in ("signal_dn", "variance_dn2", "variance_se", "total_variance_dn2", "all_variance_dn2"):
                assert np.array_equal(getattr(la, field), getattr(lb, field), equal_nan=True), field
        assert a.defects.pixels.keys() == b.defects.pixels.keys()
        assert all(np.array_equal(a.defects.pixels[k], b.defects.pixels[k]) for k in a.defects.pixels)
    assert 1 <= group_workers() <= MAX_WORKERS
