"""The raw simulator: statistics against the Poisson-Gaussian model, gains, levels, gradients.

Statistical checks compare sample moments with the model's and allow Z standard errors,
the standard error derived from the sample size (and the fourth moment for variances).
Generators are seeded, so each check is deterministic; Z = 6 keeps a correct simulator
far from the edge while a wrong gain, noise level or clipping is many errors away.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy import stats

from edge_isp.contract.model_input import Preprocessor
from edge_isp.errors import InvalidInputError, ProfileError
from edge_isp.sensor import colour_torch as ct
from edge_isp.sensor.cfa import CFA, mosaic, pack
from edge_isp.sensor.exposure import auto_analogue_gain
from edge_isp.sensor.optics import blur_image, gaussian_kernel
from edge_isp.sensor.profile import NoiseAtGain, SensorProfile
from edge_isp.sensor.simulate import (
    RawSimulator,
    electrons_from_lux,
    sample_light_levels,
    simulate,
)

Z = 6.0
NEXUS = SensorProfile.load("nexus6p-rear")
NEXUS_READ_E = 0.4538947 / 0.17956316


def synthetic_profile(**changes) -> SensorProfile:
    """12-bit GRBG sensor, three gain entries with K not proportional to gain, row noise,
    a real colour matrix and white balance."""
    fields = dict(
        name="synthetic-12bit",
        cfa=CFA.GRBG,
        bit_depth=12,
        black_level=(256.0, 256.0, 256.0, 256.0),
        white_level=4095.0,
        color_matrix=((1.6, -0.4, -0.2), (-0.3, 1.5, -0.2), (0.0, -0.5, 1.5)),
        white_balance=(2.0, 1.0, 1.6),
        noise=(
            NoiseAtGain(1.0, 0.5, 2.0, 0.5),
            NoiseAtGain(4.0, 1.8, 4.5, 1.2),
            NoiseAtGain(16.0, 8.0, 14.0, 3.0),
        ),
        max_analogue_gain=16.0,
        electrons_at_white_per_lux=5.0,
    )
    fields.update(changes)
    return SensorProfile(**fields)


def without_row_noise(profile: SensorProfile) -> SensorProfile:
    return dataclasses.replace(profile, noise=tuple(dataclasses.replace(n, row_noise_dn=0.0) for n in profile.noise))


SYNTHETIC = synthetic_profile()
SYNTHETIC_NO_ROWS = without_row_noise(SYNTHETIC)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def grey(value_linear: float, shape=(8, 3, 128, 128), dtype=torch.float32) -> torch.Tensor:
    """A flat sRGB image whose linear value is ``value_linear``."""
    return torch.full(shape, float(ct.linear_to_srgb(torch.tensor(value_linear, dtype=torch.float64))), dtype=dtype)


def exact_dn_moments(mean_e: float, k: float, read_dn: float, black: float, white: float):
    """Mean, variance and 4th central moment of one pixel's output, exactly: Poisson
    electrons times K, plus Gaussian read noise, plus black, rounded to whole DN and
    clipped to [0, white], summed over electron counts and output levels."""
    n = np.arange(0, int(mean_e + 12 * math.sqrt(mean_e) + 30))
    pmf = stats.poisson.pmf(n, mean_e)
    levels = np.arange(0, int(white) + 1, dtype=np.float64)
    edges = np.concatenate(([-np.inf], levels[:-1] + 0.5, [np.inf]))
    cdf = stats.norm.cdf((edges[None, :] - (black + k * n)[:, None]) / read_dn)
    p = pmf @ np.diff(cdf, axis=1)
    p /= p.sum()
    mean = float(p @ levels)
    var = float(p @ (levels - mean) ** 2)
    mu4 = float(p @ (levels - mean) ** 4)
    return mean, var, mu4


def assert_moments(samples: torch.Tensor, mean: float, var: float, mu4: float, what: str) -> None:
    x = samples.double().reshape(-1)
    n = x.numel()
    got_mean, got_var = float(x.mean()), float(x.var())
    se_mean, se_var = math.sqrt(var / n), math.sqrt((mu4 - var**2) / n)
    assert abs(got_mean - mean) < Z * se_mean, f"{what}: mean {got_mean:.5g}, model {mean:.5g} (SE {se_mean:.3g})"
    assert abs(got_var - var) < Z * se_var, f"{what}: variance {got_var:.5g}, model {var:.5g} (SE {se_var:.3g})"


def sample_var_with_se(x: torch.Tensor) -> tuple[float, float]:
    """Sample variance and its standard error from the sample's own fourth moment."""
    x = x.double().reshape(-1)
    centred = x - x.mean()
    var = float((centred**2).mean())
    return var, math.sqrt((float((centred**4).mean()) - var**2) / x.numel())


