"""Optical blur: point-spread-function kernels and their application to linear images.

Kernels are 2-D torch tensors ``(kh, kw)`` that sum to 1 (blur moves light, it does not
add or remove it), centred on element ``(kh // 2, kw // 2)``; units are pixels of the
image they blur. :func:`parse_blur` turns a command-line spec into a kernel:

- ``none``: no blur (a 1x1 kernel)
- ``gaussian:SIGMA``: Gaussian, standard deviation SIGMA pixels
- ``disk:RADIUS``: uniform disk (defocus), RADIUS pixels, anti-aliased edge
- ``motion:LENGTH:ANGLE``: straight motion streak LENGTH pixels long at ANGLE degrees
  counter-clockwise from the +x axis (image rows grow downwards)
- ``psf:PATH.npy``: a measured PSF stored as a 2-D ``.npy`` array (normalized here)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from edge_isp.errors import InvalidInputError, MissingFileError

BLUR_FORMS = ("none", "gaussian:SIGMA", "disk:RADIUS", "motion:LENGTH:ANGLE", "psf:PATH.npy")


def _finite_nonnegative(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"{name} must be a finite number >= 0 (pixels), got {value}")
    return value


def identity_kernel(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """The 1x1 kernel [[1]]: no blur."""
    return torch.ones(1, 1, dtype=dtype, device=device)


def gaussian_kernel(
    sigma: float,
    *,
    radius: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Sampled isotropic Gaussian ``(2r+1, 2r+1)``, ``r = radius or ceil(4 * sigma)``.

    Truncating at 4 sigma keeps more than 99.99% of the mass, so the kernel's variance
    along each axis is sigma^2 to within 0.1% for sigma >= 1 pixel.
    """
    sigma = _finite_nonnegative(sigma, "gaussian sigma")
    if sigma == 0:
        return identity_kernel(dtype, device)
    r = math.ceil(4 * sigma) if radius is None else int(radius)
    if r < 0:
        raise InvalidInputError(f"gaussian radius must be >= 0 pixels, got {radius}")
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = torch.outer(g, g)
    return (kernel / kernel.sum()).to(dtype=dtype, device=device)


