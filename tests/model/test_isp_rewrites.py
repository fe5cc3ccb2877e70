"""The ISP's speed rewrites compute what the plain formulas do (issue 17: the learned ISP made
cheaper on the CPU without changing the model), and the unshuffled U-Net (``unet_stride`` 2)
is what its docstring says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edge_isp.errors import InvalidInputError
from edge_isp.isp.colour import srgb_encode
from edge_isp.model.isp import DirtyPixelsISP, IspNetConfig, UNetPrior, srgb_curve
from edge_isp.model.joint import ModelConfig
from edge_isp.model.registry import REGISTRY, create_model
from edge_isp.sensor.anscombe import SQRT_3_2, ZERO_COUNT_D, unbiased_counts

NOISE = torch.tensor([[2e-3, 1e-3], [5e-2, 2e-2]])


def perturbed(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """``module`` with every parameter moved at random (the prior's output layer starts at zero)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return module.eval()


def plain_unet(prior: UNetPrior, x: torch.Tensor, sigma_map: torch.Tensor) -> torch.Tensor:
    """The paper's U-Net as first written: concatenations, upsampling before the 1x1 convs."""
    up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")  # noqa: E731
    e0 = prior.enc0(torch.cat([x, sigma_map], dim=1))
    e1 = prior.enc1(F.avg_pool2d(e0, 2))
    m = prior.mid(F.avg_pool2d(e1, 2))
    d1 = prior.dec1(torch.cat([prior.up1(up(m)), e1], dim=1))
    d0 = prior.dec0(torch.cat([prior.up0(up(d1)), e0], dim=1))
    return prior.out(d0)


def test_srgb_curve_is_the_standard_curve():
    x = torch.cat([torch.linspace(0.0, 1.0, 20001, dtype=torch.float64), torch.linspace(0.003, 0.0033, 3001).double()])
    textbook = torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055)
    got = srgb_curve(x)
    assert (got - textbook).abs().max() < 1e-5  # the two branches meet within 1e-5
    away = (x - 0.0031308).abs() > 1e-4
    torch.testing.assert_close(got[away], textbook[away], rtol=1e-12, atol=1e-12)
    # And the conventional ISP's numpy encoder, written separately, in float32.
    y = np.linspace(0.0, 1.0, 4097, dtype=np.float32)
    np.testing.assert_allclose(srgb_curve(torch.from_numpy(y)).numpy(), srgb_encode(y), atol=2e-6)


def test_horner_inverse_is_the_makitalo_foi_polynomial():
    d = np.linspace(ZERO_COUNT_D, 40.0, 5001)
    for s in (0.0, 0.3, 2.0):
        term_by_term = 0.25 * d**2 + 0.25 * SQRT_3_2 / d - 11 / 8 / d**2 + 5 / 8 * SQRT_3_2 / d**3 - 0.125 - s * s
        np.testing.assert_allclose(unbiased_counts(d, s), term_by_term, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("widths", [(8, 16, 32), (16, 32, 64)])
def test_unet_without_concatenation_is_the_plain_unet(widths):
    prior = perturbed(UNetPrior(widths)).double()  # float64: the sums' order aside, equal
    x, sigma = torch.rand(2, 3, 16, 24, dtype=torch.float64), torch.rand(2, 1, 16, 24, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(prior(x, sigma), plain_unet(prior, x, sigma), rtol=1e-10, atol=1e-10)


def test_checkpoints_keep_their_parameters():
    """The rewrites add no parameter: dpnh_s's ISP has the paper's small U-Net's tensors."""
    isp = create_model("dpnh_s_rec").isp
    shapes = {k: tuple(v.shape) for k, v in isp.state_dict().items()}
    assert shapes["priors.0.enc0.0.weight"] == (8, 4, 3, 3)
    assert shapes["priors.0.dec0.0.weight"] == (8, 16, 3, 3)
    assert shapes["priors.0.out.weight"] == (3, 8, 3, 3)
    assert sum(v.numel() for v in isp.parameters()) == 27953  # as before the rewrites
    old = ModelConfig.from_dict({**REGISTRY["dpnh_s_det"].to_dict(), "isp": {"widths": [8, 16, 32]}})
    assert old.isp.unet_stride == 1  # a config written before the field


def test_stride_two_first_convolution_is_a_3x3_convolution_of_the_unshuffled_input():
    prior = perturbed(UNetPrior((16, 16, 32), stride=2)).double()
    conv = prior.enc0[0]
    assert conv.kernel_size == (6, 6) and conv.stride == (2, 2) and conv.padding == (2, 2)
    x = torch.rand(1, 4, 16, 24, dtype=torch.float64)
    # Tap (2i + a, 2j + b) of the 6x6 kernel is tap (i, j) of input channel 4c + 2a + b after
    # pixel_unshuffle (torch's channel order).
    w = conv.weight.detach()  # (16, 4, 6, 6)
    unshuffled_w = w.view(16, 4, 3, 2, 3, 2).permute(0, 1, 3, 5, 2, 4).reshape(16, 16, 3, 3)
    expected = F.conv2d(F.pixel_unshuffle(x, 2), unshuffled_w, conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("hw", [(16, 16), (5, 7), (12, 20)])
def test_unshuffled_isp_gives_the_picture_size_and_starts_as_the_measurement(hw):
    isp = DirtyPixelsISP(IspNetConfig(widths=(16, 16, 32), unit_range=True, resolution="half", unet_stride=2))
    plain = DirtyPixelsISP(IspNetConfig(widths=(8, 16, 32), unit_range=True, resolution="half"))
    packed = torch.rand(2, 4, *hw)
    with torch.no_grad():
        out = isp.eval()(packed, NOISE)
        # Both priors start at zero: the untrained ISPs give the same picture.
        torch.testing.assert_close(out, plain.eval()(packed, NOISE))
    assert out.shape == (2, 3, *hw)


def test_registered_light_variants_and_bad_stride():
    assert REGISTRY["dpnhu_s_det"].isp.unet_stride == 2 and REGISTRY["dpnhu_s_det"].stem_stride == 1
    assert REGISTRY["dpnhu_xs_det"].isp.widths == (16, 16, 32)
    with pytest.raises(InvalidInputError, match="unet_stride"):
        IspNetConfig(unet_stride=3)
    # 39,722 and 113,082 parameters against dpnh_s's 27,953 (a 6x6 first kernel, 12 outputs).
    assert sum(p.numel() for p in create_model("dpnhu_xs_rec").isp.parameters()) == 39722
