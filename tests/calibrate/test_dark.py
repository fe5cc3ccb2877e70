"""Dark-frame analysis: levels, noise parts, shape, DSNU and defects against the known truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edge_isp.calibrate import synthetic
from edge_isp.calibrate.dark import analyze_dark, quantization_step
from edge_isp.calibrate.tukey import GAUSSIAN_LAMBDA
from edge_isp.errors import InvalidInputError

from .conftest import with_outliers


def _darks(sensor, gain, n, seed=0):
    rng = np.random.default_rng(seed)
    return [sensor.frame(0.0, analogue_gain=gain, rng=rng, exposure_time_s=0.01) for _ in range(n)]


@pytest.fixture(scope="module")
def heavy_tailed():
    profile = synthetic.example_profile(row_noise_fraction=0.4, read_noise_lambda=-0.15)
    return synthetic.SyntheticSensor(profile, 192, 192, hot_pixels=25, dead_pixels=6, dsnu_dn=1.5, seed=7)


@pytest.mark.parametrize("gain", [1.0, 8.0])
def test_levels_noise_parts_and_dsnu(heavy_tailed, gain):
    truth = heavy_tailed.truth(gain)
    frames = _darks(heavy_tailed, gain, 16, seed=int(gain))
    items = [synthetic.TruthFrame("dark", f) for f in frames]
    frames = [t.frame for t in with_outliers(items, 1e-4, seed=5)]
    result = analyze_dark(frames)
    assert result.n_frames == 16 and result.analogue_gain == gain
    assert result.black_level_dn == pytest.approx(np.full(4, 256.0), abs=0.2)
    assert result.read_noise_dn == pytest.approx(truth.read_noise_dn, rel=0.05)
    assert result.row_noise_dn == pytest.approx(truth.row_noise_dn, rel=0.1)
    assert result.dsnu_dn == pytest.approx(np.full(4, 1.5), rel=0.2)
    # ELD's heavy tails are seen as such (the stack mean pulls the fit slightly toward Gaussian).
    assert result.shape is not None and result.shape.departs_from_gaussian
    assert -0.2 < result.shape.lam < -0.08 < GAUSSIAN_LAMBDA
    assert result.shape.ppcc > result.shape.ppcc_gaussian


def test_defects_are_found_and_cosmic_rays_are_not_defects(heavy_tailed):
    frames = _darks(heavy_tailed, 1.0, 16, seed=3)
    items = [synthetic.TruthFrame("dark", f) for f in frames]
    hit = [t.frame for t in with_outliers(items, 5e-4, seed=9)]
    result = analyze_dark(hit)
    found = result.defects
    assert set(map(tuple, found.pixels["hot"])) == {divmod(int(i), 192) for i in heavy_tailed.hot_index}
    assert set(map(tuple, found.pixels["stuck"])) == {divmod(int(i), 192) for i in heavy_tailed.dead_index}
    assert found.count("cold") == 0


def test_gaussian_read_noise_is_not_called_heavy_tailed(profile):
    sensor = synthetic.SyntheticSensor(profile, 128, 128, seed=1)
    result = analyze_dark(_darks(sensor, 4.0, 16))
    assert result.shape is not None and not result.shape.departs_from_gaussian
    assert result.row_noise_dn == pytest.approx(sensor.truth(4.0).row_noise_dn, rel=0.15)


def test_a_pair_gives_noise_but_no_shape_or_dsnu(clean_sensor):
    result = analyze_dark(_darks(clean_sensor, 2.0, 2))
    assert result.read_noise_dn == pytest.approx(clean_sensor.truth(2.0).read_noise_dn, rel=0.08)
    assert result.shape is None and result.dsnu_dn is None


def test_one_frame_or_clipped_black_is_refused(clean_sensor):
    frames = _darks(clean_sensor, 1.0, 4)
    with pytest.raises(InvalidInputError, match=r"at least 2 dark frames.*got 1"):
        analyze_dark(frames[:1])
    # Black-subtracted data: half the noise sits at 0 DN and is lost.
    subtracted = [
        dataclasses.replace(
            f, data=np.clip(f.data.astype(int) - 256, 0, None).astype(np.uint16), black_level=(0.0,) * 4
        )
        for f in frames
    ]
    with pytest.raises(InvalidInputError, match="clipped at black"):
        analyze_dark(subtracted)


def test_data_shifted_into_16_bits_has_its_quantization_removed(clean_sensor):
    """12-bit data MSB-aligned in 16 bits (a Raspberry Pi 5): DN steps of 16, not 1."""
    frames = _darks(clean_sensor, 1.0, 8, seed=4)
    shifted = [
        dataclasses.replace(f, data=(f.data.astype(np.uint32) << 4).astype(np.uint16), bit_depth=16,
                            black_level=(4096.0,) * 4, white_level=65535.0)
        for f in frames
    ]  # fmt: skip
    assert quantization_step(shifted[0].data) == 16 and quantization_step(frames[0].data) == 1
    plain, result = analyze_dark(frames), analyze_dark(shifted)
    # Same noise, 16x the scale: removing 1/12 DN^2 instead of 16^2/12 would be 1 % off.
    assert result.read_noise_dn == pytest.approx(16 * plain.read_noise_dn, rel=2e-3)
    assert result.read_noise_dn == pytest.approx(16 * clean_sensor.truth(1.0).read_noise_dn, rel=0.05)