class TestPoissonGaussianStatistics:
    @pytest.mark.parametrize(
        ("profile", "electrons", "level"),
        [
            (NEXUS, 2.0, 0.5),  # max gain; the read noise reaches below 0 DN and clips
            (NEXUS, 8.0, 0.25),
            (NEXUS, 64.0, 0.5),
            (NEXUS, 1000.0, 0.5),
            (NEXUS, 6000.0, 0.89),  # base gain held (see below), about half the pixels clip at white
            (SYNTHETIC_NO_ROWS, 2.0, 0.5),
            (SYNTHETIC_NO_ROWS, 8.0, 0.25),
            (SYNTHETIC_NO_ROWS, 64.0, 0.5),
            (SYNTHETIC_NO_ROWS, 1000.0, 0.5),  # gain between two table entries
            (SYNTHETIC_NO_ROWS, 4000.0, 0.7),
        ],
    )
    def test_flat_patch_raw_matches_the_model(self, profile, electrons, level):
        # Beyond full scale at base gain an auto-exposing camera cuts its exposure; a gain
        # given by hand keeps the light, and the sensor clips.
        full_scale = profile.range_dn / profile.noise_at(1.0).gain_dn_per_e
        gain = 1.0 if electrons > full_scale else "auto"
        sim = simulate(grey(level), profile, electrons, analogue_gain=gain, generator=seeded(1))
        model = profile.noise_at(float(sim.analogue_gain[0]))
        raw_planes = pack(sim.raw_dn, profile.cfa)
        linear_planes = pack(mosaic(sim.blurred_linear, profile.cfa), profile.cfa)
        for p in range(4):
            x = float(linear_planes[:, p].mean())
            expected = exact_dn_moments(
                electrons * x, model.gain_dn_per_e, model.read_noise_dn, profile.black_level[p], profile.white_level
            )
            assert_moments(raw_planes[:, p], *expected, what=f"{profile.name} e={electrons} plane {p}")

    def test_daylight_cuts_the_exposure_to_full_scale_instead_of_clipping(self):
        full_scale = NEXUS.range_dn / NEXUS.noise_at(1.0).gain_dn_per_e  # 5341 e-, about 2000 lux
        day = simulate(grey(0.5), NEXUS, 10 * full_scale, noise=False)
        at_full = simulate(grey(0.5), NEXUS, full_scale, noise=False)
        assert float(day.electrons_at_white[0]) == pytest.approx(full_scale)
        assert float(day.digital_gain[0]) == pytest.approx(1.0) and float(day.analogue_gain[0]) == 1.0
        torch.testing.assert_close(day.packed, at_full.packed)  # a mid grey, not clipped white scaled down
        torch.testing.assert_close(day.noise, at_full.noise)
        held = simulate(grey(0.5), NEXUS, 10 * full_scale, analogue_gain=1.0, noise=False)
        assert float(held.packed.max()) == pytest.approx(0.1, rel=1e-4)  # clipped at white, then gain 0.1

    def test_exact_moments_reduce_to_the_simple_model_without_clipping(self):
        mean, var, _ = exact_dn_moments(400.0, 0.9, 3.0, 64.0, 1023.0)
        assert mean == pytest.approx(64 + 0.9 * 400, abs=1e-6)
        assert var == pytest.approx(0.9**2 * 400 + 3.0**2 + 1 / 12, rel=1e-4)

    def test_unquantized_float64_follows_the_plain_formula(self):
        electrons, level = 500.0, 0.6
        sim = simulate(grey(level, dtype=torch.float64), NEXUS, electrons, quantize=False, generator=seeded(2))
        assert sim.raw_dn.dtype == torch.float64
        assert not torch.equal(sim.raw_dn, sim.raw_dn.round())
        model = NEXUS.noise_at(float(sim.analogue_gain[0]))
        lam = electrons * level
        var = model.gain_dn_per_e**2 * lam + model.read_noise_dn**2
        # Poisson-Gaussian fourth central moment: K^4 (lam + 3 lam^2) + 6 K^2 lam r^2 + 3 r^4.
        k2, r2 = model.gain_dn_per_e**2, model.read_noise_dn**2
        mu4 = k2**2 * (lam + 3 * lam**2) + 6 * k2 * lam * r2 + 3 * r2**2
        assert_moments(sim.raw_dn, 64 + model.gain_dn_per_e * lam, var, mu4, "float64 unquantized")

    @pytest.mark.parametrize("electrons", [4.0, 1000.0])  # maximum gain; between two table entries
    def test_row_noise(self, electrons):
        profile, level = SYNTHETIC, 0.02
        sim = simulate(grey(level, shape=(16, 3, 256, 128)), profile, electrons, generator=seeded(3))
        model = profile.noise_at(float(sim.analogue_gain[0]))
        planes = pack(sim.raw_dn, profile.cfa).double()
        linear = pack(mosaic(sim.blurred_linear, profile.cfa), profile.cfa)
        # Planes 0 and 3 sit on different sensor rows, so their rows are independent.
        for p in (0, 3):
            rows = planes[:, p]  # (B, h, w): each row of a plane is one sensor row
            width = rows.shape[-1]
            lam = electrons * float(linear[:, p].mean())
            _, pixel_var, pixel_mu4 = exact_dn_moments(lam, model.gain_dn_per_e, model.read_noise_dn, 256.0, 4095.0)
            within = float(rows.var(dim=-1).mean())  # row offsets cancel inside a row
            se_within = math.sqrt((pixel_mu4 - pixel_var**2) / (rows.numel() - rows.shape[0] * rows.shape[1]))
            assert abs(within - pixel_var) < Z * se_within, f"pixel variance {within}, model {pixel_var}"
            row_means = rows.mean(dim=-1).reshape(-1)
            expected = model.row_noise_dn**2 + pixel_var / width
            got = float(row_means.var())
            se = expected * math.sqrt(2 / (row_means.numel() - 1))
            assert abs(got - expected) < Z * se, f"variance of row means {got}, model {expected} (SE {se})"
            # Without row noise the check above would miss by more than Z standard errors.
            assert model.row_noise_dn**2 > 2 * Z * se

    @pytest.mark.parametrize(
        ("profile", "electrons", "levels"),
        [
            (NEXUS, 64.0, (0.5, 0.9)),
            (NEXUS, 200.0, (0.3, 0.8)),
            (NEXUS, 1000.0, (0.1, 0.6)),
            (SYNTHETIC, 2.0, (0.5, 0.9)),
            (SYNTHETIC, 8.0, (0.2, 0.9)),
            (SYNTHETIC, 64.0, (0.2, 0.9)),
        ],
    )
    def test_normalized_noise_params_match_packed(self, profile, electrons, levels):
        for level in levels:
            sim = simulate(grey(level), profile, electrons, generator=seeded(4))
            a, sigma = (float(v) for v in sim.noise[0])
            d = float(sim.digital_gain[0])
            range_dn = profile.white_level - profile.black_level[0]
            row_var = (profile.noise_at(float(sim.analogue_gain[0])).row_noise_dn * d / range_dn) ** 2
            quant_var = (d / range_dn) ** 2 / 12
            linear = pack(mosaic(sim.blurred_linear, profile.cfa), profile.cfa)
            for p in range(4):
                x = float(linear[:, p].mean())
                samples = sim.packed[:, p]
                var, se = sample_var_with_se(samples)
                expected = a * x + sigma**2 + row_var + quant_var
                assert abs(var - expected) < Z * se, f"plane {p} x={x:.3f}: var {var:.5g} vs a*x+s^2 {expected:.5g}"
                assert abs(float(samples.double().mean()) - x) < Z * math.sqrt(var / samples.numel())

    def test_read_noise_scale_scales_the_read_noise_and_sigma(self):
        profile = SYNTHETIC_NO_ROWS
        dark = torch.zeros(2, 3, 128, 128)
        base = simulate(dark, profile, 50.0, analogue_gain=4.0, quantize=False, generator=seeded(5))
        scaled = simulate(
            dark, profile, 50.0, analogue_gain=4.0, quantize=False, read_noise_scale=torch.tensor([1.0, 3.0]),
            generator=seeded(5),
        )  # fmt: skip
        # sigma follows the factor, a does not; image 0 is the profile itself.
        assert torch.equal(scaled.noise[0], base.noise[0])
        assert torch.allclose(scaled.noise[1], base.noise[1] * torch.tensor([1.0, 3.0]))
        # The dark frame's variance is sigma^2 (no light, no shot noise), as the model input says.
        for i in range(2):
            var, se = sample_var_with_se(scaled.packed[i])
            assert abs(var - float(scaled.noise[i, 1]) ** 2) < Z * se
        with pytest.raises(InvalidInputError, match="read_noise_scale"):
            simulate(dark, profile, 50.0, read_noise_scale=torch.tensor([1.0, 0.0]))

    def test_tukey_lambda_read_noise(self):
        lam, read = 0.5, 20.0
        entry = NoiseAtGain(1.0, 0.5, read, 0.0, read_noise_lambda=lam)
        profile = synthetic_profile(noise=(entry,), black_level=(2048.0,) * 4)
        sim = simulate(torch.zeros(4, 3, 128, 128), profile, 100.0, analogue_gain=1.0, quantize=False)
        noise = (sim.raw_dn.double() - 2048.0).reshape(-1)
        var, se = sample_var_with_se(noise)
        assert abs(var - read**2) < Z * se
        kurtosis = float(((noise - noise.mean()) ** 4).mean() / var**2 - 3)
        expected = float(stats.tukeylambda(lam).stats(moments="k"))
        assert expected < -0.5  # flatter than a Gaussian, so the check tells them apart
        assert abs(kurtosis - expected) < Z * math.sqrt(24 / noise.numel())
        # A shape without a finite variance is refused when the profile is made.
        with pytest.raises(InvalidInputError, match="read_noise_lambda"):
            synthetic_profile(noise=(dataclasses.replace(entry, read_noise_lambda=-0.6),))


