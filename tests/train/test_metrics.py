"""Metrics: IoU, AP and mAP on hand-made cases, top-1, PSNR."""

from __future__ import annotations

import numpy as np
import pytest

from edge_isp.contract.boxes import box_iou
from edge_isp.errors import InvalidInputError
from edge_isp.train.metrics import DetectionAccumulator, average_precision, psnr, top1_correct


def test_box_iou_by_hand():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    assert box_iou(a, b)[0].tolist() == pytest.approx([50 / 150, 0.0, 1.0])
    assert box_iou(a, np.array([[3, 3, 3, 8]]))[0, 0] == 0.0  # empty box


class TestAveragePrecision:
    def test_perfect(self):
        assert average_precision([0.9, 0.8], [True, True], 2) == 1.0

    def test_false_positive_ranked_first(self):
        # precision 0/1 then 1/2 at recall 1: the envelope gives 0.5 over recall [0, 1].
        assert average_precision([0.9, 0.8], [False, True], 1) == pytest.approx(0.5)

    def test_half_the_ground_truth_found(self):
        assert average_precision([0.9], [True], 2) == pytest.approx(0.5)

    def test_envelope(self):
        # TP, FP, TP with 2 GT: recall 0.5 at precision 1, recall 1 at precision 2/3.
        assert average_precision([0.9, 0.8, 0.7], [True, False, True], 2) == pytest.approx(0.5 + 0.5 * 2 / 3)

    def test_no_detections_and_bad_input(self):
        assert average_precision([], [], 3) == 0.0
        with pytest.raises(InvalidInputError, match="num_ground_truth"):
            average_precision([0.5], [True], 0)


class TestDetectionAccumulator:
    def test_matching_rules(self):
        acc = DetectionAccumulator(num_classes=2)
        gt = np.array([[0, 0, 10, 10], [20, 20, 40, 40]], float)
        acc.add(
            boxes=np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 40, 30], [20, 20, 40, 40]], float),
            scores=np.array([0.9, 0.8, 0.7, 0.6]),
            labels=np.array([0, 0, 1, 1]),
            gt_boxes=gt,
            gt_labels=np.array([0, 1]),
        )
        per_class = acc.per_class_ap(0.5)
        # Class 0: a match, then a duplicate of the same box (FP): AP 1.
        assert per_class[0] == pytest.approx(1.0)
        # Class 1: IoU 0.5 (matches at 0.5) ranked first -> AP 1; at 0.6 it is a FP -> 0.5.
        assert per_class[1] == pytest.approx(1.0)
        assert acc.per_class_ap(0.6)[1] == pytest.approx(0.5)
        assert acc.mean_average_precision(0.6) == pytest.approx(0.75)

    def test_class_without_ground_truth_is_skipped_and_misses_count(self):
        acc = DetectionAccumulator(num_classes=3)
        acc.add(np.array([[0, 0, 5, 5]]), np.array([0.9]), np.array([2]), np.zeros((0, 4)), np.zeros(0))
        acc.add(np.zeros((0, 4)), np.zeros(0), np.zeros(0), np.array([[0, 0, 5, 5]]), np.array([1]))
        assert acc.per_class_ap() == {1: 0.0}
        assert acc.mean_average_precision() == 0.0

    def test_matches_stay_in_their_image(self):
        acc = DetectionAccumulator(num_classes=1)
        acc.add(np.array([[0, 0, 10, 10]]), np.array([0.9]), np.array([0]), np.zeros((0, 4)), np.zeros(0))
        acc.add(np.zeros((0, 4)), np.zeros(0), np.zeros(0), np.array([[0, 0, 10, 10]]), np.array([0]))
        assert acc.mean_average_precision() == 0.0

    def test_bad_labels(self):
        acc = DetectionAccumulator(num_classes=2)
        with pytest.raises(InvalidInputError, match=r"\[0, 2\)"):
            acc.add(np.zeros((1, 4)), np.ones(1), np.array([2]), np.zeros((0, 4)), np.zeros(0))


def test_top1_and_psnr():
    logits = np.array([[0.1, 0.9], [2.0, -1.0], [0.0, 1.0]])
    assert top1_correct(logits, np.array([1, 0, 0])) == 2
    target = np.zeros((2, 3, 4, 4))
    prediction = target + np.array([0.1, 0.01])[:, None, None, None]
    assert psnr(prediction, target).tolist() == pytest.approx([20.0, 40.0])
