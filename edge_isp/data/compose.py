"""Render Fashion-MNIST garments in colour and composite them onto photographs.

A garment is drawn from its 28x28 grey product photo: the grey level gives both its
shading and its alpha (the photos are on black, so a soft ramp of the grey level is the
mask, with enclosed dark prints filled in so a black logo does not become a hole). A
random tint and, sometimes, stripes or checks colour it. Every random choice is kept in
a :class:`Garment` record, rounded to the precision it is written to JSON with, so a
record read back from a data set re-renders exactly the pixels that were pasted.

Images here are ``(H, W, 3)`` RGB; float images are on [0, 1], uint8 on [0, 255].
"""

from __future__ import annotations

import colorsys
import dataclasses
import math
from typing import Any

import cv2
import numpy as np

from edge_isp.errors import InvalidInputError

PATTERNS = ("plain", "stripes", "checks")
# Grey levels (on [0, 1]) where the alpha ramp starts and reaches 1: Fashion-MNIST's
# background is 0 with faint noise just above it.
_ALPHA_LO, _ALPHA_HI = 0.02, 0.12
# A pixel belongs to a garment's box where its visible alpha reaches this.
MASK_THRESHOLD = 0.5


def _r(x: float) -> float:
    return round(float(x), 4)


@dataclasses.dataclass(frozen=True)
class Garment:
    """One pasted garment: where it came from, where it went and how it was coloured.

    Attributes:
        part: Fashion-MNIST part, ``"train"`` or ``"test"``.
        index: index of the 28x28 image in that part.
        label: its class index (Fashion-MNIST label order).
        x, y: top-left corner of its square in the output image, pixels.
        size: side of its square in the output image, pixels.
        flip: mirrored left to right.
        colour: main tint, RGB on [0, 1].
        pattern: one of :data:`PATTERNS`.
        pattern_colour: second colour of the pattern, RGB on [0, 1].
        pattern_angle_deg: direction of the stripes, degrees.
        pattern_period: stripe period as a fraction of ``size``.
    """

    part: str
    index: int
    label: int
    x: int
    y: int
    size: int
    flip: bool
    colour: tuple[float, float, float]
    pattern: str = "plain"
    pattern_colour: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pattern_angle_deg: float = 0.0
    pattern_period: float = 0.25

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["colour"], out["pattern_colour"] = list(self.colour), list(self.pattern_colour)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Garment:
        try:
            return cls(**{**data, "colour": tuple(data["colour"]), "pattern_colour": tuple(data["pattern_colour"])})
        except (KeyError, TypeError) as exc:
            raise InvalidInputError(f"not a garment record ({exc}): {data}") from None


def sample_style(rng: np.random.Generator, pattern_probability: float) -> dict[str, Any]:
    """Random tint and pattern, as keyword arguments of :class:`Garment`."""
    hue = rng.uniform()
    colour = colorsys.hsv_to_rgb(hue, rng.uniform(0.25, 0.95), rng.uniform(0.45, 1.0))
    style: dict[str, Any] = {"colour": tuple(_r(c) for c in colour)}
    if rng.uniform() < pattern_probability:
        # The second colour sits well away on the hue circle so the pattern is visible.
        hue2 = (hue + rng.uniform(0.25, 0.75)) % 1.0
        second = colorsys.hsv_to_rgb(hue2, rng.uniform(0.2, 0.9), rng.uniform(0.3, 1.0))
        style.update(
            pattern=str(rng.choice(PATTERNS[1:])),
            pattern_colour=tuple(_r(c) for c in second),
            pattern_angle_deg=_r(rng.uniform(0.0, 180.0)),
            pattern_period=_r(rng.uniform(0.12, 0.35)),
        )
    return style


# The texture classes of the texture-bound variant (BuildConfig.classes = "textures"): the
# label is the garment's fill, not its shape. Name -> (pattern, angle in degrees, period as a
# fraction of the garment's side). Fine stripes are 3-5 px at 64x64, near the limit a
# Bayer sensor resolves: a denoiser that smooths them away loses the class.
TEXTURES = {
    "stripes-0-fine": ("stripes", 0.0, 0.09),
    "stripes-45-fine": ("stripes", 45.0, 0.09),
    "stripes-90-fine": ("stripes", 90.0, 0.09),
    "stripes-135-fine": ("stripes", 135.0, 0.09),
    "stripes-0-coarse": ("stripes", 0.0, 0.18),
    "stripes-45-coarse": ("stripes", 45.0, 0.18),
    "stripes-90-coarse": ("stripes", 90.0, 0.18),
    "stripes-135-coarse": ("stripes", 135.0, 0.18),
    "checks-0-fine": ("checks", 0.0, 0.12),
    "checks-45-fine": ("checks", 45.0, 0.12),
}
TEXTURE_NAMES = tuple(TEXTURES)