class TestLevelsGainsAndLight:
    def test_nexus_reproduces_the_paper_noise_model(self):
        for electrons in (2.0, 8.0, 64.0, 1000.0):
            sim = simulate(torch.full((1, 3, 4, 4), 0.5), NEXUS, electrons, noise=False)
            a, sigma = (float(v) for v in sim.noise[0])
            assert a == pytest.approx(1 / electrons, rel=1e-5)
            assert sigma == pytest.approx(NEXUS_READ_E / electrons, rel=1e-5)

    def test_auto_gain(self):
        k1, range_dn = 0.17956316, 1023.0 - 64.0
        assert auto_analogue_gain(NEXUS, 1000.0) == pytest.approx(range_dn / (1000 * k1), rel=1e-9)
        assert auto_analogue_gain(NEXUS, 8.0) == 64.0  # capped at max_analogue_gain
        assert auto_analogue_gain(NEXUS, 1e5) == 1.0  # never below base gain
        sim = simulate(torch.rand(3, 3, 4, 4), NEXUS, torch.tensor([8.0, 1000.0, 1e5]), noise=False)
        assert sim.analogue_gain.tolist() == pytest.approx([64.0, range_dn / (1000 * k1), 1.0], rel=1e-6)
        # 1e5 e- is beyond full scale at base gain: the exposure is cut, so no gain below 1.
        assert sim.digital_gain.tolist() == pytest.approx([range_dn / (8 * 64 * k1), 1.0, 1.0], rel=1e-6)
        range12 = SYNTHETIC.range_dn
        for electrons in (600.0, 1000.0, 3000.0):  # targets inside both table intervals
            gain = auto_analogue_gain(SYNTHETIC, electrons)
            assert 1.0 < gain < 16.0
            assert SYNTHETIC.noise_at(gain).gain_dn_per_e * electrons == pytest.approx(range12, rel=1e-9)

    def test_explicit_gain_and_bad_gains(self):
        sim = simulate(torch.rand(2, 3, 4, 4), SYNTHETIC, 50.0, analogue_gain=torch.tensor([2.0, 8.0]), noise=False)
        for i, gain in enumerate((2.0, 8.0)):
            assert float(sim.analogue_gain[i]) == gain
            d = SYNTHETIC.range_dn / (50.0 * SYNTHETIC.noise_at(gain).gain_dn_per_e)
            assert float(sim.digital_gain[i]) == pytest.approx(d, rel=1e-6)
            assert sim.noise[i].tolist() == pytest.approx(SYNTHETIC.normalized_noise(gain, d), rel=1e-6)
        with pytest.raises(InvalidInputError, match="max_analogue_gain"):
            simulate(torch.rand(1, 3, 4, 4), SYNTHETIC, 50.0, analogue_gain=32.0)
        with pytest.raises(InvalidInputError, match="analogue_gain"):
            simulate(torch.rand(1, 3, 4, 4), SYNTHETIC, 50.0, analogue_gain="max")

    def test_clipping_and_quantization(self):
        bright = simulate(torch.ones(2, 3, 16, 16), NEXUS, 1e5, analogue_gain=1.0, generator=seeded(5))
        assert torch.all(bright.raw_dn == 1023.0)
        assert torch.allclose(bright.packed, bright.digital_gain.view(2, 1, 1, 1).expand_as(bright.packed))
        dark = simulate(torch.zeros(4, 3, 128, 128), NEXUS, 2.0, generator=seeded(6))  # gain 64: read 29 DN
        raw = dark.raw_dn
        assert raw.dtype == torch.float32 and torch.equal(raw, raw.round())
        assert float(raw.min()) == 0.0 and float(raw.max()) <= 1023.0
        read = NEXUS.noise_at(64.0).read_noise_dn
        p_zero = stats.norm.cdf((0.5 - 64.0) / read)
        frac = float((raw == 0).double().mean())
        assert abs(frac - p_zero) < Z * math.sqrt(p_zero * (1 - p_zero) / raw.numel())

    def test_noise_free_raw_is_the_expected_raw(self):
        profile = synthetic_profile(black_level=(240.0, 256.0, 250.0, 256.0))
        srgb = torch.rand(2, 3, 8, 8, dtype=torch.float64)
        sim = simulate(srgb, profile, 300.0, noise=False, quantize=False)
        k = profile.noise_at(float(sim.analogue_gain[0])).gain_dn_per_e
        black = pack(sim.raw_dn, profile.cfa) * 0 + torch.tensor(profile.black_level, dtype=torch.float64).view(4, 1, 1)
        expected = black + k * 300.0 * pack(mosaic(sim.blurred_linear, profile.cfa), profile.cfa).clamp(min=0)
        assert torch.allclose(pack(sim.raw_dn, profile.cfa), expected.clamp(max=4095.0))
        nexus = simulate(srgb, NEXUS, 300.0, noise=False, quantize=False)
        assert torch.allclose(nexus.packed, pack(mosaic(nexus.blurred_linear, NEXUS.cfa), NEXUS.cfa))

    def test_lux(self):
        assert float(electrons_from_lux(NEXUS, 3.0)) == pytest.approx(NEXUS.electrons_at_white(3.0))
        lux = torch.tensor([3.0, 30.0, 300.0])
        electrons = electrons_from_lux(NEXUS, lux)
        assert electrons.tolist() == pytest.approx([NEXUS.electrons_at_white(v) for v in (3.0, 30.0, 300.0)])
        assert 7.5 < float(electrons[0]) < 8.5  # the paper's "3 lux" is about 8 electrons at white
        sim = simulate(torch.rand(3, 3, 4, 4), NEXUS, electrons, noise=False)
        assert sim.electrons_at_white.tolist() == pytest.approx(electrons.tolist())
        with pytest.raises(InvalidInputError, match="lux"):
            electrons_from_lux(NEXUS, torch.tensor([1.0, 0.0]))
        with pytest.raises(ProfileError, match="electrons_at_white_per_lux"):
            electrons_from_lux(synthetic_profile(electrons_at_white_per_lux=None), 3.0)

    def test_sample_light_levels(self):
        levels = sample_light_levels(20000, 2.0, 1000.0, seeded(7))
        assert levels.shape == (20000,) and levels.dtype == torch.float32
        assert float(levels.min()) >= 2.0 and float(levels.max()) <= 1000.0
        logs = levels.double().log()
        span = math.log(1000.0) - math.log(2.0)
        # log-uniform: log level uniform, mean at the middle, SD span / sqrt(12)
        se = span / math.sqrt(12) / math.sqrt(logs.numel())
        assert abs(float(logs.mean()) - (math.log(2.0) + span / 2)) < Z * se
        assert torch.equal(levels, sample_light_levels(20000, 2.0, 1000.0, seeded(7)))
        with pytest.raises(InvalidInputError, match="low"):
            sample_light_levels(4, 10.0, 1.0)


