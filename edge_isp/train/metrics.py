"""Validation metrics: top-1 accuracy, PSNR, and mean average precision at an IoU threshold.

AP follows the all-point interpolation of PASCAL VOC 2010+ (and COCO's per-threshold AP
without its 101-point sampling): detections of a class, over all images, are sorted by
score; each is a true positive if it overlaps a not-yet-matched ground-truth box of its
class in its image with IoU >= the threshold (the best-overlapping such box is taken),
else a false positive. AP is the area under the precision-recall curve after making
precision monotonically non-increasing. mAP is the mean over the classes that have
ground truth; a class with ground truth and no detections scores 0. ``interpolation="coco"``
reads that curve at COCO's 101 recall points instead, as pycocotools does, for figures to
set beside COCO's (tests/train/test_map_reference.py checks both against pycocotools).

Boxes are ``[x0, y0, x1, y1]`` in pixels; numpy arrays throughout (no torch needed).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edge_isp.contract.boxes import box_iou
from edge_isp.errors import InvalidInputError

INTERPOLATIONS = ("all-point", "coco")
COCO_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def average_precision(
    scores: np.ndarray, true_positive: np.ndarray, num_ground_truth: int, interpolation: str = "all-point"
) -> float:
    """Interpolated AP of one class: all-point, or COCO's 101 recall points.

    Args:
        scores: (D,) detection scores.
        true_positive: (D,) bool, whether each detection matched a ground-truth box.
        num_ground_truth: ground-truth boxes of the class (> 0).
        interpolation: "all-point" (area under the envelope) or "coco" (mean of the
            envelope at recall 0, 0.01, ..., 1; 0 past the largest recall reached).

    Returns:
        AP in [0, 1].
    """
    if num_ground_truth <= 0:
        raise InvalidInputError(f"average_precision needs num_ground_truth > 0, got {num_ground_truth}")
    if interpolation not in INTERPOLATIONS:
        raise InvalidInputError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    scores = np.asarray(scores, np.float64).reshape(-1)
    tp = np.asarray(true_positive, bool).reshape(-1)
    if scores.shape != tp.shape:
        raise InvalidInputError(f"scores {scores.shape} and true_positive {tp.shape} must have the same length")
    if scores.size == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = tp[order]
    tp_cum = np.cumsum(tp)
    recall = tp_cum / num_ground_truth
    precision = tp_cum / np.arange(1, tp.size + 1)
    # Envelope: the best precision reachable at this recall or beyond.
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    if interpolation == "coco":
        at = np.searchsorted(recall, COCO_RECALL_POINTS, side="left")
        return float(np.mean(np.where(at < precision.size, precision[np.minimum(at, precision.size - 1)], 0.0)))
    recall_steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(recall_steps * precision))


@dataclasses.dataclass
class DetectionAccumulator:
    """Collects detections and ground truth image by image, then computes mAP.

    Example:
        >>> acc = DetectionAccumulator(num_classes=2)
        >>> acc.add(boxes, scores, labels, gt_boxes, gt_labels)  # doctest: +SKIP
        >>> acc.mean_average_precision(0.5)  # doctest: +SKIP
    """

    num_classes: int
    _detections: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = dataclasses.field(default_factory=list)
    _ground_truth: list[tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=list)

    def add(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        labels: np.ndarray,
        gt_boxes: np.ndarray,
        gt_labels: np.ndarray,
    ) -> None:
        """One image: detections (D, 4), (D,), (D,) and ground truth (G, 4), (G,)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        labels = np.asarray(labels, np.int64).reshape(-1)
        gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
        gt_labels = np.asarray(gt_labels, np.int64).reshape(-1)
        if not (len(boxes) == len(scores) == len(labels)) or len(gt_boxes) != len(gt_labels):
            raise InvalidInputError(
                f"detections need equal counts of boxes, scores, labels and ground truth of boxes, labels; got "
                f"{len(boxes)}, {len(scores)}, {len(labels)} and {len(gt_boxes)}, {len(gt_labels)}"
            )
        for name, values in (("labels", labels), ("gt_labels", gt_labels)):
            if values.size and (values.min() < 0 or values.max() >= self.num_classes):
                raise InvalidInputError(f"{name} must be in [0, {self.num_classes}), got {values.tolist()}")
        self._detections.append((boxes, scores, labels))
        self._ground_truth.append((gt_boxes, gt_labels))

    def per_class_ap(self, iou_threshold: float = 0.5, interpolation: str = "all-point") -> dict[int, float]:
        """AP of each class that has ground truth (see :func:`average_precision`)."""
        result = {}
        for c in range(self.num_classes):
            num_gt = sum(int(np.sum(gl == c)) for _, gl in self._ground_truth)
            if num_gt == 0:
                continue
            all_scores, all_tp = [], []
            for (boxes, scores, labels), (gt_boxes, gt_labels) in zip(
                self._detections, self._ground_truth, strict=True
            ):
                det = labels == c
                scores_c, tp = _match_image(boxes[det], scores[det], gt_boxes[gt_labels == c], iou_threshold)
                all_scores.append(scores_c)
                all_tp.append(tp)
            result[c] = average_precision(np.concatenate(all_scores), np.concatenate(all_tp), num_gt, interpolation)
        return result

    def mean_average_precision(self, iou_threshold: float = 0.5, interpolation: str = "all-point") -> float:
        """mAP over the classes with ground truth; 0 if there is no ground truth at all."""
        aps = self.per_class_ap(iou_threshold, interpolation)
        return float(np.mean(list(aps.values()))) if aps else 0.0


def _match_image(
    boxes: np.ndarray, scores: np.ndarray, gt_boxes: np.ndarray, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of one class in one image, highest score first."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    tp = np.zeros(len(boxes), bool)
    if len(gt_boxes) == 0 or len(boxes) == 0:
        return scores, tp
    iou = box_iou(boxes, gt_boxes)
    taken = np.zeros(len(gt_boxes), bool)
    for i in range(len(boxes)):
        candidates = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(candidates))
        if candidates[j] >= iou_threshold:
            taken[j] = True
            tp[i] = True
    return scores, tp


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> int:
    """Number of rows of ``logits`` (B, C) whose ``k`` highest entries include ``labels`` (B,)."""
    logits = np.asarray(logits)
    labels = np.asarray(labels).reshape(-1)
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise InvalidInputError(f"logits must be (B, C) and labels (B,), got {logits.shape} and {labels.shape}")
    top = np.argpartition(-logits, min(k, logits.shape[1]) - 1, axis=1)[:, :k]
    return int(np.sum(top == labels[:, None]))


def top1_correct(logits: np.ndarray, labels: np.ndarray) -> int:
    """Number of rows of ``logits`` (B, C) whose arg-max equals ``labels`` (B,)."""
    logits = np.asarray(logits)
    labels = np.asarray(labels).reshape(-1)
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise InvalidInputError(f"logits must be (B, C) and labels (B,), got {logits.shape} and {labels.shape}")
    return int(np.sum(np.argmax(logits, axis=1) == labels))


def psnr(prediction: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio per image in dB: (B, ...) arrays -> (B,). Prediction is
    clipped to [0, data_range] first, as a displayed image would be."""
    prediction = np.clip(np.asarray(prediction, np.float64), 0.0, data_range)
    target = np.asarray(target, np.float64)
    if prediction.shape != target.shape:
        raise InvalidInputError(f"psnr needs equal shapes, got {prediction.shape} and {target.shape}")
    mse = np.mean((prediction - target) ** 2, axis=tuple(range(1, target.ndim)))
    return 10.0 * np.log10(data_range**2 / np.maximum(mse, 1e-12))
