"""mAP against pycocotools (the COCO reference implementation) on synthetic detections with
jittered boxes, wrong labels, misses, false positives, a class never detected and a class
never present. With COCO's 101-point interpolation the figures must be pycocotools' to
rounding: so the matching (IoU, greedy by score, one detection per box) is the same. The
all-point figures the project reports differ only by the interpolation: a fraction of a point.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from edge_isp.evaluate.scoring import COCO_IOU_THRESHOLDS, map_over_thresholds
from edge_isp.train.metrics import DetectionAccumulator

CLASSES = 5  # 0-2 ordinary, 3 present but never detected, 4 detected but never present


def synthetic(seed: int, images: int = 80):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(images):
        count = int(rng.integers(0, 6))
        xy, wh = rng.uniform(0, 200, (count, 2)), rng.uniform(10, 80, (count, 2))
        gt = np.concatenate([xy, xy + wh], 1)
        gl = rng.integers(0, 4, count)
        boxes, labels, scores = [], [], []
        for box, label in zip(gt, gl, strict=True):
            if label == 3 or rng.uniform() > 0.85:
                continue  # class 3 is never found; others are missed 15% of the time
            spread = np.tile(rng.uniform(0.02, 0.3) * (box[2:] - box[:2]), 2)
            boxes.append(box + rng.normal(0, 1, 4) * spread)
            labels.append(label if rng.uniform() < 0.9 else rng.integers(0, 3))
            scores.append(rng.uniform(0.2, 1.0))
        for _ in range(int(rng.integers(0, 4))):
            corner = rng.uniform(0, 200, 2)
            boxes.append(np.concatenate([corner, corner + rng.uniform(10, 80, 2)]))
            labels.append(int(rng.choice([0, 1, 2, 4])))
            scores.append(rng.uniform(0.0, 0.8))
        boxes = np.asarray(boxes, float).reshape(-1, 4)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        out.append((gt, gl, boxes, np.asarray(labels, int), np.round(np.asarray(scores, float), 6)))
    return out


def coco_stats(images) -> tuple[float, float]:
    """pycocotools' (AP@0.5, AP@0.5:0.95) for boxes given as [x0, y0, x1, y1]."""
    gt = {"images": [], "annotations": [], "categories": [{"id": c + 1, "name": str(c)} for c in range(CLASSES)]}
    detections = []
    for i, (boxes_gt, labels_gt, boxes, labels, scores) in enumerate(images, start=1):
        gt["images"].append({"id": i, "width": 300, "height": 300})
        for box, label in zip(boxes_gt, labels_gt, strict=True):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            annotation = {"id": len(gt["annotations"]) + 1, "image_id": i, "category_id": int(label) + 1}
            gt["annotations"].append({**annotation, "bbox": [float(box[0]), float(box[1]), w, h], "area": w * h,
                                      "iscrowd": 0})  # fmt: skip
        for box, label, score in zip(boxes, labels, scores, strict=True):
            xywh = [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]
            detections.append({"image_id": i, "category_id": int(label) + 1, "score": float(score), "bbox": xywh})
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[1]), float(evaluation.stats[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_agrees_with_pycocotools(seed):
    images = synthetic(seed)
    acc = DetectionAccumulator(num_classes=CLASSES)
    for boxes_gt, labels_gt, boxes, labels, scores in images:
        acc.add(boxes, scores, labels, boxes_gt, labels_gt)
    coco50, coco50_95 = coco_stats(images)
    assert acc.mean_average_precision(0.5, interpolation="coco") == pytest.approx(coco50, abs=1e-9)
    ours50_95 = np.mean([acc.mean_average_precision(t, interpolation="coco") for t in COCO_IOU_THRESHOLDS])
    assert ours50_95 == pytest.approx(coco50_95, abs=1e-9)
    assert 3 in acc.per_class_ap(0.5) and acc.per_class_ap(0.5)[3] == 0.0 and 4 not in acc.per_class_ap(0.5)
    # The project's all-point figures: the same matching, read without COCO's recall sampling.
    assert abs(acc.mean_average_precision(0.5) - coco50) < 0.004
    assert abs(map_over_thresholds(acc) - coco50_95) < 0.004