class TestColour:
    def test_srgb_curve(self):
        x = torch.linspace(0, 1, 1001, dtype=torch.float64)
        assert torch.allclose(ct.linear_to_srgb(ct.srgb_to_linear(x)), x, atol=1e-12)
        assert float(ct.srgb_to_linear(torch.tensor(0.5, dtype=torch.float64))) == pytest.approx(0.21404114, abs=1e-7)
        assert float(ct.srgb_to_linear(torch.tensor(0.02))) == pytest.approx(0.02 / 12.92)

    def test_fixed_unprocessing_inverts_the_profile(self):
        matrix, gains = ct.profile_rgb_to_camera(SYNTHETIC, torch.float64)
        assert torch.allclose(
            matrix @ torch.tensor(SYNTHETIC.color_matrix, dtype=torch.float64), torch.eye(3, dtype=torch.float64)
        )
        white = ct.unprocess(torch.ones(1, 3, 2, 2, dtype=torch.float64), matrix, gains)
        assert torch.allclose(white[0, :, 0, 0], 1 / torch.tensor(SYNTHETIC.white_balance, dtype=torch.float64))

    def test_random_unprocessing(self):
        gen = seeded(8)
        sim = simulate(torch.rand(64, 3, 8, 8), SYNTHETIC, 100.0, unprocess="random", generator=gen, noise=False)
        m, wb = sim.rgb_to_camera.double(), sim.white_balance.double()
        assert torch.allclose(m.sum(dim=2), torch.ones(64, 3, dtype=torch.float64), atol=1e-6)
        assert float((m[1:] - m[:1]).abs().max()) > 1e-3  # differs from image to image
        assert torch.all((wb[:, 0] >= 1.9) & (wb[:, 0] <= 2.4) & (wb[:, 2] >= 1.5) & (wb[:, 2] <= 1.9))
        assert torch.all(wb[:, 1] == 1.0)
        expected = ct.unprocess(ct.srgb_to_linear(sim.target_srgb), sim.rgb_to_camera, sim.white_balance)
        assert torch.allclose(sim.target_linear, expected)
        back = ct.process(sim.target_linear.double(), m, wb)
        assert torch.allclose(back, ct.srgb_to_linear(sim.target_srgb.double()), atol=1e-5)
        again = simulate(sim.target_srgb, SYNTHETIC, 100.0, unprocess="random", generator=seeded(8), noise=False)
        assert torch.equal(again.rgb_to_camera, sim.rgb_to_camera)


