"""Demosaicking: hand-checked bilinear, natural-image PSNR, OpenCV colour order, borders."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_isp.errors import InvalidInputError
from edge_isp.isp.demosaic import DEMOSAIC_METHODS, available_demosaic_methods, demosaic
from edge_isp.sensor.cfa import CFA, mosaic

METHODS = available_demosaic_methods()
OPENCV_METHODS = [m for m in ("ea", "vng") if m in METHODS]
# Pixels left out of each side in PSNR: the mirror at the border is a guess about the
# scene outside, not part of what the methods are judged on.
BORDER = 4

# Measured on these images (longest side 160 px, float RGB, border 4 excluded), all four
# CFAs within 0.4 dB of each other:
#   astronaut: bilinear 26.1, malvar 30.1, ea 26.2, vng 30.6
#   chelsea:   bilinear 32.4, malvar 36.5, ea 32.3, vng 36.8
#   coffee:    bilinear 28.5, malvar 30.8, ea 28.5, vng 32.5
# Bounds are 1 dB under the lowest; a wrong CFA phase or a red/blue swap costs > 8 dB.
PSNR_FLOOR_DB = {
    "astronaut": {"bilinear": 25.0, "malvar": 29.0, "ea": 25.2, "vng": 29.6},
    "chelsea": {"bilinear": 31.3, "malvar": 35.4, "ea": 31.3, "vng": 35.7},
    "coffee": {"bilinear": 27.4, "malvar": 29.8, "ea": 27.5, "vng": 31.5},
}
# Malvar's gradient correction gains 2.3..4.1 dB over bilinear on these images.
MALVAR_GAIN_DB = 1.5


def _psnr(a: np.ndarray, b: np.ndarray, border: int = BORDER) -> float:
    a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) holds the natural images")
    out = {}
    for name in PSNR_FLOOR_DB:
        img = getattr(data, name)()
        h, w = img.shape[:2]
        scale = 160 / max(h, w)
        size = (int(w * scale) // 2 * 2, int(h * scale) // 2 * 2)
        out[name] = cv2.resize(img, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return out


def _mosaic(rgb_hwc: np.ndarray, cfa: CFA) -> np.ndarray:
    return mosaic(np.moveaxis(rgb_hwc, -1, 0), cfa)


class TestBilinear:
    def test_hand_checked_rggb(self):
        # R G R G / G B G B / R G R G / G B G B with distinct values; the mirror at the
        # border repeats the neighbour across the edge (reflect-101).
        m = np.arange(1, 17, dtype=np.float32).reshape(4, 4) ** 2
        out = demosaic(m, CFA.RGGB, "bilinear")
        # (0, 0), a red site: G from (0,1)=4, (1,0)=25 each twice; B from (1,1)=36 four times.
        np.testing.assert_allclose(out[0, 0], [1, (4 + 25 + 4 + 25) / 4, 36], rtol=1e-6)
        # (1, 1), a blue site: R from its diagonals 1, 9, 81, 121; G from 4, 100, 25, 49.
        np.testing.assert_allclose(out[1, 1], [(1 + 9 + 81 + 121) / 4, (4 + 100 + 25 + 49) / 4, 36], rtol=1e-6)
        # (1, 2), green on a blue row: R above/below (9, 121), B left/right (36, 64).
        np.testing.assert_allclose(out[1, 2], [(9 + 121) / 2, 49, (36 + 64) / 2], rtol=1e-6)
        # (0, 3), green on a red row at the right edge: R from (0,2)=9 twice, B from (1,3)=64 twice.
        np.testing.assert_allclose(out[0, 3], [9, 16, 64], rtol=1e-6)

    def test_output_layout(self):
        out = demosaic(np.zeros((6, 8), np.float32), "rggb", "bilinear")
        assert out.shape == (6, 8, 3) and out.dtype == np.float32


@pytest.mark.parametrize("cfa", list(CFA))
@pytest.mark.parametrize("method", ["bilinear", "malvar"])
def test_measured_samples_kept(method, cfa, images):
    rgb = images["chelsea"]
    m = _mosaic(rgb, cfa)
    out = demosaic(m, cfa, method)
    assert np.allclose(mosaic(np.moveaxis(out, -1, 0), cfa), m, atol=1e-6)


@pytest.mark.parametrize("cfa", list(CFA))
@pytest.mark.parametrize("name", list(PSNR_FLOOR_DB))
def test_natural_image_psnr(name, cfa, images):
    rgb = images[name]
    m = _mosaic(rgb, cfa)
    psnr = {method: _psnr(demosaic(m, cfa, method), rgb) for method in METHODS}
    for method, value in psnr.items():
        assert value > PSNR_FLOOR_DB[name][method], f"{method} on {name} ({cfa.value}): {value:.2f} dB"
    assert psnr["malvar"] > psnr["bilinear"] + MALVAR_GAIN_DB


@pytest.mark.parametrize("cfa", list(CFA))
def test_agrees_with_colour_demosaicing(cfa, images):
    # An independent implementation of the same two filters; theirs mirrors the border
    # with the edge repeated (scipy's "reflect"), which breaks the CFA phase, so compare
    # two pixels in from the edge.
    cd = pytest.importorskip("colour_demosaicing", reason="colour-demosaicing (bench extra) is the reference")
    rgb = images["astronaut"]
    m = _mosaic(rgb, cfa)
    theirs = {
        "bilinear": cd.demosaicing_CFA_Bayer_bilinear(m.astype(np.float64), cfa.value),
        "malvar": cd.demosaicing_CFA_Bayer_Malvar2004(m.astype(np.float64), cfa.value),
    }
    for method, ref in theirs.items():
        diff = np.abs(demosaic(m, cfa, method) - ref)[2:-2, 2:-2]
        assert diff.max() < 1e-5, method


@pytest.mark.parametrize("cfa", list(CFA))
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("colour", [0, 1, 2])
def test_pure_colour_comes_out_that_colour(method, cfa, colour):
    # Catches OpenCV's Bayer code naming (second row/column) and RGB/BGR order, and, on
    # the outer pixels, a border mirror that breaks the CFA phase.
    rgb = np.zeros((16, 18, 3), np.float32)
    rgb[..., colour] = 0.8
    out = demosaic(_mosaic(rgb, cfa), cfa, method)
    expected = np.zeros(3)
    expected[colour] = 0.8
    tol = 2.5 / 255 if method == "vng" else 1e-3
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), atol=tol)


@pytest.mark.parametrize("cfa", list(CFA))
@pytest.mark.parametrize("method", METHODS)
def test_flat_grey_stays_flat_to_the_border(method, cfa):
    # Zero padding or a phase-breaking mirror would darken or tint the outer pixels.
    m = np.full((10, 12), 0.37, np.float32)
    out = demosaic(m, cfa, method)
    tol = 1 / 255 if method == "vng" else 1e-4
    np.testing.assert_allclose(out, 0.37, atol=tol)


@pytest.mark.parametrize("method", OPENCV_METHODS)
def test_opencv_methods_keep_values_outside_unit_range(method):
    # Noise below black must keep its sign through the integer round trip.
    m = np.full((12, 12), -0.02, np.float32)
    m[:, 6:] = 1.2
    out = demosaic(m, CFA.GRBG, method)
    tol = 1.3 * 1.22 / 255 if method == "vng" else 1e-4
    np.testing.assert_allclose(out[:, :3], -0.02, atol=tol)
    np.testing.assert_allclose(out[:, 9:], 1.2, atol=tol)


class TestBadInput:
    def test_unknown_method_lists_choices(self):
        with pytest.raises(InvalidInputError, match="bilinear, malvar, ea, vng"):
            demosaic(np.zeros((4, 4), np.float32), CFA.RGGB, "ahd")

    @pytest.mark.parametrize("method", DEMOSAIC_METHODS)
    def test_odd_size_refused(self, method):
        if method not in METHODS:
            pytest.skip(f"{method} unavailable in this OpenCV")
        with pytest.raises(InvalidInputError, match="even"):
            demosaic(np.zeros((5, 4), np.float32), CFA.RGGB, method)

    def test_not_2d(self):
        with pytest.raises(InvalidInputError, match=r"2-D.*\(4, 4, 3\)"):
            demosaic(np.zeros((4, 4, 3), np.float32), CFA.RGGB)

    def test_non_finite(self):
        m = np.zeros((4, 4), np.float32)
        m[1, 1] = np.nan
        with pytest.raises(InvalidInputError, match="finite"):
            demosaic(m, CFA.RGGB)

    def test_unknown_cfa(self):
        with pytest.raises(InvalidInputError, match="RGGB"):
            demosaic(np.zeros((4, 4), np.float32), "RGBW")
