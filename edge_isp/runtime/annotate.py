"""Draw results on a BGR image with OpenCV: boxes, labels and scores, top-k labels, FPS, and
for the dashboard the simulator's ground truth and a display filter (score threshold, one box
per object).

The view an output shows is either the model's own ``image`` (the learned ISP's picture, at
the model's input size) or the conventional ISP's rendering of the region the model saw.
Results are in frame pixels; a :class:`ViewMap` says where that region lies in the view.
"""

from __future__ import annotations

import colorsys
import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.runtime.postprocess import nms

_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclasses.dataclass(frozen=True)
class ViewMap:
    """Frame pixels -> view pixels: ``view = (frame - origin) / scale``.

    Attributes:
        origin: the frame pixel (x, y) at the view's top-left corner.
        scale: frame pixels per view pixel, (x, y).
    """

    origin: tuple[float, float] = (0.0, 0.0)
    scale: tuple[float, float] = (1.0, 1.0)

    def resized(self, factor: tuple[float, float]) -> ViewMap:
        """The map to the view resized by ``factor`` (x, y)."""
        return ViewMap(self.origin, (self.scale[0] / factor[0], self.scale[1] / factor[1]))

    def apply(self, box: list[float] | np.ndarray) -> tuple[int, int, int, int]:
        ox, oy = self.origin
        sx, sy = self.scale
        x0, y0, x1, y1 = box
        return (round((x0 - ox) / sx), round((y0 - oy) / sy), round((x1 - ox) / sx), round((y1 - oy) / sy))


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """A model's ``image`` output, ``(3, H, W)`` or ``(1, 3, H, W)`` float RGB on [0, 1] (values
    outside are clipped), -> ``(H, W, 3)`` uint8 BGR, contiguous."""
    image = np.asarray(image)
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] != 3:
        raise InvalidInputError(f"a model image must be (3, H, W) or (1, 3, H, W), got {image.shape}")
    rgb8 = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(rgb8[::-1].transpose(1, 2, 0))


@functools.lru_cache(maxsize=256)
def class_colour(class_id: int) -> tuple[int, int, int]:
    """A distinct, bright BGR colour per class (golden-ratio steps around the hue circle)."""
    hue = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _text_scale(image: np.ndarray) -> tuple[float, int]:
    # Legible at 128 px wide and not huge at 1920: scale with the width.
    scale = max(0.35, image.shape[1] / 1280)
    return scale, max(1, round(scale * 2))


def _label(image: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int]) -> None:
    """Text on a filled box of ``colour``, its bottom-left at (x, y), kept inside the image."""
    scale, thickness = _text_scale(image)
    (w, h), base = cv2.getTextSize(text, _FONT, scale, thickness)
    x = int(np.clip(x, 0, max(0, image.shape[1] - w - 2)))
    y = int(np.clip(y, h + base + 2, image.shape[0]))
    cv2.rectangle(image, (x, y - h - base - 2), (x + w + 2, y), colour, cv2.FILLED)
    luma = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
    ink = (0, 0, 0) if luma > 128 else (255, 255, 255)
    cv2.putText(image, text, (x + 1, y - base - 1), _FONT, scale, ink, thickness, cv2.LINE_AA)


def display_detections(
    detections: Sequence[Mapping[str, Any]], score_threshold: float = 0.0, one_per_object_iou: float | None = None
) -> list[Mapping[str, Any]]:
    """The detections to show: score at least ``score_threshold``, and with
    ``one_per_object_iou`` a class-agnostic suppression (a box overlapping a higher-scoring box
    of any class by more than that IoU is dropped), so one object carries one label."""
    kept = [d for d in detections if float(d["score"]) >= score_threshold]
    if one_per_object_iou is None or len(kept) < 2:
        return kept
    boxes = np.asarray([d["box"] for d in kept], dtype=np.float32).reshape(-1, 4)
    scores = np.asarray([float(d["score"]) for d in kept], dtype=np.float32)
    return [kept[i] for i in nms(boxes, scores, one_per_object_iou)]


