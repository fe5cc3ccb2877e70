"""Colour in torch for the raw simulator: the sRGB tone curve and camera colour "unprocessing".

A camera's ISP takes raw camera RGB to display sRGB in three steps: white balance (a gain
per camera channel), a colour matrix (white-balanced camera RGB -> linear sRGB; the
profile's ``color_matrix``) and the sRGB tone curve. Unprocessing runs those steps
backwards, after Brooks et al. 2019, "Unprocessing Images for Learned Raw Denoising"
(CVPR): sRGB -> linear sRGB -> white-balanced camera RGB -> camera RGB.

The camera transform is either fixed (the profile's own matrix and white balance) or
random, as in that paper: a random convex combination of the colour matrices of several
real cameras, and random red and blue white-balance gains in the ranges the paper reports.

Shapes: images ``(B, 3, H, W)``, matrices ``(B, 3, 3)`` or ``(3, 3)``, white balance
``(B, 3)`` or ``(3,)``. Every function is differentiable with respect to the image.
"""

from __future__ import annotations

import torch
from torch import Tensor

from edge_isp.errors import InvalidInputError
from edge_isp.sensor.profile import SensorProfile

# IEC 61966-2-1 linear sRGB (D65) -> CIE XYZ.
SRGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)

# XYZ (D65) -> camera RGB of real cameras, the Adobe DNG ColorMatrix values as tabulated
# (x 1/10000) in dcraw's adobe_coeff table. Brooks et al. mixed the matrices of the
# cameras of the Darmstadt Noise Dataset; these are three of those cameras plus a DSLR.
REFERENCE_XYZ_TO_CAMERA = {
    "Sony ILCE-7R": (4913, -541, -202, -6130, 13513, 2906, -1564, 2151, 7183),
    "Olympus E-M10": (8380, -2630, -639, -2887, 10725, 2496, -627, 1427, 5438),
    "Sony DSC-RX100M4": (6596, -2079, -562, -4782, 13016, 1933, -970, 1581, 5181),
    "Canon EOS 5D Mark III": (6722, -635, -963, -4287, 12460, 2028, -908, 2162, 5668),
}

# Brooks et al. 2019 draw the red and blue gains uniformly from these ranges.
RED_GAIN_RANGE = (1.9, 2.4)
BLUE_GAIN_RANGE = (1.5, 1.9)


