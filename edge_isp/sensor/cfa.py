"""Bayer colour filter arrays: mosaic, pack to 4 planes, unpack, masks, flips.

Every function here works on numpy arrays and on torch tensors alike (torch is never
imported: the runtime on a board runs without it). Layouts are channel-first:

- RGB image: ``(..., 3, H, W)``
- Bayer mosaic: ``(..., H, W)``
- packed planes: ``(..., 4, H/2, W/2)`` in the fixed order :data:`PLANE_ORDER`
  (R, Gr, Gb, B) whatever the sensor's pattern, so a network sees the same colour in the
  same channel for every camera. "Gr" is the green that shares a row with red.

H and W of a mosaic must be even: a Bayer tile is 2x2, and an odd size is refused rather
than silently cropped.
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError

PLANE_ORDER = ("R", "Gr", "Gb", "B")
# The RGB channel (0=R, 1=G, 2=B) each packed plane samples.
PLANE_RGB_INDEX = (0, 1, 1, 2)


class CFA(enum.Enum):
    """The four Bayer patterns, named by the 2x2 tile read row by row from the top left."""

    RGGB = "RGGB"
    BGGR = "BGGR"
    GRBG = "GRBG"
    GBRG = "GBRG"

    @classmethod
    def parse(cls, value: CFA | str) -> CFA:
        """Accept a CFA or its name in any case ("rggb")."""
        if isinstance(value, CFA):
            return value
        try:
            return cls(str(value).strip().upper())
        except ValueError:
            choices = ", ".join(c.value for c in cls)
            raise InvalidInputError(f"unknown CFA pattern {value!r}; expected one of {choices}") from None

    @property
    def tile(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """The 2x2 tile as colour letters, e.g. (("R", "G"), ("G", "B"))."""
        s = self.value
        return (s[0], s[1]), (s[2], s[3])

    def plane_offsets(self) -> tuple[tuple[int, int], ...]:
        """(row, col) offset inside the 2x2 tile of each plane in :data:`PLANE_ORDER`."""
        (a, b), (c, d) = self.tile
        where = {}
        for (y, x), colour in zip(((0, 0), (0, 1), (1, 0), (1, 1)), (a, b, c, d), strict=True):
            if colour == "G":
                # The green on the red row is Gr, the other one Gb.
                red_row = 0 if "R" in self.tile[0] else 1
                colour = "Gr" if y == red_row else "Gb"
            where[colour] = (y, x)
        return tuple(where[name] for name in PLANE_ORDER)

    def flipped(self, horizontal: bool = False, vertical: bool = False) -> CFA:
        """The pattern seen after mirroring the image (sensor readout flips)."""
        (a, b), (c, d) = self.tile
        if horizontal:
            a, b, c, d = b, a, d, c
        if vertical:
            a, b, c, d = c, d, a, b
        return CFA(a + b + c + d)


def _stack(planes: list, like: Any, axis: int):
    if type(like).__module__.startswith("torch"):
        import torch  # only reached when the caller already uses torch

        return torch.stack(planes, dim=axis)
    return np.stack(planes, axis=axis)


def _check_even(height: int, width: int, what: str) -> None:
    if height % 2 or width % 2:
        raise InvalidInputError(f"{what} must have even height and width (a Bayer tile is 2x2), got {height}x{width}")


def pack(bayer, cfa: CFA | str):
    """Split a mosaic ``(..., H, W)`` into planes ``(..., 4, H/2, W/2)`` ordered R, Gr, Gb, B."""
    cfa = CFA.parse(cfa)
    if bayer.ndim < 2:
        raise InvalidInputError(f"a Bayer mosaic needs at least 2 dimensions, got shape {tuple(bayer.shape)}")
    _check_even(bayer.shape[-2], bayer.shape[-1], "a Bayer mosaic")
    planes = [bayer[..., y::2, x::2] for y, x in cfa.plane_offsets()]
    return _stack(planes, bayer, axis=-3)


def unpack(planes, cfa: CFA | str):
    """Inverse of :func:`pack`: ``(..., 4, h, w)`` -> mosaic ``(..., 2h, 2w)``."""
    cfa = CFA.parse(cfa)
    if planes.ndim < 3 or planes.shape[-3] != 4:
        raise InvalidInputError(f"packed planes must have shape (..., 4, h, w), got {tuple(planes.shape)}")
    h, w = planes.shape[-2], planes.shape[-1]
    shape = (*planes.shape[:-3], 2 * h, 2 * w)
    if type(planes).__module__.startswith("torch"):
        out = planes.new_zeros(shape)
    else:
        out = np.zeros(shape, dtype=planes.dtype)
    for i, (y, x) in enumerate(cfa.plane_offsets()):
        out[..., y::2, x::2] = planes[..., i, :, :]
    return out


def mosaic(rgb, cfa: CFA | str):
    """Sample an RGB image ``(..., 3, H, W)`` through the CFA: mosaic ``(..., H, W)``.

    Differentiable when given a torch tensor (it is indexing only).
    """
    cfa = CFA.parse(cfa)
    if rgb.ndim < 3 or rgb.shape[-3] != 3:
        raise InvalidInputError(f"an RGB image must have shape (..., 3, H, W), got {tuple(rgb.shape)}")
    _check_even(rgb.shape[-2], rgb.shape[-1], "an image to mosaic")
    planes = [rgb[..., c, y::2, x::2] for (y, x), c in zip(cfa.plane_offsets(), PLANE_RGB_INDEX, strict=True)]
    return unpack(_stack(planes, rgb, axis=-3), cfa)


def colour_mask(cfa: CFA | str, height: int, width: int) -> np.ndarray:
    """Boolean mask ``(3, H, W)``: True where the sensor measures that colour.

    This is the paper's Bayer mask M in the data-consistency step.
    """
    cfa = CFA.parse(cfa)
    _check_even(height, width, "a CFA mask")
    mask = np.zeros((3, height, width), dtype=bool)
    for (y, x), c in zip(cfa.plane_offsets(), PLANE_RGB_INDEX, strict=True):
        mask[c, y::2, x::2] = True
    return mask


def per_channel_map(values, cfa: CFA | str, height: int, width: int) -> np.ndarray:
    """Spread 4 per-plane values (R, Gr, Gb, B order) over a mosaic of ``(H, W)``.

    Used for per-channel black levels and white-balance gains on a mosaic.
    """
    _check_even(height, width, "a per-channel map")
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (4,):
        raise InvalidInputError(f"expected 4 per-channel values (R, Gr, Gb, B), got shape {values.shape}")
    planes = np.broadcast_to(values[:, None, None], (4, height // 2, width // 2))
    return unpack(np.ascontiguousarray(planes), cfa)
