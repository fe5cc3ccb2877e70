"""The building blocks: Tukey-lambda sampling and fit, group statistics, line fits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_isp.calibrate import tukey
from edge_isp.calibrate.fitting import detrend_quadratic, fit_line, weighted_mean
from edge_isp.calibrate.stats import measure_group
from edge_isp.errors import InvalidInputError
from edge_isp.sensor.frame import RawFrame


class TestTukey:
    def test_quantile_hand_checked(self):
        assert tukey.quantile(np.array([0.5]), 0.3)[0] == pytest.approx(0.0)
        # lam = 1 is uniform on [-1, 1]; lam = 0 the logistic.
        assert tukey.quantile(np.array([0.75]), 1.0)[0] == pytest.approx(0.5)
        assert tukey.quantile(np.array([0.75]), 0.0)[0] == pytest.approx(math.log(3.0))
        assert tukey.variance(1.0) == pytest.approx(1.0 / 3.0)
        assert tukey.variance(0.0) == pytest.approx(math.pi**2 / 3)

    @pytest.mark.parametrize("lam", [-0.2, 0.0, 0.14, 0.5])
    def test_sample_has_the_asked_std_and_the_fit_finds_its_shape(self, lam):
        x = tukey.sample(np.random.default_rng(1), (40_000,), 3.0, lam)
        assert x.std() == pytest.approx(3.0, rel=0.03)
        fit = tukey.fit_shape(x, n_boot=10)
        assert fit.lam == pytest.approx(lam, abs=max(0.03, 4 * fit.lam_se))

    def test_bad_input(self):
        with pytest.raises(InvalidInputError, match=r"lambda > -0\.5"):
            tukey.variance(-0.6)
        with pytest.raises(InvalidInputError, match="at least 500"):
            tukey.fit_shape(np.arange(10.0))


def _frame(data):
    return RawFrame(data=data.astype(np.uint16), cfa="RGGB", bit_depth=12, black_level=0.0, white_level=4095.0)


class TestGroupStats:
    def test_pair_difference_cancels_fixed_pattern_and_offsets(self):
        rng = np.random.default_rng(0)
        pattern = rng.uniform(500, 3000, (64, 64))  # fixed pattern far larger than the noise
        a = np.rint(pattern + rng.normal(0, 5, pattern.shape))
        b = np.rint(pattern + 7.0 + rng.normal(0, 5, pattern.shape))  # the light got brighter
        stats = measure_group([_frame(a), _frame(b)])
        assert stats.var_dn2 == pytest.approx(np.full(4, 25 + 1 / 12), rel=0.06)
        assert stats.frame_means_dn[1] - stats.frame_means_dn[0] == pytest.approx(np.full(4, 7.0), abs=0.3)
        assert stats.n_frames == 2 and np.all(stats.clipped_fraction == 0)

    def test_clipped_pixels_and_outliers_are_left_out(self):
        rng = np.random.default_rng(1)
        frames = [np.rint(1000 + rng.normal(0, 10, (64, 64))) for _ in range(2)]
        frames[0][:8, :] = 4095  # a clipped band in one frame
        frames[1][40, 40] += 2000  # a cosmic ray
        stats = measure_group([_frame(f) for f in frames])
        assert stats.var_dn2 == pytest.approx(np.full(4, 100.0), rel=0.08)
        assert stats.clipped_fraction == pytest.approx(np.full(4, 8 / 64))
        assert stats.outlier_fraction.sum() > 0

    def test_one_frame_is_refused(self):
        with pytest.raises(InvalidInputError, match="at least 2 frames"):
            measure_group([_frame(np.zeros((4, 4)))])


class TestFits:
    def test_line_fit_hand_checked(self):
        x = np.array([1.0, 2.0, 3.0, 4.0])
        fit = fit_line(x, 2.0 * x + 1.0, np.ones(4))
        assert (fit.slope, fit.intercept) == pytest.approx((2.0, 1.0))
        assert fit.r2 == pytest.approx(1.0) and fit.dof == 2
        origin = fit_line(x, 3.0 * x, np.ones(4), through_origin=True)
        assert origin.slope == pytest.approx(3.0) and origin.intercept == 0.0
        # Unit errors on 4 points: var(slope) = 1 / sum(x^2) through the origin.
        assert origin.slope_se == pytest.approx(1 / math.sqrt(30.0))

    def test_scatter_beyond_the_errors_widens_the_uncertainty(self):
        x = np.arange(10.0)
        y = 2 * x + np.array([1, -1] * 5) * 0.5
        tight = fit_line(x, y, np.full(10, 0.05))
        assert tight.chi2_reduced > 10
        assert tight.slope_se > 0.05 / math.sqrt(np.sum((x - x.mean()) ** 2))

    def test_weighted_mean_and_detrend(self):
        mean, se, chi2 = weighted_mean(np.array([1.0, 3.0]), np.array([1.0, 1.0]))
        assert (mean, chi2) == pytest.approx((2.0, 2.0)) and se == pytest.approx(1.0)
        yy, xx = np.mgrid[0:32, 0:32] / 31.0
        plane = 5 + 2 * xx - 3 * yy**2 + xx * yy
        assert np.abs(detrend_quadratic(plane, np.ones_like(plane, dtype=bool))).max() < 1e-9


class TestTukeyFitSteps:
    """The shape fit's PPCC is numpy's computation, step for step."""

    def test_correlator_equals_ppcc(self):
        rng = np.random.default_rng(2)
        for n in (500, 4_001, 60_000):
            x = np.sort(tukey.sample(rng, (n,), 2.5, 0.05) + 800.0)
            positions = tukey._plotting_positions(n)
            correlation = tukey._Correlator(x, positions)
            for lam in (*rng.uniform(*tukey.LAMBDA_BOUNDS, 6), 0.0, 1e-10, -1e-10):
                assert correlation(lam) == tukey.ppcc(x, lam, positions)

    def test_kept_quantiles_change_nothing(self, monkeypatch):
        # The first shapes' quantiles, kept for the bootstrap's fits, are the ones computed afresh.
        rng = np.random.default_rng(4)
        x = tukey.sample(rng, (5_000,), 1.5, -0.1)
        kept = tukey.fit_shape(x, n_boot=6)
        monkeypatch.setattr(tukey._Quantiles, "KEEP", 0)
        assert tukey.fit_shape(x, n_boot=6) == kept
        quantiles = tukey._Quantiles(tukey._plotting_positions(x.size))
        first, again = np.empty(x.size), np.empty(x.size)
        monkeypatch.setattr(tukey._Quantiles, "KEEP", 4)
        for lam in (0.3, 0.0, 0.3):
            quantiles.into(first, lam)
            assert np.array_equal(first, tukey.quantile(quantiles.p, lam))
        quantiles.into(again, 0.3)
        assert 0.3 in quantiles.kept and np.array_equal(again, tukey.quantile(quantiles.p, 0.3))
