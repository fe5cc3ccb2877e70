"""A moving scene for the simulated camera: garments drifting over a background photograph.

Built from the same offline material and helpers as the built-in data set
(:mod:`edge_isp.data.sources`, :mod:`edge_isp.data.compose`): a crop of one of a split's
photographs, and Fashion-MNIST garments of that split, coloured the same way. Every choice
comes from one seed, so a scene is reproducible; the garments follow smooth Lissajous paths,
so the scene at time ``t`` is a pure function of ``t``, and so is its ground truth.

Images are ``(H, W, 3)`` float32 sRGB on [0, 1]; sprites are ``(s, s, 3)`` with an
``(s, s)`` alpha. Boxes are ``[x0, y0, x1, y1]`` in pixels (x1, y1 exclusive), around the
visible part of each garment's mask, as in the data set's annotations.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from edge_isp.data import compose, sources
from edge_isp.data.builtin import GARMENT_RANGES
from edge_isp.data.scenes import DETECTION_SCALE
from edge_isp.errors import InvalidInputError

# Garment side as a fraction of min(W, H): the built-in detection set's range.
DEFAULT_SCALE = DETECTION_SCALE
# Cycles per second of each garment's path, at speed 1: one sweep across takes 3 to 10 s.
_FREQUENCY_HZ = (0.05, 0.16)


@dataclasses.dataclass(frozen=True)
class Sprite:
    """One garment: its pixels, its class, and its path.

    Attributes:
        label: class index into :data:`edge_isp.data.CLASS_NAMES`.
        rgb: ``(s, s, 3)`` float32 sRGB on [0, 1].
        alpha: ``(s, s)`` float32 coverage on [0, 1].
        frequency_hz: (x, y) path frequencies, cycles per second.
        phase: (x, y) path phases, radians.
    """

    label: int
    rgb: np.ndarray
    alpha: np.ndarray
    frequency_hz: tuple[float, float]
    phase: tuple[float, float]

    @property
    def size(self) -> int:
        return int(self.alpha.shape[0])


class MovingScene:
    """A background and sprites (bottom first) that move over it; see the module docstring."""

    def __init__(self, background: np.ndarray, sprites: list[Sprite], speed: float = 1.0) -> None:
        if background.ndim != 3 or background.shape[2] != 3:
            raise InvalidInputError(f"background must be (H, W, 3), got shape {background.shape}")
        height, width = background.shape[:2]
        for sprite in sprites:
            if sprite.size > min(width, height):
                raise InvalidInputError(f"a {sprite.size}-pixel sprite does not fit a {width}x{height} scene")
        if not (math.isfinite(speed) and speed >= 0):
            raise InvalidInputError(f"speed must be a finite number >= 0, got {speed}")
        self.background = np.ascontiguousarray(background, dtype=np.float32)
        self.sprites = list(sprites)
        self.speed = float(speed)

    @property
    def width(self) -> int:
        return int(self.background.shape[1])

    @property
    def height(self) -> int:
        return int(self.background.shape[0])

    def positions(self, t: float) -> list[tuple[int, int]]:
        """Top-left corner (x, y) of each sprite at time ``t`` seconds, whole pixels."""
        out = []
        for sprite in self.sprites:
            (fx, fy), (px, py) = sprite.frequency_hz, sprite.phase
            span_x, span_y = self.width - sprite.size, self.height - sprite.size
            u = 0.5 + 0.5 * math.sin(2 * math.pi * fx * self.speed * t + px)
            v = 0.5 + 0.5 * math.sin(2 * math.pi * fy * self.speed * t + py)
            out.append((round(u * span_x), round(v * span_y)))
        return out

    def render(self, t: float) -> np.ndarray:
        """The scene at time ``t``: ``(H, W, 3)`` float32 sRGB."""
        canvas = self.background.copy()
        for sprite, (x, y) in zip(self.sprites, self.positions(t), strict=True):
            compose.paste(canvas, sprite.rgb, sprite.alpha, x, y)
        return canvas

    def visible_alphas(self, t: float) -> list[np.ndarray]:
        """Each sprite's ``(s, s)`` alpha times what the sprites above it let through."""
        where = self.positions(t)
        out = []
        for i, (sprite, (x, y)) in enumerate(zip(self.sprites, where, strict=True)):
            visible = sprite.alpha.copy()
            for above, (ax, ay) in zip(self.sprites[i + 1 :], where[i + 1 :], strict=True):
                x0, y0 = max(x, ax), max(y, ay)
                x1, y1 = min(x + sprite.size, ax + above.size), min(y + sprite.size, ay + above.size)
                if x0 < x1 and y0 < y1:
                    cover = above.alpha[y0 - ay : y1 - ay, x0 - ax : x1 - ax]
                    visible[y0 - y : y1 - y, x0 - x : x1 - x] *= 1 - cover
            out.append(visible)
        return out

    def truth(self, t: float) -> dict[str, np.ndarray]:
        """Ground truth at ``t``: ``boxes`` ``(N, 4)`` float32 xyxy pixels, ``labels``
        ``(N,)`` int64 and ``visible_fraction`` ``(N,)`` float32 (visible mask over full
        mask), for every garment with some of its mask visible, bottom first."""
        boxes, labels, fractions = [], [], []
        for sprite, visible, (x, y) in zip(self.sprites, self.visible_alphas(t), self.positions(t), strict=True):
            box = compose.tight_box(visible)
            if box is None:
                continue
            bx, by, bw, bh = box
            boxes.append([x + bx, y + by, x + bx + bw, y + by + bh])
            labels.append(sprite.label)
            full = np.count_nonzero(sprite.alpha >= compose.MASK_THRESHOLD)
            fractions.append(np.count_nonzero(visible >= compose.MASK_THRESHOLD) / max(full, 1))
        return {
            "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            "labels": np.asarray(labels, dtype=np.int64),
            "visible_fraction": np.asarray(fractions, dtype=np.float32),
        }


