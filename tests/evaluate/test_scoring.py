"""Metric functions of the sweep, checked by hand on small cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_isp.errors import InvalidInputError
from edge_isp.evaluate.scoring import Scorer, image_quality, map_over_thresholds, metric_names, spread
from edge_isp.train.metrics import DetectionAccumulator


def test_map_over_coco_thresholds_counts_the_thresholds_a_box_passes():
    # IoU of the detection with its ground truth is 72 / 100 = 0.72: a hit at 0.50 ... 0.70
    # (5 thresholds), a miss at 0.75 ... 0.95 (5), so mAP@0.5:0.95 = 5 / 10.
    acc = DetectionAccumulator(num_classes=1)
    acc.add([[0, 0, 10, 7.2]], [0.9], [0], [[0, 0, 10, 10]], [0])
    assert acc.mean_average_precision(0.5) == 1.0
    assert map_over_thresholds(acc) == pytest.approx(0.5)


def test_image_quality_by_hand():
    target = torch.full((2, 3, 16, 16), 0.5)
    image = target.clone()
    image[1] += 0.1  # MSE 0.01: 20 dB
    psnr, ssim = image_quality(image, target)
    assert psnr[1] == pytest.approx(20.0, abs=1e-4)
    assert psnr[0] > 100  # identical (capped by the 1e-12 floor of the MSE)
    assert ssim[0] == pytest.approx(1.0, abs=1e-6)
    # Values above 1 are clipped first, as a display would: 1.7 counts as 1.0.
    bright = torch.full((1, 3, 16, 16), 1.7)
    assert image_quality(bright, torch.ones(1, 3, 16, 16))[0][0] > 100
    with pytest.raises(InvalidInputError, match="must match"):
        image_quality(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 16, 16))


def test_spread_is_mean_and_sample_std():
    assert spread([0.5, 0.6]) == (pytest.approx(0.55), pytest.approx(np.sqrt(0.005)))
    assert spread([0.7]) == (0.7, None)
    assert spread([0.7, None]) == (None, None)


def test_classification_scorer_counts_top1_and_image_metrics():
    scorer = Scorer("classification", has_image=True)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    labels = torch.tensor([0, 0, 0])
    target = torch.full((3, 3, 8, 8), 0.5)
    scorer.add(logits, target + 0.1, (None, labels), target)
    result = scorer.result()
    assert result["top1"] == pytest.approx(2 / 3)
    assert result["psnr"] == pytest.approx(20.0, abs=1e-4)
    no_image = Scorer("classification", has_image=False)
    no_image.add(logits, None, (None, labels), target)
    assert no_image.result() == {"top1": pytest.approx(2 / 3), "psnr": None, "ssim": None}


def test_metric_names_per_task():
    assert metric_names("detection") == ("map50", "map50_95", "psnr", "ssim")
    assert metric_names("reconstruction") == ("psnr", "ssim")
    with pytest.raises(InvalidInputError, match="segmentation"):
        metric_names("segmentation")


def test_bootstrap_interval_resamples_whole_groups():
    from edge_isp.evaluate.scoring import bootstrap_interval

    correct = np.array([1] * 20 + [0] * 20)
    # Two photographs, one all right and one all wrong: anything from 0 to 1 is plausible.
    assert bootstrap_interval(correct, np.array(["a"] * 20 + ["b"] * 20)) == (0.0, 1.0)
    # Forty independent images at 50%: about 0.5 +- 1.96 * sqrt(0.25 / 40) = [0.35, 0.65].
    low, high = bootstrap_interval(correct, np.arange(40))
    assert 0.31 <= low <= 0.38 and 0.62 <= high <= 0.69
    assert bootstrap_interval(np.ones(10), np.arange(10) % 3) == (1.0, 1.0)
