"""The conventional ISP end to end: config validation, RawFrame rendering, colour stages."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edge_isp.errors import InvalidInputError
from edge_isp.isp import IspConfig, available_demosaic_methods, render, render_mosaic, to_uint8
from edge_isp.isp.colour import apply_tone, grey_world_gains, s_curve, srgb_decode, srgb_encode
from edge_isp.sensor.cfa import CFA, mosaic, unpack
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile

# A 12-bit frame with a different black level per plane (R, Gr, Gb, B) and white 4064,
# lit so that the normalized planes read R 1/8, G 1/4, B 1/5: a grey surface under a
# light that white balance (2, 1, 1.25) makes neutral at 1/4.
BLACK = (256.0, 240.0, 272.0, 224.0)
WHITE = 4064.0
PLANE_DN = (256 + 3808 // 8, 240 + 3824 // 4, 272 + 3792 // 4, 224 + 3840 // 5)
GAINS = (2.0, 1.0, 1.25)
# sRGB of linear 1/4, from the standard curve's upper branch.
SRGB_QUARTER = 1.055 * 0.25 ** (1 / 2.4) - 0.055


def _flat_frame(cfa: CFA = CFA.GBRG, analogue_gain: float = 1.0) -> RawFrame:
    planes = np.array(PLANE_DN, np.uint16)[:, None, None] * np.ones((4, 6, 8), np.uint16)
    return RawFrame(
        data=unpack(planes, cfa),
        cfa=cfa,
        bit_depth=12,
        black_level=BLACK,
        white_level=WHITE,
        analogue_gain=analogue_gain,
    )


def _tolerance(method: str) -> float:
    return 0.005 if method == "vng" else 1e-4  # VNG runs on 8 bits


class TestIspConfig:
    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"demosaic": "ahd"}, "bilinear, malvar, ea, vng"),
            ({"denoise": "median"}, "none, nlm, bm3d"),
            ({"tone": "gamma"}, "srgb, srgb-scurve, linear"),
            ({"white_balance": (2.0, 1.0)}, "3 positive"),
            ({"white_balance": (2.0, 0.0, 1.0)}, "3 positive"),
            ({"color_matrix": [[1, 0, 0], [0, 1, 0], [1, 0, 0]]}, "invertible"),
            ({"color_matrix": [[1, 0], [0, 1]]}, "3x3"),
            ({"noise": (-0.01, 0.01)}, "noise"),
            ({"noise": (0.0, 0.0)}, "not both 0"),
            ({"noise": 0.01}, "pair"),
            ({"digital_gain": 0.0}, "digital_gain"),
            ({"digital_gain": float("nan")}, "digital_gain"),
            ({"digital_gain": True}, "digital_gain"),
        ],
    )
    def test_bad_values_raise(self, kwargs, match):
        with pytest.raises(InvalidInputError, match=match):
            IspConfig(**kwargs)

    def test_frozen_and_normalized(self):
        config = IspConfig(white_balance=[2, 1, 1.5], color_matrix=np.eye(3), noise=[0.01, 0.02], digital_gain=2)
        assert config.white_balance == (2.0, 1.0, 1.5)
        assert config.color_matrix == ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
        assert config.noise == (0.01, 0.02) and config.digital_gain == 2.0
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.demosaic = "bilinear"

    def test_dict_round_trip(self):
        config = IspConfig(demosaic="ea", denoise="nlm", white_balance=(2, 1, 1.5), noise=(0.01, 0.02), tone="linear")
        assert IspConfig.from_dict(config.to_dict()) == config

    def test_unknown_key_refused(self):
        with pytest.raises(InvalidInputError, match="gamma"):
            IspConfig.from_dict({"gamma": 2.2})


class TestRenderFlatFrame:
    @pytest.mark.parametrize("method", available_demosaic_methods())
    @pytest.mark.parametrize("cfa", list(CFA))
    def test_black_level_and_white_balance(self, method, cfa):
        out = render(_flat_frame(cfa), IspConfig(demosaic=method, white_balance=GAINS))
        assert out.shape == (12, 16, 3) and out.dtype == np.float32
        np.testing.assert_allclose(out, SRGB_QUARTER, atol=_tolerance(method))

    def test_white_balance_from_profile(self):
        profile = dataclasses.replace(SensorProfile.load("nexus6p-rear"), white_balance=GAINS)
        out = render(_flat_frame(), IspConfig(), profile)
        np.testing.assert_allclose(out, SRGB_QUARTER, atol=1e-4)

    def test_config_overrides_profile(self):
        profile = dataclasses.replace(SensorProfile.load("nexus6p-rear"), white_balance=(1.0, 1.0, 1.0))
        out = render(_flat_frame(), IspConfig(white_balance=GAINS), profile)
        np.testing.assert_allclose(out, SRGB_QUARTER, atol=1e-4)

    def test_grey_world_without_config_or_profile(self):
        frame = _flat_frame()
        np.testing.assert_allclose(grey_world_gains(frame.normalized(), frame.cfa), GAINS, rtol=1e-5)
        np.testing.assert_allclose(render(frame, IspConfig()), SRGB_QUARTER, atol=1e-4)

    def test_digital_gain(self):
        out = render(_flat_frame(), IspConfig(white_balance=GAINS, digital_gain=2.0))
        np.testing.assert_allclose(out, 1.055 * 0.5 ** (1 / 2.4) - 0.055, atol=1e-4)

    def test_color_matrix(self):
        swap_red_blue = [[0, 0, 1], [0, 1, 0], [1, 0, 0]]
        config = IspConfig(white_balance=(1, 1, 1), color_matrix=swap_red_blue, tone="linear")
        out = render(_flat_frame(), config)
        np.testing.assert_allclose(out[5, 7], [1 / 5, 1 / 4, 1 / 8], atol=1e-5)

    def test_profile_color_matrix_used(self):
        matrix = ((1.5, -0.25, -0.25), (-0.25, 1.5, -0.25), (-0.25, -0.25, 1.5))
        profile = dataclasses.replace(SensorProfile.load("nexus6p-rear"), color_matrix=matrix)
        out = render(_flat_frame(), IspConfig(white_balance=(1, 1, 1), tone="linear"), profile)
        expected = np.array(matrix) @ [1 / 8, 1 / 4, 1 / 5]
        np.testing.assert_allclose(out[5, 7], expected, atol=1e-5)


class TestDenoiseInPipeline:
    def _noisy_frame(self, profile: SensorProfile, gain: float) -> RawFrame:
        a, sigma = profile.normalized_noise(gain)
        rng = np.random.default_rng(0)
        clean = np.full((32, 32), 0.2)
        noisy = a * rng.poisson(clean / a) + rng.normal(0, sigma, clean.shape)
        black, span = profile.black_level[0], profile.white_level - profile.black_level[0]
        data = np.clip(np.rint(black + noisy * span), 0, profile.white_level).astype(np.uint16)
        return RawFrame(data, profile.cfa, profile.bit_depth, profile.black_level, profile.white_level, gain)

    def test_noise_from_profile(self):
        profile = SensorProfile.load("nexus6p-rear")
        frame = self._noisy_frame(profile, gain=64.0)
        plain = render(frame, IspConfig(tone="linear"), profile)
        smooth = render(frame, IspConfig(denoise="nlm", tone="linear"), profile)
        assert np.std(plain) > 5 * np.std(smooth)
        assert abs(float(smooth.mean()) - 0.2) < 0.01

    def test_denoise_needs_noise(self):
        with pytest.raises(InvalidInputError, match=r"IspConfig.noise"):
            render(_flat_frame(), IspConfig(denoise="nlm"))

    def test_render_mosaic_matches_render(self):
        profile = SensorProfile.load("nexus6p-rear")
        frame = self._noisy_frame(profile, gain=16.0)
        a, sigma = profile.normalized_noise(16.0)
        config = IspConfig(denoise="nlm", noise=(a, sigma), white_balance=(1.2, 1, 1.1))
        np.testing.assert_allclose(render_mosaic(frame.normalized(), frame.cfa, config), render(frame, config))


def test_natural_image_round_trip():
    # A noise-free mosaic of linear light back through the ISP to sRGB. Measured 32.1 dB
    # (chelsea, 160x106, malvar, BGGR, border 4 excluded; 31.9..32.2 over the four CFAs);
    # the demosaicking tests hold the per-method bounds.
    data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) holds the natural images")
    srgb = cv2.resize(data.chelsea(), (160, 106), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    raw = mosaic(np.moveaxis(srgb_decode(srgb), -1, 0), CFA.BGGR)
    out = render_mosaic(raw, "bggr", IspConfig(white_balance=(1, 1, 1)))
    mse = np.mean((out - srgb)[4:-4, 4:-4] ** 2)
    assert 10 * np.log10(1 / mse) > 31.0


class TestColourStages:
    def test_srgb_curve_known_points(self):
        x = np.array([0.0, 0.0031308, 0.5, 1.0], np.float32)
        np.testing.assert_allclose(srgb_encode(x), [0.0, 0.04045, 0.735357, 1.0], atol=2e-5)
        ramp = np.linspace(0, 1, 257, dtype=np.float32)
        np.testing.assert_allclose(srgb_decode(srgb_encode(ramp)), ramp, atol=1e-5)

    def test_tone_curves(self):
        assert np.allclose(s_curve(np.array([0.0, 0.5, 1.0])), [0.0, 0.5, 1.0])
        x = np.array([-0.5, 0.05, 0.18, 2.0], np.float32)
        np.testing.assert_allclose(apply_tone(x, "linear"), [0.0, 0.05, 0.18, 1.0])
        np.testing.assert_allclose(apply_tone(x, "srgb-scurve"), s_curve(srgb_encode(x)))
        with pytest.raises(InvalidInputError, match="srgb, srgb-scurve, linear"):
            apply_tone(x, "aces")

    def test_to_uint8(self):
        out = to_uint8(np.array([-0.1, 0.0, 0.2, 1.0, 1.3]))
        assert out.dtype == np.uint8 and out.tolist() == [0, 0, 51, 255, 255]

    def test_grey_world_keeps_dark_channel_at_one(self):
        m = mosaic(np.stack([np.zeros((4, 4)), np.full((4, 4), 0.3), np.full((4, 4), 0.1)]), CFA.RGGB)
        assert grey_world_gains(m, CFA.RGGB) == pytest.approx((1.0, 1.0, 3.0))


def test_runs_without_torch():
    # The board has no torch: importing and running the ISP must not pull it in.
    code = (
        "import sys, numpy as np\n"
        "from edge_isp.isp import IspConfig, render_mosaic\n"
        "render_mosaic(np.full((8, 8), 0.2, np.float32), 'RGGB', IspConfig(denoise='nlm', noise=(1e-3, 1e-3)))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
