"""The Dirty Pixels ISP: Anscombe pair, data-consistency step, U-Net prior, colour/tone."""

from __future__ import annotations

import math

import pytest
import torch

from edge_isp.errors import InvalidInputError
from edge_isp.model.anscombe import (
    Anscombe,
    InverseAnscombe,
    anscombe,
    anscombe_span,
    inverse_anscombe,
    noise_std_map,
)
from edge_isp.model.isp import (
    ColourTone,
    DirtyPixelsISP,
    IspNetConfig,
    UNetPrior,
    bilinear_fill,
    packed_to_colour_planes,
)
from edge_isp.sensor.cfa import CFA, colour_mask, pack

NOISE = torch.tensor([[1 / 8, 2.5 / 8], [1e-3, 5e-4]], dtype=torch.float64)


class TestAnscombe:
    def test_algebraic_inverse_is_exact(self):
        y = torch.rand(2, 4, 6, 6, dtype=torch.float64)
        back = inverse_anscombe(anscombe(y, NOISE), NOISE, unbiased=False)
        torch.testing.assert_close(back, y, rtol=0, atol=1e-12)

    def test_stabilizes_variance_to_a_over_2(self):
        # Poisson-Gaussian samples at three levels: after the transform the std is ~a/2 at each.
        gen = torch.Generator().manual_seed(0)
        electrons, read_e = 20.0, 2.0
        a, sigma = 1 / electrons, read_e / electrons
        noise = torch.tensor([[a, sigma]], dtype=torch.float64)
        for level in (0.2, 0.5, 1.0):
            counts = torch.poisson(torch.full((1, 1, 1, 200_000), level * electrons, dtype=torch.float64), gen)
            y = (counts + read_e * torch.randn(counts.shape, generator=gen, dtype=torch.float64)) / electrons
            std = anscombe(y, noise).std().item()
            assert std == pytest.approx(a / 2, rel=0.04)

    def test_unbiased_inverse_removes_low_count_bias(self):
        gen = torch.Generator().manual_seed(1)
        electrons = 4.0
        noise = torch.tensor([[1 / electrons, 0.0]], dtype=torch.float64)
        counts = torch.poisson(torch.full((1, 1, 1, 400_000), 0.5 * electrons, dtype=torch.float64), gen)
        mean_t = anscombe(counts / electrons, noise).mean().reshape(1, 1, 1, 1)
        unbiased = inverse_anscombe(mean_t, noise).item()
        algebraic = inverse_anscombe(mean_t, noise, unbiased=False).item()
        assert unbiased == pytest.approx(0.5, abs=0.01)
        assert abs(algebraic - 0.5) > 5 * abs(unbiased - 0.5)

    def test_gradcheck(self):
        y = (torch.rand(2, 1, 3, 3, dtype=torch.float64) + 0.1).requires_grad_()
        assert torch.autograd.gradcheck(lambda v: anscombe(v, NOISE), (y,))
        t = anscombe(y.detach(), NOISE).requires_grad_()
        assert torch.autograd.gradcheck(lambda v: inverse_anscombe(v, NOISE), (t,))

    def test_modules_equal_functions_and_disable(self):
        y = torch.rand(2, 4, 4, 4, dtype=torch.float64)
        torch.testing.assert_close(Anscombe()(y, NOISE), anscombe(y, NOISE))
        assert Anscombe(enabled=False)(y, NOISE) is y
        t = anscombe(y, NOISE)
        torch.testing.assert_close(InverseAnscombe()(t, NOISE), inverse_anscombe(t, NOISE))
        assert InverseAnscombe(enabled=False)(t, NOISE) is t

    def test_noise_std_map(self):
        m = noise_std_map(NOISE, torch.zeros(2, 3, 5, 7))
        assert m.shape == (2, 1, 5, 7)
        assert m[0].unique().item() == pytest.approx(1 / 16) and m[1].unique().item() == pytest.approx(5e-4)

    @pytest.mark.parametrize("bad", [torch.zeros(2, 3), torch.zeros(3, 2), torch.zeros(2)])
    def test_bad_noise_shape(self, bad):
        with pytest.raises(InvalidInputError, match=r"\(B, 2\)"):
            anscombe(torch.zeros(2, 4, 2, 2), bad)


class TestColourPlanes:
    def test_matches_cfa_mosaic_and_mask(self):
        # The packed planes are in R, Gr, Gb, B order: spreading them must equal an RGGB mosaic.
        rgb = torch.rand(1, 3, 8, 6, dtype=torch.float64)
        from edge_isp.sensor.cfa import mosaic

        packed = pack(mosaic(rgb, CFA.RGGB), CFA.RGGB)
        masked, mask = packed_to_colour_planes(packed)
        expected_mask = torch.from_numpy(colour_mask(CFA.RGGB, 8, 6)).double()
        torch.testing.assert_close(mask[0], expected_mask)
        torch.testing.assert_close(masked, rgb * expected_mask)

    def test_bilinear_fill_keeps_a_flat_colour(self):
        packed = torch.tensor([0.2, 0.5, 0.5, 0.8]).view(1, 4, 1, 1).expand(1, 4, 4, 4).contiguous()
        filled = bilinear_fill(*packed_to_colour_planes(packed))
        torch.testing.assert_close(filled[0, :, 2:6, 2:6].mean(dim=(1, 2)), torch.tensor([0.2, 0.5, 0.8]))

    def test_bad_shape(self):
        with pytest.raises(InvalidInputError, match=r"\(B, 4, h, w\)"):
            packed_to_colour_planes(torch.zeros(1, 3, 4, 4))


