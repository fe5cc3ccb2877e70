"""Model outputs -> JSON-serializable results: top-k labels, or thresholded boxes in frame pixels.

Per the I/O contract (docs/ARCHITECTURE.md) a classifier returns ``logits`` (B, C) and a
detector the K highest heatmap peaks: ``boxes`` (B, K, 4) xyxy in model-input pixels,
``scores`` (B, K), ``labels`` (B, K) int32, unthresholded. CenterNet's peak test already
replaces NMS; a light class-wise NMS on the host is there for models that need it.
numpy only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from edge_isp.contract.boxes import box_iou
from edge_isp.contract.metadata import ModelMetadata
from edge_isp.contract.model_input import Geometry
from edge_isp.errors import InvalidInputError


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (float64 internally, float32 out)."""
    x = np.asarray(logits, dtype=np.float64)
    x = np.exp(x - x.max(axis=axis, keepdims=True))
    return (x / x.sum(axis=axis, keepdims=True)).astype(np.float32)


def top_k_labels(logits: np.ndarray, info: ModelMetadata, k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` most probable classes of one image's ``logits`` (C,), best first:
    ``[{"label": name, "class_id": i, "score": probability}]``."""
    logits = np.asarray(logits)
    if logits.ndim != 1 or logits.size == 0:
        raise InvalidInputError(f"top_k_labels takes one image's logits (C,), got shape {logits.shape}")
    probs = softmax(logits)
    order = np.argsort(-probs, kind="stable")[: max(0, k)]
    return [{"label": info.class_name(int(i)), "class_id": int(i), "score": float(probs[i])} for i in order]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, labels: np.ndarray | None = None) -> np.ndarray:
    """Greedy non-maximum suppression, class-wise when ``labels`` are given.

    Args:
        boxes: ``(N, 4)`` xyxy.
        scores: ``(N,)``.
        iou_threshold: a box overlapping a kept, higher-scoring box (of the same class) by
            more than this is removed.
        labels: ``(N,)`` class ids; boxes of different classes never suppress each other.

    Returns:
        Indices of the kept boxes, by decreasing score.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape[0] != boxes.shape[0]:
        raise InvalidInputError(f"nms needs one score per box, got {boxes.shape[0]} boxes and {scores.shape[0]} scores")
    order = np.argsort(-scores, kind="stable")
    same_class = None if labels is None else np.asarray(labels).reshape(-1)
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        overlap = box_iou(boxes[best], boxes[rest])[0] > iou_threshold
        if same_class is not None:
            overlap &= same_class[rest] == same_class[best]
        order = rest[~overlap]
    return np.asarray(keep, dtype=np.int64)


def _output(outputs: Mapping[str, np.ndarray], name: str, task: str) -> np.ndarray:
    if name not in outputs:
        raise InvalidInputError(
            f"a {task} model must return {name!r} (see docs/ARCHITECTURE.md); this one returns {sorted(outputs)}"
        )
    return np.asarray(outputs[name])


@dataclasses.dataclass(frozen=True)
class Postprocessor:
    """Turns one frame's outputs (batch of 1) into results.

    Attributes:
        info: the model's task and class names.
        score_threshold: detections below it are dropped.
        top_k: how many labels a classifier reports.
        nms_iou: class-wise NMS at this IoU, or None for none (CenterNet needs none).
        nms_across_classes: let boxes of different classes suppress each other too (one box
            per object where a detector scores two classes at one place).
        max_detections: at most this many boxes per frame, best first.
    """

    info: ModelMetadata
    score_threshold: float = 0.3
    top_k: int = 5
    nms_iou: float | None = None
    nms_across_classes: bool = False
    max_detections: int = 100

    def __post_init__(self) -> None:
        if not 0 <= self.score_threshold <= 1:
            raise InvalidInputError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.nms_iou is not None and not 0 < self.nms_iou <= 1:
            raise InvalidInputError(f"nms_iou must be in (0, 1] or None, got {self.nms_iou}")
        if self.nms_across_classes and self.nms_iou is None:
            raise InvalidInputError("nms_across_classes needs an nms_iou (the IoU above which boxes suppress)")
        if self.top_k < 1 or self.max_detections < 1:
            raise InvalidInputError(f"top_k and max_detections must be >= 1, got {self.top_k}, {self.max_detections}")

    def __call__(self, outputs: Mapping[str, np.ndarray], geometry: Geometry) -> dict[str, Any]:
        """``{"labels": [...]}`` (classification), ``{"detections": [...]}`` (detection) or
        ``{}`` (reconstruction). Detection boxes are xyxy in frame pixels, clipped to the frame."""
        task = self.info.task
        if task == "classification":
            logits = _output(outputs, "logits", task)
            return {"labels": top_k_labels(logits.reshape(logits.shape[0], -1)[0], self.info, self.top_k)}
        if task == "detection":
            return {"detections": self.detections(outputs, geometry)}
        return {}

    def detections(self, outputs: Mapping[str, np.ndarray], geometry: Geometry) -> list[dict[str, Any]]:
        boxes = _output(outputs, "boxes", "detection")
        scores = _output(outputs, "scores", "detection")
        labels = _output(outputs, "labels", "detection")
        if boxes.ndim != 3 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:2] or labels.shape != scores.shape:
            raise InvalidInputError(
                "detection outputs must be boxes (B, K, 4), scores (B, K), labels (B, K); got "
                f"{boxes.shape}, {scores.shape}, {labels.shape}"
            )
        boxes, scores, labels = boxes[0], scores[0].astype(np.float32), labels[0].astype(np.int64)
        keep = np.flatnonzero(scores >= self.score_threshold)
        keep = keep[np.argsort(-scores[keep], kind="stable")]
        if self.nms_iou is not None and keep.size > 1:
            same_class = None if self.nms_across_classes else labels[keep]
            keep = keep[nms(boxes[keep], scores[keep], self.nms_iou, same_class)]
        keep = keep[: self.max_detections]
        width, height = geometry.frame_size
        frame_boxes = geometry.to_frame(boxes[keep])
        frame_boxes[:, 0::2] = np.clip(frame_boxes[:, 0::2], 0, width)
        frame_boxes[:, 1::2] = np.clip(frame_boxes[:, 1::2], 0, height)
        return [
            {
                "box": [round(float(v), 1) for v in box],
                "label": self.info.class_name(int(label)),
                "class_id": int(label),
                "score": round(float(score), 4),
            }
            for box, label, score in zip(frame_boxes, labels[keep], scores[keep], strict=True)
        ]