def draw_detections(image: np.ndarray, detections: Sequence[Mapping[str, Any]], view: ViewMap = ViewMap()) -> None:
    """Boxes with ``label score`` in each class's colour, in place."""
    thickness = _text_scale(image)[1]
    for det in detections:
        colour = class_colour(int(det.get("class_id", 0)))
        x0, y0, x1, y1 = view.apply(det["box"])
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, thickness + 1)
        _label(image, f"{det['label']} {det['score']:.2f}", x0, y0, colour)


def draw_truth(
    image: np.ndarray, truth: Mapping[str, Any], view: ViewMap = ViewMap(), class_names: Sequence[str] = ()
) -> None:
    """The simulator's ground truth (``boxes`` xyxy in frame pixels, ``labels``) as white dashed
    boxes with the class name under the box, in place."""
    thickness = _text_scale(image)[1]
    labels = list(truth.get("labels", ()))
    for i, box in enumerate(np.asarray(truth.get("boxes", ()), dtype=np.float32).reshape(-1, 4)):
        x0, y0, x1, y1 = view.apply(box)
        _dashed_rectangle(image, (x0, y0), (x1, y1), (255, 255, 255), thickness)
        if i < len(labels):
            label = int(labels[i])
            name = class_names[label] if 0 <= label < len(class_names) else f"class {label}"
            scale = _text_scale(image)[0]
            h = cv2.getTextSize(name, _FONT, scale, thickness)[0][1]
            _label(image, name, x0, y1 + h + 8, (235, 235, 235))


def _dashed_rectangle(
    image: np.ndarray, p0: tuple[int, int], p1: tuple[int, int], colour: tuple[int, int, int], thickness: int
) -> None:
    (x0, y0), (x1, y1) = p0, p1
    dash = max(4, 3 * thickness)
    for a, b, fixed, horizontal in ((x0, x1, y0, True), (x0, x1, y1, True), (y0, y1, x0, False), (y0, y1, x1, False)):
        for start in range(a, b, 2 * dash):
            end = min(start + dash, b)
            p, q = ((start, fixed), (end, fixed)) if horizontal else ((fixed, start), (fixed, end))
            cv2.line(image, p, q, colour, thickness)


def annotate(
    image: np.ndarray,
    results: Mapping[str, Any],
    view: ViewMap = ViewMap(),
    fps: float | None = None,
    status: str | None = None,
) -> np.ndarray:
    """Draw ``results`` on ``image`` in place and return it.

    Args:
        image: ``(H, W, 3)`` uint8 BGR, contiguous.
        results: as made by :class:`~edge_isp.runtime.postprocess.Postprocessor`:
            ``detections`` (boxes in frame pixels) and/or ``labels`` (top-k).
        view: where the frame region lies in ``image``.
        fps: drawn top-right when given.
        status: one more line drawn bottom-left (e.g. the light level), when given.
    """
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise InvalidInputError(
            f"annotate draws on an (H, W, 3) uint8 BGR image, got {getattr(image, 'dtype', type(image))} "
            f"{getattr(image, 'shape', '')}"
        )
    scale, thickness = _text_scale(image)
    draw_detections(image, results.get("detections", ()), view)
    line_h = cv2.getTextSize("Ag", _FONT, scale, thickness)[0][1] + 8
    for i, item in enumerate(results.get("labels", ())):
        colour = class_colour(int(item.get("class_id", 0)))
        # A class with several names (ImageNet's "tench, Tinca tinca") is drawn by its first.
        name = str(item["label"]).split(",")[0]
        _label(image, f"{name} {item['score']:.2f}", 4, (i + 1) * line_h + 4, colour)
    if fps is not None:
        text = f"{fps:.1f} FPS"
        w = cv2.getTextSize(text, _FONT, scale, thickness)[0][0]
        _label(image, text, image.shape[1] - w - 6, line_h, (40, 40, 40))
    if status:
        _label(image, status, 4, image.shape[0] - 4, (40, 40, 40))
    return image