def disk_kernel(
    radius: float,
    *,
    supersample: int = 8,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Uniform disk of ``radius`` pixels ``(2R+1, 2R+1)``, ``R = ceil(radius)``.

    Each element is the fraction of its pixel the disk covers (``supersample`` x
    ``supersample`` points per pixel), so the edge is anti-aliased and the disk's area is
    kept for radii that are not whole numbers.
    """
    radius = _finite_nonnegative(radius, "disk radius")
    if radius == 0:
        return identity_kernel(dtype, device)
    big = math.ceil(radius)
    offsets = (torch.arange(supersample, dtype=torch.float64) + 0.5) / supersample - 0.5
    centres = torch.arange(-big, big + 1, dtype=torch.float64)
    coords = (centres[:, None] + offsets[None, :]).reshape(-1)
    inside = (coords[:, None] ** 2 + coords[None, :] ** 2) <= radius**2
    size = 2 * big + 1
    coverage = inside.double().reshape(size, supersample, size, supersample).mean(dim=(1, 3))
    return (coverage / coverage.sum()).to(dtype=dtype, device=device)


def motion_kernel(
    length: float,
    angle_deg: float,
    *,
    supersample: int = 16,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Straight motion streak: a segment of ``length`` pixels through the centre at
    ``angle_deg`` degrees counter-clockwise from +x, drawn with bilinear weights.

    The segment is sampled ``supersample`` times per pixel of length; the kernel is
    ``(2R+1, 2R+1)`` with ``R = ceil(length / 2) + 1`` to leave room for the bilinear spread.
    """
    length = _finite_nonnegative(length, "motion length")
    angle = float(angle_deg)
    if not math.isfinite(angle):
        raise InvalidInputError(f"motion angle must be a finite number of degrees, got {angle_deg}")
    if length == 0:
        return identity_kernel(dtype, device)
    big = math.ceil(length / 2) + 1
    size = 2 * big + 1
    count = max(2, math.ceil(length * supersample) + 1)
    t = torch.linspace(-length / 2, length / 2, count, dtype=torch.float64)
    # Rows grow downwards, so counter-clockwise on screen is -y.
    x = big + t * math.cos(math.radians(angle))
    y = big - t * math.sin(math.radians(angle))
    x0, y0 = x.floor(), y.floor()
    fx, fy = x - x0, y - y0
    kernel = torch.zeros(size * size, dtype=torch.float64)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            index = ((y0 + dy) * size + (x0 + dx)).long()
            kernel.index_add_(0, index, wy * wx)
    kernel = kernel.reshape(size, size)
    return (kernel / kernel.sum()).to(dtype=dtype, device=device)


def psf_kernel(
    psf: np.ndarray | Tensor, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """A measured PSF as a kernel: checked (2-D, finite, >= 0, positive sum) and normalized."""
    array = torch.as_tensor(np.asarray(psf.detach().cpu() if isinstance(psf, Tensor) else psf, dtype=np.float64))
    if array.ndim != 2 or array.numel() == 0:
        raise InvalidInputError(f"a PSF must be a non-empty 2-D array (kh, kw), got shape {tuple(array.shape)}")
    if not torch.isfinite(array).all():
        raise InvalidInputError("a PSF must contain finite numbers only, got NaN or infinity")
    if (array < 0).any():
        raise InvalidInputError(f"a PSF must be >= 0 everywhere, got a minimum of {array.min().item():.4g}")
    total = array.sum()
    if total <= 0:
        raise InvalidInputError("a PSF must have a positive sum, got an all-zero array")
    return (array / total).to(dtype=dtype, device=device)


def load_psf(path: str | Path, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """Read a 2-D PSF from a ``.npy`` file and normalize it (see :func:`psf_kernel`)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"PSF file {path} does not exist (expected a 2-D .npy array)")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InvalidInputError(f"{path} is not a readable .npy array: {exc}") from None
    try:
        return psf_kernel(array, dtype=dtype)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path}: {exc}") from None


def parse_blur(spec: str, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """Build a normalized 2-D kernel from a spec such as ``"gaussian:1.5"`` or ``"motion:7:30"``.

    See the module docstring for the forms. A malformed spec raises
    :class:`~edge_isp.errors.InvalidInputError` listing them.
    """
    text = str(spec).strip()
    kind, _, rest = text.partition(":")
    kind = kind.lower()
    args = rest.split(":") if rest else []

    def bad(why: str) -> InvalidInputError:
        return InvalidInputError(f"bad blur spec {spec!r}: {why}; expected one of {', '.join(BLUR_FORMS)}")

    if kind == "psf":
        if not rest:
            raise bad("psf needs a path")
        return load_psf(rest, dtype=dtype)
    expected = {"none": 0, "gaussian": 1, "disk": 1, "motion": 2}
    if kind not in expected:
        raise bad(f"unknown kind {kind!r}")
    if len(args) != expected[kind]:
        raise bad(f"{kind} takes {expected[kind]} number(s), got {len(args)}")
    try:
        numbers = [float(a) for a in args]
    except ValueError:
        raise bad(f"{args} are not all numbers") from None
    if kind == "none":
        return identity_kernel(dtype)
    if kind == "gaussian":
        return gaussian_kernel(numbers[0], dtype=dtype)
    if kind == "disk":
        return disk_kernel(numbers[0], dtype=dtype)
    return motion_kernel(numbers[0], numbers[1], dtype=dtype)


def blur_image(image: Tensor, kernel: Tensor) -> Tensor:
    """Convolve each channel of ``image`` ``(B, C, H, W)`` with ``kernel``.

    ``kernel`` is ``(kh, kw)`` for the whole batch or ``(B, kh, kw)`` one per image; it is
    cast to the image's dtype and device. Borders repeat the edge pixel. The result has
    the input's shape and is differentiable with respect to the image and the kernel.
    """
    if image.ndim != 4:
        raise InvalidInputError(f"blur_image expects an image (B, C, H, W), got shape {tuple(image.shape)}")
    batch, channels, height, width = image.shape
    kernel = kernel.to(dtype=image.dtype, device=image.device)
    if kernel.ndim == 2:
        kernel = kernel.expand(batch, *kernel.shape)
    if kernel.ndim != 3 or kernel.shape[0] != batch:
        raise InvalidInputError(f"blur kernel must be (kh, kw) or ({batch}, kh, kw), got shape {tuple(kernel.shape)}")
    kh, kw = kernel.shape[-2:]
    if kh == kw == 1:
        return image * kernel.reshape(batch, 1, 1, 1)
    # conv2d correlates; flipping makes it a true convolution, which matters for
    # asymmetric PSFs. Padding puts the kernel's centre at (kh // 2, kw // 2).
    weight = kernel.flip(-2, -1).repeat_interleave(channels, dim=0).unsqueeze(1)
    pad = (kw - 1 - kw // 2, kw // 2, kh - 1 - kh // 2, kh // 2)
    padded = F.pad(image.reshape(1, batch * channels, height, width), pad, mode="replicate")
    out = F.conv2d(padded, weight, groups=batch * channels)
    return out.reshape(batch, channels, height, width)