class TestDirtyPixelsISP:
    def test_data_step_keeps_measured_pixels_when_beta_is_small(self):
        isp = DirtyPixelsISP()
        with torch.no_grad():
            isp.log_beta.fill_(math.log(1e-6))
        y, mask = packed_to_colour_planes(torch.rand(1, 4, 4, 4))
        x, z = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
        out = isp.data_step(x, z, y, mask, 0)
        measured = mask.bool()
        torch.testing.assert_close(out[measured], y[measured], rtol=0, atol=1e-5)
        # Where nothing was measured the prior's estimate x - z is all there is.
        torch.testing.assert_close(out[~measured], (x - z)[~measured])

    def test_untrained_prior_is_identity(self):
        prior = UNetPrior((4, 8, 16))
        x = torch.rand(2, 3, 16, 16)
        assert torch.count_nonzero(prior(x, torch.zeros(2, 1, 16, 16))) == 0

    def test_colour_tone_starts_as_srgb(self):
        linear = torch.tensor([0.0, 0.001, 0.18, 1.0]).view(1, 1, 1, 4).expand(1, 3, 1, 4)
        out = ColourTone()(linear)
        expected = torch.tensor([0.0, 0.01292, 0.46135, 1.0])
        torch.testing.assert_close(out[0, 0, 0], expected, rtol=0, atol=1e-4)

    def test_untrained_isp_reconstructs_a_noise_free_flat_field(self):
        # Identity prior + bilinear fill + exact inverse Anscombe + sRGB: a flat grey comes back.
        isp = DirtyPixelsISP(IspNetConfig(unbiased_inverse=False)).double()
        packed = torch.full((1, 4, 8, 8), 0.18, dtype=torch.float64)
        out = isp(packed, torch.tensor([[1e-4, 1e-4]], dtype=torch.float64))
        torch.testing.assert_close(out, torch.full_like(out, 0.46135), rtol=0, atol=1e-3)

    @pytest.mark.parametrize("size", [(8, 8), (6, 10), (5, 7)])
    def test_any_packed_size(self, size):
        out = DirtyPixelsISP()(torch.rand(1, 4, *size), torch.tensor([[0.01, 0.01]]))
        assert out.shape == (1, 3, 2 * size[0], 2 * size[1])

    @pytest.mark.parametrize("unit_range", [False, True])
    def test_untrained_isp_reconstructs_a_flat_field_at_night_and_in_daylight(self, unit_range):
        # The rescaling to [0, 1] is undone before the inverse, so an identity prior still
        # returns the input; at 3 lux and at 10,000 lux (Nexus 6P noise levels).
        isp = DirtyPixelsISP(IspNetConfig(unbiased_inverse=False, unit_range=unit_range)).double()
        packed = torch.full((2, 4, 8, 8), 0.18, dtype=torch.float64)
        noise = torch.tensor([[0.125, 0.316], [3.74e-5, 9.47e-5]], dtype=torch.float64)
        out = isp(packed, noise)
        torch.testing.assert_close(out, torch.full_like(out, 0.46135), rtol=0, atol=1e-3)

    def test_unit_range_puts_black_at_0_and_white_at_1_at_every_level(self):
        noise = torch.tensor([[0.25, 0.47], [0.125, 0.316], [3.74e-5, 9.47e-5]], dtype=torch.float64)
        ends = torch.tensor([0.0, 1.0], dtype=torch.float64).view(1, 1, 1, 2).expand(3, 1, 1, 2)
        low, span = anscombe_span(noise, ends)
        torch.testing.assert_close((anscombe(ends, noise) - low) / span, ends)
        # Written out for 3 lux: A(y) = sqrt(a y + 3/8 a^2 + sigma^2).
        a, s = 0.125, 0.316
        assert float(low[1]) == pytest.approx(math.sqrt(0.375 * a * a + s * s))
        assert float(span[1]) == pytest.approx(math.sqrt(a + 0.375 * a * a + s * s) - math.sqrt(0.375 * a * a + s * s))
        # Without it, white after the transform is 0.38 at 3 lux but 0.006 in daylight.
        white = anscombe(ends, noise)[:, 0, 0, 1]
        assert float(white[1]) > 50 * float(white[2])

    def test_unit_range_needs_the_anscombe_transform(self):
        with pytest.raises(InvalidInputError, match="unit_range"):
            IspNetConfig(anscombe=False, unit_range=True)

    @pytest.mark.parametrize(("kwargs", "match"), [({"widths": (8, 16)}, "widths"), ({"iterations": 0}, "iterations")])
    def test_bad_config(self, kwargs, match):
        with pytest.raises(InvalidInputError, match=match):
            IspNetConfig(**kwargs)

    def test_iterations_are_separate_priors(self):
        isp = DirtyPixelsISP(IspNetConfig(iterations=3))
        assert len(isp.priors) == 3 and isp.log_lambda.shape == (3,)
