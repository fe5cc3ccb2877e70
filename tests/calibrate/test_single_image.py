"""Foi's single-image fit on simulated scenes: (a, b) against the truth, clipping, errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edge_isp.calibrate import synthetic
from edge_isp.calibrate.dark import QUANTIZATION_VAR_DN2
from edge_isp.calibrate.single_image import clipped_moments, single_image
from edge_isp.errors import InvalidInputError

SIZE = 768


def _truth_ab(sensor, gain):
    t = sensor.truth(gain)
    r = sensor.profile.range_dn
    # The data are rounded to whole DN, so the observed b carries the quantization too.
    return t.gain_dn_per_e / r, (t.read_noise_dn**2 + QUANTIZATION_VAR_DN2) / r**2


def _image(sensor, gain, peak, seed):
    y = synthetic.scene(SIZE, SIZE, seed=seed, peak=peak)
    electrons = y * sensor.profile.range_dn / sensor.truth(gain).gain_dn_per_e
    return sensor.frame(electrons, analogue_gain=gain, rng=np.random.default_rng(100 + seed))


@pytest.fixture(scope="module")
def sensors(profile):
    return {
        "clean": synthetic.SyntheticSensor(profile, SIZE, SIZE, seed=1),
        "hot": synthetic.SyntheticSensor(profile, SIZE, SIZE, hot_pixels=300, dead_pixels=50, seed=2),
    }


def test_clipped_moments_match_monte_carlo():
    rng = np.random.default_rng(0)
    for mu, sigma in ((0.5, 0.1), (0.98, 0.05), (1.1, 0.1), (0.01, 0.03)):
        x = np.clip(rng.normal(mu, sigma, 400_000), 0.0, 1.0)
        mean, std = clipped_moments(np.array(mu), np.array(sigma), 0.0, 1.0)
        assert float(mean) == pytest.approx(x.mean(), abs=3e-4)
        assert float(std) == pytest.approx(x.std(), rel=5e-3)


# Light levels: a dim scene (white at 30 % of full scale), a full one, and one over-exposed
# 2.5x so that its bright half clips at white; "hot" adds hot and dead pixels as well.
@pytest.mark.parametrize("variant", ["clean", "hot"])
@pytest.mark.parametrize("gain", [1.0, 4.0, 16.0])
@pytest.mark.parametrize("peak", [0.3, 1.0, 2.5])
def test_a_and_b_within_15_percent(sensors, variant, gain, peak):
    sensor = sensors[variant]
    frame = _image(sensor, gain, peak, seed=int(gain * 10 + peak * 3))
    result = single_image([frame])
    a, b = _truth_ab(sensor, gain)
    assert result.joint.a == pytest.approx(a, rel=0.15)
    assert result.joint.b == pytest.approx(b, rel=0.15)
    assert result.joint.chi2_reduced < 2.0
    assert result.gain_dn_per_e == pytest.approx(sensor.truth(gain).gain_dn_per_e, rel=0.15)
    if peak > 1:
        assert np.mean(frame.data == sensor.profile.white_level) > 0.2  # the clipping really is there


def test_several_images_at_one_gain_are_fitted_together(sensors):
    sensor = sensors["clean"]
    frames = [_image(sensor, 2.0, 1.0, seed=s) for s in (1, 2)]
    one = single_image(frames[:1])
    both = single_image(frames)
    assert both.n_images == 2 and both.joint.n_level_sets > one.joint.n_level_sets
    assert both.joint.a_se < one.joint.a_se
    a, _ = _truth_ab(sensor, 2.0)
    assert both.joint.a == pytest.approx(a, rel=0.05)
    with pytest.raises(InvalidInputError, match="must share the gain"):
        single_image([frames[0], dataclasses.replace(frames[1], analogue_gain=4.0)])


def test_texture_without_smooth_regions_is_refused(profile):
    rng = np.random.default_rng(0)
    sensor = synthetic.SyntheticSensor(profile, 128, 128)
    texture = rng.uniform(0.0, 1.0, (128, 128)) * profile.range_dn / 0.4  # every pixel different
    frame = sensor.frame(texture, analogue_gain=1.0, rng=rng)
    with pytest.raises(InvalidInputError, match="smooth"):
        single_image([frame])