def srgb_to_linear(srgb: Tensor) -> Tensor:
    """Inverse sRGB tone curve (IEC 61966-2-1): display values [0, 1] -> linear [0, 1]."""
    # Clamping inside the power branch keeps its gradient finite where torch.where
    # discards it, so a negative input cannot turn the gradient into NaN.
    power = ((srgb.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4
    return torch.where(srgb <= 0.04045, srgb / 12.92, power)


def linear_to_srgb(linear: Tensor) -> Tensor:
    """The sRGB tone curve: linear [0, 1] -> display values [0, 1]."""
    power = 1.055 * linear.clamp(min=0.0031308) ** (1 / 2.4) - 0.055
    return torch.where(linear <= 0.0031308, linear * 12.92, power)


def profile_rgb_to_camera(
    profile: SensorProfile, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """The profile's fixed camera transform, inverted for unprocessing.

    Returns:
        ``rgb_to_camera`` ``(3, 3)``: linear sRGB -> white-balanced camera RGB (the inverse
        of ``profile.color_matrix``), and ``white_balance`` ``(3,)``: the profile's gains.
    """
    ccm = torch.tensor(profile.color_matrix, dtype=torch.float64)
    rgb_to_camera = torch.linalg.inv(ccm).to(dtype=dtype, device=device)
    white_balance = torch.tensor(profile.white_balance, dtype=dtype, device=device)
    return rgb_to_camera, white_balance


def random_rgb_to_camera(
    batch: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Random camera colour matrices ``(B, 3, 3)``: linear sRGB -> white-balanced camera RGB.

    Each is a random convex combination of :data:`REFERENCE_XYZ_TO_CAMERA` composed with
    :data:`SRGB_TO_XYZ`, rows scaled to sum to 1 so that grey stays grey (white balance is
    applied separately). Draws on ``generator``'s device, then moves to ``device``.
    """
    where = generator.device if generator is not None else device
    xyz_to_cam = torch.tensor(list(REFERENCE_XYZ_TO_CAMERA.values()), dtype=torch.float64, device=where)
    xyz_to_cam = xyz_to_cam.view(-1, 3, 3) / 10000.0
    weights = torch.rand(batch, xyz_to_cam.shape[0], dtype=torch.float64, device=where, generator=generator)
    weights = weights / weights.sum(dim=1, keepdim=True)
    mixed = torch.einsum("bk,kij->bij", weights, xyz_to_cam)
    rgb_to_cam = mixed @ torch.tensor(SRGB_TO_XYZ, dtype=torch.float64, device=where)
    rgb_to_cam = rgb_to_cam / rgb_to_cam.sum(dim=2, keepdim=True)
    return rgb_to_cam.to(dtype=dtype, device=device)


def random_white_balance(
    batch: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Random white-balance gains ``(B, 3)`` for camera (R, G, B): green 1, red and blue
    uniform in :data:`RED_GAIN_RANGE` and :data:`BLUE_GAIN_RANGE`."""
    where = generator.device if generator is not None else device
    u = torch.rand(batch, 2, dtype=torch.float64, device=where, generator=generator)
    red = RED_GAIN_RANGE[0] + u[:, 0] * (RED_GAIN_RANGE[1] - RED_GAIN_RANGE[0])
    blue = BLUE_GAIN_RANGE[0] + u[:, 1] * (BLUE_GAIN_RANGE[1] - BLUE_GAIN_RANGE[0])
    gains = torch.stack([red, torch.ones_like(red), blue], dim=1)
    return gains.to(dtype=dtype, device=device)


def _batched(matrix: Tensor, gains: Tensor, image: Tensor) -> tuple[Tensor, Tensor]:
    if image.ndim != 4 or image.shape[1] != 3:
        raise InvalidInputError(f"expected an image of shape (B, 3, H, W), got {tuple(image.shape)}")
    batch = image.shape[0]
    if matrix.shape == (3, 3):
        matrix = matrix.expand(batch, 3, 3)
    if gains.shape == (3,):
        gains = gains.expand(batch, 3)
    if matrix.shape != (batch, 3, 3) or gains.shape != (batch, 3):
        raise InvalidInputError(
            f"colour matrix must be (3, 3) or ({batch}, 3, 3) and white balance (3,) or ({batch}, 3); "
            f"got {tuple(matrix.shape)} and {tuple(gains.shape)}"
        )
    return matrix.to(image), gains.to(image)


def unprocess(linear_rgb: Tensor, rgb_to_camera: Tensor, white_balance: Tensor) -> Tensor:
    """Linear sRGB ``(B, 3, H, W)`` -> linear camera RGB ``(B, 3, H, W)``.

    Applies ``rgb_to_camera`` then divides by ``white_balance``: a white pixel (1, 1, 1)
    becomes ``1 / white_balance``. Saturated colours can leave [0, 1]; the simulator
    clips them where a sensor would.
    """
    matrix, gains = _batched(rgb_to_camera, white_balance, linear_rgb)
    camera = torch.einsum("bij,bjhw->bihw", matrix, linear_rgb)
    return camera / gains[:, :, None, None]


def process(camera_rgb: Tensor, rgb_to_camera: Tensor, white_balance: Tensor) -> Tensor:
    """Inverse of :func:`unprocess`: linear camera RGB -> linear sRGB, both ``(B, 3, H, W)``."""
    matrix, gains = _batched(rgb_to_camera, white_balance, camera_rgb)
    balanced = camera_rgb * gains[:, :, None, None]
    return torch.einsum("bij,bjhw->bihw", torch.linalg.inv(matrix), balanced)
