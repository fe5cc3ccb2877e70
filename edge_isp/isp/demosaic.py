"""Demosaicking for the conventional ISP: Bayer mosaic ``(H, W)`` -> RGB ``(H, W, 3)``.

Layout here is OpenCV's, channel-last: the RGB image is ``(H, W, 3)`` with channels in
the order R, G, B (not OpenCV's usual BGR). The rest of edge-isp (``edge_isp.sensor.cfa``,
the networks) is channel-first; ``np.moveaxis(rgb, -1, -3)`` converts.

Methods (all for the four Bayer patterns):

- ``"bilinear"``: normalized convolution of each colour's samples with the bilinear
  kernel, divided by the same convolution of that colour's mask.
- ``"malvar"``: Malvar, He and Cutler, "High-quality linear interpolation for demosaicing
  of Bayer-patterned color images" (ICASSP 2004): bilinear interpolation corrected by the
  Laplacian of the colour that was measured, as eight 5x5 filters (four distinct ones
  and their roles swapped between R and B).
- ``"ea"``: OpenCV's edge-aware demosaicking (``COLOR_Bayer*2RGB_EA``), run on 16 bits.
- ``"vng"``: OpenCV's variable number of gradients (``COLOR_Bayer*2RGB_VNG``), which
  OpenCV only runs on 8 bits, so its output is quantized to 1/255 of the input span.

Borders are handled by mirroring the mosaic without repeating the edge sample (numpy's
``"reflect"``, OpenCV's ``BORDER_REFLECT_101``): that mirror keeps the CFA phase, so a
border pixel sees neighbours of the right colour.

Values are float32 on about [0, 1]; they may stray below 0 and above 1 (noise around
black, highlights after gain) and are passed through, not clipped. The OpenCV methods
map the span ``[min(0, x.min()), max(1, x.max())]`` affinely onto their integer range and
back, so negative noise survives them too.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.sensor.cfa import CFA, colour_mask

DEMOSAIC_METHODS = ("bilinear", "malvar", "ea", "vng")

# OpenCV names a Bayer code by the pattern starting at the second row and second column,
# so its "BG" is the RGGB pattern read from the top left. These old names exist in OpenCV
# 4 and 5 alike (OpenCV 5 adds RGGB-style aliases with the same values); the test suite
# checks the mapping by demosaicking pure colours.
_OPENCV_BAYER_NAME = {CFA.RGGB: "BG", CFA.BGGR: "RG", CFA.GRBG: "GB", CFA.GBRG: "GR"}
_OPENCV_SUFFIX = {"ea": "_EA", "vng": "_VNG"}
# Integer full scale each OpenCV method runs at (VNG is 8-bit only in OpenCV).
_OPENCV_LEVELS = {"ea": 65535, "vng": 255}
# Mirror this many pixels around the mosaic before OpenCV's methods (even, so the CFA
# phase is kept), since they fill their outer rows with cruder estimates.
_OPENCV_PAD = 6

# Bilinear kernels: green from its 4-neighbours, red/blue from 2 or 4 neighbours.
_BILINEAR_G = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4
_BILINEAR_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4


def _eighths(rows: list[list[float]]) -> np.ndarray:
    return np.array(rows, np.float32) / 8


# Malvar et al. 2004, figure 2, each scaled by 1/8. The filters are symmetric about their
# centre, so OpenCV's correlation equals the convolution the paper writes.
_MALVAR_G_AT_RB = _eighths(
    [
        [0, 0, -1, 0, 0],
        [0, 0, 2, 0, 0],
        [-1, 2, 4, 2, -1],
        [0, 0, 2, 0, 0],
        [0, 0, -1, 0, 0],
    ]
)
# At a green pixel: the colour whose samples are its left/right neighbours.
_MALVAR_ROW_NEIGHBOUR = _eighths(
    [
        [0, 0, 0.5, 0, 0],
        [0, -1, 0, -1, 0],
        [-1, 4, 5, 4, -1],
        [0, -1, 0, -1, 0],
        [0, 0, 0.5, 0, 0],
    ]
)
# At a green pixel: the colour whose samples are its upper/lower neighbours.
_MALVAR_COLUMN_NEIGHBOUR = np.ascontiguousarray(_MALVAR_ROW_NEIGHBOUR.T)
# At a red pixel the blue, at a blue pixel the red: samples on the diagonals.
_MALVAR_DIAGONAL = _eighths(
    [
        [0, 0, -1.5, 0, 0],
        [0, 2, 0, 2, 0],
        [-1.5, 0, 6, 0, -1.5],
        [0, 2, 0, 2, 0],
        [0, 0, -1.5, 0, 0],
    ]
)


def _filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.filter2D(image, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT_101)


def _check_mosaic(mosaic: np.ndarray) -> np.ndarray:
    if not isinstance(mosaic, np.ndarray) or mosaic.ndim != 2:
        raise InvalidInputError(
            f"a Bayer mosaic must be a 2-D numpy array (H, W), got {type(mosaic).__name__} "
            f"with shape {getattr(mosaic, 'shape', None)}"
        )
    if mosaic.dtype.kind not in "fiu":
        raise InvalidInputError(f"a Bayer mosaic must hold numbers, got dtype {mosaic.dtype}")
    if min(mosaic.shape) < 2:
        raise InvalidInputError(f"a Bayer mosaic must be at least 2x2, got {mosaic.shape[0]}x{mosaic.shape[1]}")
    mosaic = mosaic.astype(np.float32, copy=False)
    if not np.isfinite(mosaic).all():
        raise InvalidInputError("a Bayer mosaic must be finite, got NaN or infinite values")
    return mosaic


def _bilinear(mosaic: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.empty((*mosaic.shape, 3), np.float32)
    for c, kernel in enumerate((_BILINEAR_RB, _BILINEAR_G, _BILINEAR_RB)):
        weights = mask[c].astype(np.float32)
        # The mask's own convolution is the number of samples each output averages; with
        # the phase-keeping mirror it never reaches zero.
        out[..., c] = _filter(mosaic * weights, kernel) / _filter(weights, kernel)
    return out


def _malvar(mosaic: np.ndarray, mask: np.ndarray) -> np.ndarray:
    red, green, blue = mask
    red_rows = red.any(axis=1)[:, None]
    green_in_red_row = green & red_rows
    green_in_blue_row = green & ~red_rows
    at_rb = _filter(mosaic, _MALVAR_G_AT_RB)
    row = _filter(mosaic, _MALVAR_ROW_NEIGHBOUR)
    column = _filter(mosaic, _MALVAR_COLUMN_NEIGHBOUR)
    diagonal = _filter(mosaic, _MALVAR_DIAGONAL)
    r = np.where(red, mosaic, np.where(green_in_red_row, row, np.where(green_in_blue_row, column, diagonal)))
    g = np.where(green, mosaic, at_rb)
    b = np.where(blue, mosaic, np.where(green_in_blue_row, row, np.where(green_in_red_row, column, diagonal)))
    return np.stack([r, g, b], axis=-1).astype(np.float32, copy=False)


def opencv_bayer_code(cfa: CFA | str, method: str) -> int:
    """The ``cv2.COLOR_Bayer*2RGB*`` code that demosaicks ``cfa`` (read from the top left).

    ``method`` is ``"bilinear"`` (OpenCV's plain code), ``"ea"`` or ``"vng"``.
    """
    cfa = CFA.parse(cfa)
    suffix = "" if method == "bilinear" else _OPENCV_SUFFIX.get(method)
    if suffix is None:
        raise InvalidInputError(f"OpenCV demosaicking method must be one of bilinear, ea, vng, got {method!r}")
    name = f"COLOR_Bayer{_OPENCV_BAYER_NAME[cfa]}2RGB{suffix}"
    if not hasattr(cv2, name):
        raise InvalidInputError(f"this OpenCV ({cv2.__version__}) has no {name}, so {method!r} is unavailable")
    return int(getattr(cv2, name))


def _opencv(mosaic: np.ndarray, cfa: CFA, method: str, levels: int) -> np.ndarray:
    code = opencv_bayer_code(cfa, method)
    low = min(0.0, float(mosaic.min()))
    high = max(1.0, float(mosaic.max()))
    scale = levels / (high - low)
    padded = np.pad(mosaic, _OPENCV_PAD, mode="reflect")
    integer = np.rint((padded - low) * scale).astype(np.uint16 if levels > 255 else np.uint8)
    rgb = cv2.cvtColor(integer, code)[_OPENCV_PAD:-_OPENCV_PAD, _OPENCV_PAD:-_OPENCV_PAD]
    return (rgb.astype(np.float32) / np.float32(scale) + np.float32(low)).astype(np.float32)


def available_demosaic_methods() -> tuple[str, ...]:
    """The methods this installation can run (VNG needs an OpenCV that still ships it)."""
    return tuple(m for m in DEMOSAIC_METHODS if m not in _OPENCV_SUFFIX or _has_opencv(m))


def _has_opencv(method: str) -> bool:
    return hasattr(cv2, f"COLOR_BayerBG2RGB{_OPENCV_SUFFIX[method]}")


def demosaic(mosaic: np.ndarray, cfa: CFA | str, method: str = "malvar") -> np.ndarray:
    """Interpolate a Bayer mosaic to full RGB.

    Args:
        mosaic: ``(H, W)`` Bayer samples, float on about [0, 1] (any real dtype is
            converted to float32); H and W even.
        cfa: the mosaic's Bayer pattern.
        method: one of :data:`DEMOSAIC_METHODS` (see the module docstring).

    Returns:
        ``(H, W, 3)`` float32 RGB (channel-last, R, G, B), same scale as ``mosaic``; at
        each pixel the colour it measured is returned unchanged by ``"bilinear"`` and
        ``"malvar"``.

    Example:
        >>> rgb = demosaic(np.full((4, 4), 0.5, np.float32), "RGGB", "bilinear")
        >>> rgb.shape, float(rgb[1, 1, 0])
        ((4, 4, 3), 0.5)
    """
    if method not in DEMOSAIC_METHODS:
        raise InvalidInputError(f"unknown demosaic method {method!r}; expected one of {', '.join(DEMOSAIC_METHODS)}")
    cfa = CFA.parse(cfa)
    mosaic = _check_mosaic(mosaic)
    if method in _OPENCV_SUFFIX:
        if not _has_opencv(method):
            raise InvalidInputError(
                f"demosaic method {method!r} needs an OpenCV with COLOR_Bayer*2RGB{_OPENCV_SUFFIX[method]}, "
                f"which OpenCV {cv2.__version__} lacks; available: {', '.join(available_demosaic_methods())}"
            )
        colour_mask(cfa, *mosaic.shape)  # refuses odd sizes with the CFA helpers' message
        return _opencv(mosaic, cfa, method, _OPENCV_LEVELS[method])
    mask = colour_mask(cfa, *mosaic.shape)
    if method == "bilinear":
        return _bilinear(mosaic, mask)
    return _malvar(mosaic, mask)