def build_scene(
    width: int = 640,
    height: int = 480,
    *,
    seed: int = 0,
    garments: int = 3,
    split: str = "test",
    scale: tuple[float, float] = DEFAULT_SCALE,
    speed: float = 1.0,
    fashion_mnist_dir: str | Path | None = None,
    opencv_dir: str | Path | None = None,
) -> MovingScene:
    """A scene of ``garments`` garments of distinct classes on a photograph of ``split``.

    The test split's photographs and garments are the default: a model trained on the
    built-in data set has never seen them. Needs Fashion-MNIST and the photographs
    (:data:`edge_isp.data.sources.INSTALL_HINT`); raises MissingFileError without them.
    """
    if split not in GARMENT_RANGES:
        raise InvalidInputError(f"split must be one of {', '.join(GARMENT_RANGES)}, got {split!r}")
    if not (isinstance(garments, int) and 0 <= garments <= len(sources.CLASS_NAMES)):
        raise InvalidInputError(f"garments must be an integer 0..{len(sources.CLASS_NAMES)}, got {garments!r}")
    if not (0 < scale[0] <= scale[1] <= 1):
        raise InvalidInputError(f"scale must be (low, high) fractions with 0 < low <= high <= 1, got {scale}")
    if width < 8 or height < 8 or width % 2 or height % 2:
        raise InvalidInputError(f"scene size must be even and at least 8x8 pixels, got {width}x{height}")
    rng = np.random.default_rng([int(seed), 0x5CE4E])
    photos = sources.available_photos(opencv_dir)[split]
    photo = photos[int(rng.integers(len(photos)))]
    background, _ = compose.crop_background(sources.load_photo(photo, opencv_dir), rng, width, height)

    part, first, stop = GARMENT_RANGES[split]
    images, labels = sources.load_fashion_mnist(part, fashion_mnist_dir)
    span = np.arange(first, min(stop, len(labels)))
    classes = rng.choice(len(sources.CLASS_NAMES), size=garments, replace=False)
    sprites = []
    for label in classes:
        candidates = span[labels[span] == label]
        if candidates.size == 0:
            raise InvalidInputError(f"Fashion-MNIST {part}[{first}:{stop}] has no garment of class {label}")
        index = int(rng.choice(candidates))
        side = max(2, round(float(rng.uniform(*scale)) * min(width, height)))
        garment = compose.Garment(
            part=part, index=index, label=int(label), x=0, y=0, size=side, flip=bool(rng.uniform() < 0.5),
            **compose.sample_style(rng, 0.4),
        )  # fmt: skip
        rgb, alpha = compose.render_garment(images[index], garment)
        sprites.append(
            Sprite(
                label=int(label),
                rgb=rgb,
                alpha=alpha,
                frequency_hz=(float(rng.uniform(*_FREQUENCY_HZ)), float(rng.uniform(*_FREQUENCY_HZ))),
                phase=(float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, 2 * math.pi))),
            )
        )
    return MovingScene(background, sprites, speed=speed)