class TestGradientsAndApi:
    def test_gradcheck_noise_free_path(self):
        blur = gaussian_kernel(0.8, radius=1, dtype=torch.float64)

        def run(srgb):
            return simulate(srgb, SYNTHETIC, 500.0, blur=blur, noise=False, quantize=False).packed

        srgb = (0.3 + 0.4 * torch.rand(1, 3, 4, 4, dtype=torch.float64)).requires_grad_()
        assert torch.autograd.gradcheck(run, (srgb,))

    def test_gradients_reach_the_image_through_the_noise(self):
        srgb = (0.3 + 0.4 * torch.rand(2, 3, 16, 16)).requires_grad_()
        weights = torch.randn(2, 4, 8, 8)
        grads = []
        for noise in (True, False):
            sim = simulate(srgb, NEXUS, 1000.0, blur=gaussian_kernel(1.0), noise=noise, generator=seeded(9))
            (grad,) = torch.autograd.grad((sim.packed * weights).sum(), srgb)
            grads.append(grad)
        assert torch.isfinite(grads[0]).all() and float(grads[0].abs().min()) > 0
        # Straight-through: the gradient is that of the expected raw, noise or not.
        assert torch.allclose(grads[0], grads[1])

    def test_reproducible_with_a_seeded_generator(self):
        srgb = torch.rand(2, 3, 16, 16)
        first = simulate(srgb, SYNTHETIC, 20.0, generator=seeded(10))
        assert torch.equal(first.raw_dn, simulate(srgb, SYNTHETIC, 20.0, generator=seeded(10)).raw_dn)
        assert not torch.equal(first.raw_dn, simulate(srgb, SYNTHETIC, 20.0, generator=seeded(11)).raw_dn)

    def test_shapes_blur_targets_and_module(self):
        srgb = torch.rand(2, 3, 12, 16)
        kernels = torch.stack([gaussian_kernel(1.0, radius=2), torch.eye(5) / 5])
        sim = simulate(srgb, SYNTHETIC, 50.0, blur=kernels, generator=seeded(12))
        assert sim.raw_dn.shape == (2, 12, 16) and sim.packed.shape == (2, 4, 6, 8)
        assert sim.noise.shape == (2, 2) and sim.analogue_gain.shape == (2,) and sim.digital_gain.shape == (2,)
        assert sim.target_linear.shape == sim.blurred_linear.shape == sim.target_srgb.shape == (2, 3, 12, 16)
        assert torch.allclose(sim.blurred_linear, blur_image(sim.target_linear, kernels))
        assert not torch.allclose(sim.blurred_linear, sim.target_linear)
        module = RawSimulator(SYNTHETIC, blur=kernels)
        assert "blur" in dict(module.named_buffers())
        from_module = module(srgb, 50.0, generator=seeded(12))
        assert torch.equal(from_module.raw_dn, sim.raw_dn) and torch.equal(from_module.packed, sim.packed)

    def test_to_frames(self):
        profile = synthetic_profile(black_level=(240.0, 256.0, 250.0, 256.0))
        # Light low enough that the analogue gain caps and a digital gain remains.
        sim = simulate(torch.rand(2, 3, 8, 10), profile, 2.0, generator=seeded(13))
        assert bool((sim.digital_gain > 1.5).all())
        frames = sim.to_frames(profile, exposure_time_s=0.01)
        assert len(frames) == 2
        for i, frame in enumerate(frames):
            assert frame.data.dtype == np.uint16 and frame.data.shape == (8, 10)
            assert np.array_equal(frame.data, sim.raw_dn[i].numpy().astype(np.uint16))
            assert frame.cfa == profile.cfa and frame.sensor == profile.name and frame.exposure_time_s == 0.01
            assert frame.analogue_gain == pytest.approx(float(sim.analogue_gain[i]))
            assert frame.digital_gain == pytest.approx(float(sim.digital_gain[i]))
            model_input = Preprocessor(profile, (10, 8))(frame)  # the runtime's model input, at the frame's size
            np.testing.assert_allclose(model_input.raw[0], sim.packed[i].numpy(), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(model_input.noise[0], sim.noise[i].numpy(), rtol=1e-5)

    @pytest.mark.parametrize(
        ("srgb", "kwargs", "match"),
        [
            (torch.rand(1, 3, 5, 4), {}, "even"),
            (torch.rand(1, 1, 4, 4), {}, r"\(B, 3, H, W\)"),
            (torch.rand(1, 3, 4, 4) * 255, {}, "255"),
            (torch.rand(1, 3, 4, 4), {"unprocess": "brooks"}, "fixed, random"),
            (torch.rand(1, 3, 4, 4), {"blur": torch.ones(3, 3)}, "sum to 1"),
            (torch.rand(2, 3, 4, 4), {"electrons_at_white": torch.tensor([1.0, 2.0, 3.0])}, r"shape \(2,\)"),
            (torch.rand(1, 3, 4, 4), {"electrons_at_white": -1.0}, "positive"),
        ],
    )
    def test_bad_input(self, srgb, kwargs, match):
        kwargs = {"electrons_at_white": 10.0, **kwargs}
        with pytest.raises(InvalidInputError, match=match):
            simulate(srgb, NEXUS, **kwargs)

    @pytest.mark.gpu
    def test_cuda(self):
        if not torch.cuda.is_available():
            pytest.skip("no CUDA device")
        srgb = torch.rand(2, 3, 32, 32, device="cuda")
        gen = torch.Generator(device="cuda").manual_seed(0)
        sim = simulate(srgb, SYNTHETIC, 20.0, blur=gaussian_kernel(1.0), unprocess="random", generator=gen)
        assert sim.raw_dn.device.type == "cuda" and sim.packed.device.type == "cuda"
        assert torch.equal(sim.raw_dn, sim.raw_dn.round())
        with pytest.raises(InvalidInputError, match="generator"):
            simulate(srgb, SYNTHETIC, 20.0, generator=seeded(0))