def sample_texture_style(rng: np.random.Generator, texture: int) -> dict[str, Any]:
    """Random colours with the fill of texture class ``texture`` (an index into
    :data:`TEXTURE_NAMES`), its angle within 7 degrees and its period within 10%."""
    style = sample_style(rng, pattern_probability=1.0)
    pattern, angle, period = TEXTURES[TEXTURE_NAMES[texture]]
    style.update(
        pattern=pattern,
        pattern_angle_deg=_r((angle + rng.uniform(-7.0, 7.0)) % 180.0),
        pattern_period=_r(period * rng.uniform(0.9, 1.1)),
    )
    return style


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Binary mask with every region not reachable from the border set (enclosed holes filled)."""
    padded = np.pad(mask.astype(np.uint8), 1)
    flood = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(padded, flood, (0, 0), 2)
    return padded[1:-1, 1:-1] != 2


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    interp = cv2.INTER_LINEAR if size >= image.shape[0] else cv2.INTER_AREA
    return cv2.resize(image, (size, size), interpolation=interp)


def render_garment(grey: np.ndarray, garment: Garment) -> tuple[np.ndarray, np.ndarray]:
    """Colour one 28x28 grey garment.

    Args:
        grey: ``(h, w)`` uint8 product photo on black.
        garment: how to draw it (only ``size``, ``flip`` and the style are used).

    Returns:
        ``(rgb, alpha)``: ``(size, size, 3)`` and ``(size, size)`` float32 on [0, 1].
    """
    if grey.ndim != 2 or grey.dtype != np.uint8:
        raise InvalidInputError(f"garment image must be 2-D uint8, got {grey.dtype} with shape {grey.shape}")
    if garment.size < 2:
        raise InvalidInputError(f"garment size must be at least 2 pixels, got {garment.size}")
    g = grey.astype(np.float32) / 255.0
    if garment.flip:
        g = g[:, ::-1]
    soft = np.clip((g - _ALPHA_LO) / (_ALPHA_HI - _ALPHA_LO), 0.0, 1.0)
    alpha = np.maximum(soft, _fill_holes(g > _ALPHA_LO).astype(np.float32))
    shading = 0.25 + 0.75 * g / max(float(g.max()), 1e-3)
    size = garment.size
    alpha = np.clip(_resize(np.ascontiguousarray(alpha), size), 0.0, 1.0)
    shading = _resize(np.ascontiguousarray(shading), size)

    colour = np.asarray(garment.colour, np.float32)
    if garment.pattern == "plain":
        base = np.broadcast_to(colour, (size, size, 3))
    elif garment.pattern in PATTERNS:
        v, u = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
        theta = math.radians(garment.pattern_angle_deg)
        phase = (u * math.cos(theta) + v * math.sin(theta)) / garment.pattern_period
        weight = (np.sin(2 * np.pi * phase) > 0).astype(np.float32)
        if garment.pattern == "checks":
            across = (-u * math.sin(theta) + v * math.cos(theta)) / garment.pattern_period
            weight = np.abs(weight - (np.sin(2 * np.pi * across) > 0))
        second = np.asarray(garment.pattern_colour, np.float32)
        base = colour * (1 - weight[..., None]) + second * weight[..., None]
    else:
        raise InvalidInputError(f"unknown garment pattern {garment.pattern!r}; expected one of {', '.join(PATTERNS)}")
    rgb = np.clip(base * shading[..., None], 0.0, 1.0).astype(np.float32)
    return rgb, alpha.astype(np.float32)


def paste(canvas: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, x: int, y: int) -> np.ndarray:
    """Alpha-composite ``rgb`` over ``canvas`` (float ``(H, W, 3)``) in place at (x, y).

    The patch must lie inside the canvas. Returns the patch's alpha as a full ``(H, W)`` layer.
    """
    h, w = alpha.shape
    height, width = canvas.shape[:2]
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise InvalidInputError(f"a {w}x{h} patch at ({x}, {y}) does not fit in a {width}x{height} image")
    a = alpha[..., None]
    region = canvas[y : y + h, x : x + w]
    region *= 1 - a
    region += rgb * a
    layer = np.zeros((height, width), np.float32)
    layer[y : y + h, x : x + w] = alpha
    return layer


def visible_layers(layers: list[np.ndarray]) -> list[np.ndarray]:
    """How much of each alpha layer (bottom first) shows through the ones above it."""
    visible = []
    for i, layer in enumerate(layers):
        v = layer.copy()
        for above in layers[i + 1 :]:
            v *= 1 - above
        visible.append(v)
    return visible


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x, y, w, h)`` in pixels of the pixels where ``mask >= MASK_THRESHOLD``; None if none."""
    ys, xs = np.nonzero(mask >= MASK_THRESHOLD)
    if xs.size == 0:
        return None
    x0, y0 = int(xs.min()), int(ys.min())
    return x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0


def crop_background(
    photo: np.ndarray, rng: np.random.Generator, width: int, height: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """A random crop of ``photo`` (uint8 ``(h, w, 3)``) resized to ``width`` x ``height``.

    The crop has the output's aspect ratio and covers 25 to 100 % of the largest such
    window (never less than the output size where the photo allows), and is mirrored half
    the time. Returns the float32 image on [0, 1] and a record ``{"crop": [x, y, w, h],
    "flip": bool}`` in photo pixels.
    """
    ph, pw = photo.shape[:2]
    max_h = min(ph, pw * height / width)
    min_h = min(max(height, 0.25 * max_h), max_h)
    ch = round(float(rng.uniform(min_h, max_h)))
    cw = max(1, min(pw, round(ch * width / height)))
    ch = max(1, min(ph, ch))
    x = int(rng.integers(0, pw - cw + 1))
    y = int(rng.integers(0, ph - ch + 1))
    flip = bool(rng.uniform() < 0.5)
    crop = photo[y : y + ch, x : x + cw]
    interp = cv2.INTER_AREA if cw >= width else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=interp)
    if flip:
        out = out[:, ::-1]
    return out.astype(np.float32) / 255.0, {"crop": [x, y, cw, ch], "flip": flip}
