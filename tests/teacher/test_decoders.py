"""SSD anchors against MediaPipe's own golden files, SSD and YOLO box decoding by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edge_isp.teacher import decoders
from edge_isp.teacher.decoders import SsdAnchorOptions

DATA = Path(__file__).parent / "data"
# MediaPipe's ssd_anchors_calculator_test.cc, FaceDetectionConfig.
FACE_CONFIG = SsdAnchorOptions(
    input_size=(256, 256), strides=(8, 16, 32, 32, 32), min_scale=0.1171875, max_scale=0.75, fixed_anchor_size=True
)


def _golden(name: str) -> np.ndarray:
    return np.loadtxt(DATA / name, dtype=np.float64).reshape(-1, 4)


@pytest.mark.parametrize(
    "options, golden",
    [(decoders.OIDV4_SSD, "mediapipe_anchor_golden_1.txt"), (FACE_CONFIG, "mediapipe_anchor_golden_0.txt")],
)
def test_anchors_match_mediapipe_golden_files(options, golden):
    expected = _golden(golden)
    anchors = decoders.ssd_anchors(options)
    assert anchors.shape == expected.shape
    np.testing.assert_allclose(anchors, expected, atol=1e-5)  # the golden files keep 6 digits


def test_anchor_counts_of_the_presets():
    assert len(decoders.ssd_anchors(decoders.OIDV4_SSD)) == 1917
    assert len(decoders.ssd_anchors(decoders.BLAZEFACE_SHORT)) == 896
    assert len(decoders.ssd_anchors(decoders.BLAZEFACE_FULL)) == 2304
    last = decoders.ssd_anchors(decoders.OIDV4_SSD)[-1]  # 1x1 grid, interpolated scale sqrt(0.95 * 1)
    np.testing.assert_allclose(last, [0.5, 0.5, math.sqrt(0.95), math.sqrt(0.95)], rtol=1e-6)


def test_zero_regression_decodes_to_the_anchor_and_offsets_scale_with_it():
    options = decoders.OIDV4_SSD
    anchors = decoders.ssd_anchors(options)
    raw = np.zeros((len(anchors), 4), np.float32)
    boxes = decoders.decode_ssd_boxes(raw, anchors, options)
    i = 1000
    cx, cy, w, h = anchors[i] * [300, 300, 300, 300]
    np.testing.assert_allclose(boxes[i], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], rtol=1e-5)
    raw[i] = [10.0, -10.0, 5.0, 0.0]  # y + 1 anchor height, x - 1 anchor width, height * e
    moved = decoders.decode_ssd_boxes(raw, anchors, options)[i]
    expected = [cx - w - w / 2, cy + h - h * math.e / 2, cx - w + w / 2, cy + h + h * math.e / 2]
    np.testing.assert_allclose(moved, expected, rtol=1e-5)


def test_blazeface_coding_is_xywh_in_input_pixels():
    options = decoders.BLAZEFACE_SHORT
    anchors = decoders.ssd_anchors(options)
    raw = np.zeros((len(anchors), 16), np.float32)
    raw[0, :4] = [12.8, 0.0, 25.6, 12.8]  # +0.1 in x; a 0.2 x 0.1 box
    box = decoders.decode_ssd_boxes(raw, anchors, options)[0]
    cx, cy = (anchors[0, 0] + 0.1) * 128, anchors[0, 1] * 128
    np.testing.assert_allclose(box, [cx - 12.8, cy - 6.4, cx + 12.8, cy + 6.4], atol=1e-4)


def test_decode_ssd_skips_background_thresholds_and_suppresses():
    options = decoders.OIDV4_SSD
    n = len(decoders.ssd_anchors(options))
    raw_boxes = np.zeros((n, 4), np.float32)
    logits = np.full((n, 3), -10.0, np.float32)
    logits[5] = [9.0, -10.0, 3.0]  # background high, class 2 at sigmoid(3) = 0.95
    logits[6] = [-10.0, 2.0, -10.0]  # same cell, other anchor shape: class 1 at 0.88
    logits[7] = [-10.0, 0.0, -10.0]  # 0.5, below the threshold
    boxes, scores, labels = decoders.decode_ssd(raw_boxes, logits, options, min_score=0.6, iou=0.5)
    assert labels.tolist() == [2, 1]
    np.testing.assert_allclose(scores, [1 / (1 + math.exp(-3)), 1 / (1 + math.exp(-2))], rtol=1e-5)
    assert boxes.shape == (2, 4)


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("objectness", [False, True])
def test_decode_yolo_layouts(transpose, objectness):
    rows = [[50, 40, 20, 10], [52, 41, 20, 10], [10, 10, 4, 4]]
    cls = [[0.9, 0.1], [0.8, 0.1], [0.05, 0.7]]
    obj = [[1.0], [1.0], [1.0]]
    table = np.hstack([rows, obj, cls] if objectness else [rows, cls]).astype(np.float32)
    out = table.T if transpose else table
    boxes, scores, labels = decoders.decode_yolo(out, 2, min_score=0.3, iou=0.5)
    assert labels.tolist() == [0, 1]  # the second box overlaps the first (same class) and is suppressed
    np.testing.assert_allclose(boxes[0], [40, 35, 60, 45])
    np.testing.assert_allclose(scores, [0.9, 0.7], rtol=1e-6)
