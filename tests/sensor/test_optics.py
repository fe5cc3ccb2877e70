"""Blur kernels, the blur spec parser and blur_image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.sensor.optics import (
    BLUR_FORMS,
    blur_image,
    disk_kernel,
    gaussian_kernel,
    load_psf,
    motion_kernel,
    parse_blur,
    psf_kernel,
)


def moments(kernel: torch.Tensor) -> tuple[float, float, float, float, float]:
    """Mean x, mean y, var x, var y, cov xy of a kernel, x to the right and y upwards."""
    k = kernel.double()
    h, w = k.shape
    y = -(torch.arange(h, dtype=torch.float64) - h // 2)[:, None].expand(h, w)
    x = (torch.arange(w, dtype=torch.float64) - w // 2)[None, :].expand(h, w)
    mx, my = float((k * x).sum()), float((k * y).sum())
    vx, vy = float((k * (x - mx) ** 2).sum()), float((k * (y - my) ** 2).sum())
    cxy = float((k * (x - mx) * (y - my)).sum())
    return mx, my, vx, vy, cxy


class TestGaussian:
    @pytest.mark.parametrize("sigma", [1.0, 1.5, 3.0])
    def test_analytic_moments(self, sigma):
        k = gaussian_kernel(sigma, dtype=torch.float64)
        size = 2 * math.ceil(4 * sigma) + 1
        assert k.shape == (size, size)
        assert float(k.sum()) == pytest.approx(1.0, abs=1e-12)
        mx, my, vx, vy, cxy = moments(k)
        assert abs(mx) < 1e-12 and abs(my) < 1e-12 and abs(cxy) < 1e-12
        assert vx == pytest.approx(sigma**2, rel=1e-3)
        assert vy == pytest.approx(sigma**2, rel=1e-3)
        assert torch.equal(k, k.T) and torch.equal(k, k.flip(0))

    def test_zero_sigma_is_identity_and_negative_is_refused(self):
        assert torch.equal(gaussian_kernel(0.0), torch.ones(1, 1))
        with pytest.raises(InvalidInputError, match="sigma"):
            gaussian_kernel(-1.0)
        with pytest.raises(InvalidInputError, match="sigma"):
            gaussian_kernel(float("nan"))

    def test_dtype_and_explicit_radius(self):
        k = gaussian_kernel(2.0, radius=3)
        assert k.dtype == torch.float32 and k.shape == (7, 7)
        assert float(k.sum()) == pytest.approx(1.0, abs=1e-6)


class TestDisk:
    @pytest.mark.parametrize("radius", [2.0, 4.0, 5.5])
    def test_shape_symmetry_area(self, radius):
        k = disk_kernel(radius, dtype=torch.float64)
        size = 2 * math.ceil(radius) + 1
        assert k.shape == (size, size)
        assert float(k.sum()) == pytest.approx(1.0, abs=1e-12)
        assert torch.allclose(k, k.flip(0)) and torch.allclose(k, k.flip(1)) and torch.allclose(k, k.T)
        # A pixel fully inside the disk holds 1 / (area of the disk) of the light.
        assert float(k[size // 2, size // 2]) == pytest.approx(1 / (math.pi * radius**2), rel=0.02)
        # Pixel coverage is the disk convolved with the pixel's box, sampled: the variance
        # is the disk's r^2 / 4 plus the box's 1/12, up to grid effects of a few hundredths.
        _, _, vx, vy, _ = moments(k)
        assert vx == pytest.approx(radius**2 / 4 + 1 / 12, abs=0.05)
        assert vy == pytest.approx(vx, rel=1e-9)

    def test_nothing_outside_the_radius(self):
        r = 3.0
        k = disk_kernel(r, dtype=torch.float64)
        c = k.shape[0] // 2
        yy, xx = torch.meshgrid(torch.arange(k.shape[0]) - c, torch.arange(k.shape[1]) - c, indexing="ij")
        nearest = ((xx.abs() - 0.5).clamp(min=0) ** 2 + (yy.abs() - 0.5).clamp(min=0) ** 2).sqrt()
        assert float(k[nearest > r].abs().sum()) == 0.0

    def test_zero_radius_is_identity(self):
        assert torch.equal(disk_kernel(0), torch.ones(1, 1))


class TestMotion:
    def test_horizontal_streak(self):
        length = 9.0
        k = motion_kernel(length, 0.0, dtype=torch.float64)
        c = k.shape[0] // 2
        assert float(k.sum()) == pytest.approx(1.0, abs=1e-12)
        assert float(k[c].sum()) == pytest.approx(1.0, abs=1e-12)
        mx, my, vx, vy, _ = moments(k)
        assert abs(mx) < 1e-9 and abs(my) < 1e-9 and vy < 1e-12
        # Uniform segment (L^2 / 12) spread by bilinear weights (1/6 on average).
        assert vx == pytest.approx(length**2 / 12 + 1 / 6, rel=0.02)

    @pytest.mark.parametrize("angle", [30.0, 90.0, 135.0])
    def test_direction_follows_the_angle(self, angle):
        k = motion_kernel(11.0, angle, dtype=torch.float64)
        _, _, vx, vy, cxy = moments(k)
        principal = math.degrees(0.5 * math.atan2(2 * cxy, vx - vy)) % 180
        assert principal == pytest.approx(angle % 180, abs=1.0)
        assert vx + vy == pytest.approx(11.0**2 / 12, rel=0.05)

    def test_zero_length_is_identity(self):
        assert torch.equal(motion_kernel(0, 45), torch.ones(1, 1))


class TestPsfAndParse:
    def test_psf_normalized_and_checked(self, tmp_path):
        raw = np.array([[0.0, 1.0, 0.0], [1.0, 4.0, 2.0], [0.0, 1.0, 0.0]])
        k = psf_kernel(raw, dtype=torch.float64)
        assert float(k.sum()) == pytest.approx(1.0) and float(k[1, 1]) == pytest.approx(4 / 9)
        for bad, what in ((np.ones(3), "2-D"), (-raw, ">= 0"), (np.zeros((3, 3)), "positive sum")):
            with pytest.raises(InvalidInputError, match=what):
                psf_kernel(bad)
        with pytest.raises(InvalidInputError, match="finite"):
            psf_kernel(np.full((3, 3), np.nan))
        path = tmp_path / "psf.npy"
        np.save(path, raw)
        assert torch.allclose(load_psf(path, dtype=torch.float64), k)
        assert torch.allclose(parse_blur(f"psf:{path}", dtype=torch.float64), k)
        with pytest.raises(MissingFileError, match="does not exist"):
            load_psf(tmp_path / "missing.npy")

    def test_specs_build_the_same_kernels(self):
        assert torch.equal(parse_blur("gaussian:1.5"), gaussian_kernel(1.5))
        assert torch.equal(parse_blur("disk:2"), disk_kernel(2))
        assert torch.equal(parse_blur("motion:7:30"), motion_kernel(7, 30))
        assert torch.equal(parse_blur(" Gaussian:2 "), gaussian_kernel(2))
        assert torch.equal(parse_blur("none"), torch.ones(1, 1))

    @pytest.mark.parametrize(
        "spec", ["gauss:1", "gaussian", "gaussian:abc", "motion:7", "disk:1:2", "", "psf:", "none:1"]
    )
    def test_bad_specs_list_the_forms(self, spec):
        with pytest.raises(InvalidInputError) as info:
            parse_blur(spec)
        message = str(info.value)
        assert repr(spec) in message
        assert all(form in message for form in BLUR_FORMS)

    def test_negative_numbers_are_refused(self):
        with pytest.raises(InvalidInputError, match="radius"):
            parse_blur("disk:-1")


class TestBlurImage:
    def test_matches_scipy_convolution(self):
        rng = np.random.default_rng(0)
        image = rng.random((2, 3, 12, 10))
        for shape in ((5, 5), (3, 7), (4, 4)):
            kernel = rng.random(shape)
            kernel /= kernel.sum()
            ours = blur_image(torch.from_numpy(image), torch.from_numpy(kernel)).numpy()
            for b in range(2):
                for c in range(3):
                    ref = ndimage.convolve(image[b, c], kernel, mode="nearest")
                    np.testing.assert_allclose(ours[b, c], ref, atol=1e-12)

    def test_impulse_response_is_the_kernel(self):
        kernel = motion_kernel(5, 30, dtype=torch.float64)
        image = torch.zeros(1, 1, 21, 21, dtype=torch.float64)
        image[0, 0, 10, 10] = 1.0
        out = blur_image(image, kernel)
        c = kernel.shape[0] // 2
        assert torch.allclose(out[0, 0, 10 - c : 10 + c + 1, 10 - c : 10 + c + 1], kernel)

    def test_per_image_kernels_and_constant_images(self):
        image = torch.rand(2, 3, 16, 16, dtype=torch.float64)
        kernels = torch.stack(
            [gaussian_kernel(1.0, radius=3, dtype=torch.float64), disk_kernel(3, dtype=torch.float64)]
        )
        out = blur_image(image, kernels)
        assert torch.allclose(out[1:], blur_image(image[1:], kernels[1]))
        assert torch.allclose(out[:1], blur_image(image[:1], kernels[0]))
        flat = torch.full((1, 3, 8, 8), 0.3, dtype=torch.float64)
        assert torch.allclose(blur_image(flat, disk_kernel(5, dtype=torch.float64)), flat)
        with pytest.raises(InvalidInputError, match="kernel"):
            blur_image(image, torch.ones(3, 3, 3) / 9)

    def test_gradcheck(self):
        image = torch.rand(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
        kernel = torch.rand(3, 2, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(blur_image, (image, kernel))
