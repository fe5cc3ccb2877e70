"""Turning a detector's raw output tensors into boxes: SSD anchors (MediaPipe's layout) and YOLO.

Pure numpy; the detectors of :mod:`edge_isp.teacher.detectors` call these after running a
model. Boxes come out as ``(N, 4)`` float32 xyxy in the *model input's* pixels, with
``(N,)`` float32 scores and ``(N,)`` int64 labels, after a score threshold and class-wise
non-maximum suppression.

The SSD anchors follow MediaPipe's ``SsdAnchorsCalculator`` (Apache-2.0), written here from
its documented behaviour: layers that share a stride are merged; each layer has one anchor
per aspect ratio (plus one at the geometric mean of this and the next layer's scale, when
``interpolated_scale_aspect_ratio`` > 0), or the three fixed ones of the lowest layer when
``reduce_boxes_in_lowest_layer``; anchor centres sit on a ``ceil(input / stride)`` grid.
The box regressions decode as in its ``TensorsToDetectionsCalculator``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from edge_isp.runtime.postprocess import nms


@dataclasses.dataclass(frozen=True)
class SsdAnchorOptions:
    """MediaPipe SSD anchor and box-coding options (defaults: none; see the presets below).

    Attributes:
        input_size: (width, height) of the model input in pixels.
        strides: one per layer.
        min_scale, max_scale: anchor scales of the first and last layer (fractions of the input).
        aspect_ratios: width / height of each anchor of a layer.
        interpolated_scale_aspect_ratio: aspect ratio of the extra in-between-scale anchor
            (0: none).
        reduce_boxes_in_lowest_layer: the first layer gets 3 fixed anchors (scale 0.1 at 1:1,
            and the layer's scale at 2:1 and 1:2).
        fixed_anchor_size: anchors are 1 x 1 (the regression is then in input units).
        xy_scale, wh_scale: the box coder's divisors (y/x: 10, h/w: 5 in TF's SSD).
        exp_size: sizes decode as ``exp(t / wh_scale) * anchor`` (else ``t / wh_scale * anchor``).
        xywh: the regression order is x, y, w, h (MediaPipe's ``reverse_output_order``); else y, x, h, w.
    """

    input_size: tuple[int, int]
    strides: tuple[int, ...]
    min_scale: float
    max_scale: float
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = False
    fixed_anchor_size: bool = False
    xy_scale: float = 10.0
    wh_scale: float = 5.0
    exp_size: bool = True
    xywh: bool = False


# MediaPipe's Objectron object detector (SSD-MobileNetV2, Open Images subset), from
# mediapipe/modules/objectron/object_detection_oid_v4_cpu.pbtxt.
OIDV4_SSD = SsdAnchorOptions(
    input_size=(300, 300),
    strides=(16, 32, 64, 128, 256, 512),
    min_scale=0.2,
    max_scale=0.95,
    aspect_ratios=(1.0, 2.0, 0.5, 3.0, 0.3333),
    reduce_boxes_in_lowest_layer=True,
)
# BlazeFace, from mediapipe/modules/face_detection/face_detection_{short,full}_range.pbtxt.
BLAZEFACE_SHORT = SsdAnchorOptions(
    input_size=(128, 128), strides=(8, 16, 16, 16), min_scale=0.1484375, max_scale=0.75, fixed_anchor_size=True,
    xy_scale=128.0, wh_scale=128.0, exp_size=False, xywh=True,
)  # fmt: skip
BLAZEFACE_FULL = SsdAnchorOptions(
    input_size=(192, 192), strides=(4,), min_scale=0.1484375, max_scale=0.75, fixed_anchor_size=True,
    interpolated_scale_aspect_ratio=0.0, xy_scale=192.0, wh_scale=192.0, exp_size=False, xywh=True,
)  # fmt: skip


def _layer_scale(options: SsdAnchorOptions, index: int) -> float:
    n = len(options.strides)
    if n == 1:
        return (options.min_scale + options.max_scale) / 2
    return options.min_scale + (options.max_scale - options.min_scale) * index / (n - 1)


def ssd_anchors(options: SsdAnchorOptions) -> np.ndarray:
    """Anchors ``(A, 4)`` float32 ``[x_center, y_center, width, height]`` as fractions of the input."""
    width, height = options.input_size
    strides = options.strides
    out = []
    layer = 0
    while layer < len(strides):
        sizes: list[tuple[float, float]] = []  # (scale, aspect ratio)
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            scale = _layer_scale(options, last)
            if last == 0 and options.reduce_boxes_in_lowest_layer:
                sizes += [(0.1, 1.0), (scale, 2.0), (scale, 0.5)]
            else:
                sizes += [(scale, ratio) for ratio in options.aspect_ratios]
                if options.interpolated_scale_aspect_ratio > 0:
                    following = 1.0 if last == len(strides) - 1 else _layer_scale(options, last + 1)
                    sizes.append((math.sqrt(scale * following), options.interpolated_scale_aspect_ratio))
            last += 1
        grid_h, grid_w = math.ceil(height / strides[layer]), math.ceil(width / strides[layer])
        wh = np.array([(s * math.sqrt(r), s / math.sqrt(r)) for s, r in sizes], np.float64)
        if options.fixed_anchor_size:
            wh[:] = 1.0
        ys, xs = np.meshgrid((np.arange(grid_h) + 0.5) / grid_h, (np.arange(grid_w) + 0.5) / grid_w, indexing="ij")
        centres = np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), len(sizes), axis=0)
        out.append(np.concatenate([centres, np.tile(wh, (grid_h * grid_w, 1))], 1))
        layer = last
    return np.concatenate(out).astype(np.float32)


def decode_ssd_boxes(raw: np.ndarray, anchors: np.ndarray, options: SsdAnchorOptions) -> np.ndarray:
    """Box regressions ``(A, >=4)`` -> ``(A, 4)`` xyxy in input pixels."""
    raw = np.asarray(raw, np.float64)
    if options.xywh:
        tx, ty, tw, th = raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3]
    else:
        ty, tx, th, tw = raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3]
    ax, ay, aw, ah = (anchors[:, i].astype(np.float64) for i in range(4))
    cx = tx / options.xy_scale * aw + ax
    cy = ty / options.xy_scale * ah + ay
    if options.exp_size:
        w, h = np.exp(tw / options.wh_scale) * aw, np.exp(th / options.wh_scale) * ah
    else:
        w, h = tw / options.wh_scale * aw, th / options.wh_scale * ah
    width, height = options.input_size
    boxes = np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], 1)
    return boxes.astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def select(
    boxes: np.ndarray, class_scores: np.ndarray, min_score: float, iou: float, background: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best class per box (ignoring column ``background``), score threshold, class-wise NMS.

    ``class_scores`` (N, C) are probabilities. Returns (boxes, scores, labels) with labels
    indexing the columns of ``class_scores``.
    """
    scores = np.array(class_scores, np.float32, copy=True)
    if background is not None:
        scores[:, background] = -1.0
    labels = scores.argmax(1)
    best = scores[np.arange(len(scores)), labels]
    keep = np.flatnonzero(best >= min_score)
    boxes, best, labels = boxes[keep], best[keep], labels[keep]
    kept = nms(boxes, best, iou, labels) if len(keep) else np.zeros(0, np.int64)
    return boxes[kept].astype(np.float32), best[kept].astype(np.float32), labels[kept].astype(np.int64)


def decode_ssd(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, options: SsdAnchorOptions, min_score: float, iou: float,
    background: int | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """SSD outputs ``(A, >=4)`` regressions and ``(A, C)`` logits (sigmoid scores) -> detections."""
    anchors = ssd_anchors(options)
    scores = _sigmoid(np.asarray(raw_scores, np.float32))
    return select(decode_ssd_boxes(raw_boxes, anchors, options), scores, min_score, iou, background)


def decode_yolo(output: np.ndarray, num_classes: int | None, min_score: float, iou: float):
    """A YOLO-style head ``(N, 4 + [1] + C)`` or ``(4 + [1] + C, N)`` -> detections.

    Rows are ``[cx, cy, w, h]`` in input pixels, then an objectness (YOLOv5 style, when the
    row has ``5 + num_classes`` values) and class probabilities (YOLOv8 style: ``4 +
    num_classes``, no objectness). The layout is told apart by ``num_classes`` (the length
    of the label list); with ``None``, rows of 4 + C values without objectness are assumed.
    Returns (boxes xyxy, scores, labels) in input pixels.
    """
    out = np.asarray(output, np.float32)
    row_lengths = (4 + num_classes, 5 + num_classes) if num_classes is not None else ()
    by_columns = out.shape[1] not in row_lengths and (out.shape[0] in row_lengths or out.shape[0] < out.shape[1])
    if by_columns:
        out = out.T
    values = out.shape[1]
    objectness = num_classes is not None and values == 5 + num_classes
    class_scores = out[:, 5:] * out[:, 4:5] if objectness else out[:, 4:]
    cx, cy, w, h = out[:, 0], out[:, 1], out[:, 2], out[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    return select(boxes, class_scores, min_score, iou)
