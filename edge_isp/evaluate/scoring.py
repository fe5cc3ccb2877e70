"""Scoring one pipeline at one light level: the task metric and the quality of its image.

Metrics (all "higher is better"):

- ``top1``: classification accuracy, [0, 1]; ``top5``: the share whose label is among the
  five highest logits (on real sets, whose labels are the teacher's answers, both measure
  agreement with the teacher).
- ``map50``: detection mAP at IoU 0.5; ``map50_95``: the mean of the mAPs at IoU 0.50,
  0.55, ..., 0.95 (COCO's primary metric, with the all-point AP of
  :mod:`edge_isp.train.metrics`), both in [0, 1].
- ``psnr`` (dB) and ``ssim`` ([-1, 1]) of the pipeline's image against the clean sRGB
  image, per image then averaged over images. The image is clipped to [0, 1] first, as a
  display would; a pipeline without an image scores None (n/a).

Detections are decoded as in validation: the detector's top 50 peaks, score >= 0.01.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from edge_isp.errors import InvalidInputError
from edge_isp.model.heads import DETECTOR_STRIDE, CenterNetDetector
from edge_isp.train import metrics
from edge_isp.train.losses import ssim

TASK_METRICS = {"classification": ("top1",), "detection": ("map50", "map50_95"), "reconstruction": ()}
IMAGE_METRICS = ("psnr", "ssim")
METRIC_TEXT = {
    "top1": "top-1 accuracy",
    "top5": "top-5 accuracy",
    "top1_low": "top-1, 95% interval low (bootstrap over photos)",
    "top1_high": "top-1, 95% interval high (bootstrap over photos)",
    "map50": "mAP@0.5 (all-point AP)",
    "map50_95": "mAP@0.5:0.95 (all-point AP)",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
}
COCO_IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
DETECTION_TOP_K = 50
DETECTION_MIN_SCORE = 0.01


def metric_names(task: str, top5: bool = False, interval: bool = False) -> tuple[str, ...]:
    """The task's metrics (classification: with ``top5`` the top-5 too, with ``interval`` the
    95% bootstrap interval of top-1 over the images' groups) and the image metrics."""
    if task not in TASK_METRICS:
        raise InvalidInputError(f"task must be one of {', '.join(TASK_METRICS)}, got {task!r}")
    extra = ("top5",) if top5 and task == "classification" else ()
    extra += ("top1_low", "top1_high") if interval and task == "classification" else ()
    return TASK_METRICS[task] + extra + IMAGE_METRICS


def bootstrap_interval(
    correct: np.ndarray, groups: np.ndarray, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of the mean of ``correct`` (N,) when whole groups (N,) are drawn
    with replacement: crops of one photograph are not independent, photographs are."""
    _, index = np.unique(np.asarray(groups), return_inverse=True)
    hits = np.bincount(index, weights=np.asarray(correct, np.float64))
    sizes = np.bincount(index).astype(np.float64)
    draws = np.random.default_rng(seed).integers(0, len(sizes), (resamples, len(sizes)))
    means = hits[draws].sum(1) / sizes[draws].sum(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def map_over_thresholds(
    acc: metrics.DetectionAccumulator, thresholds: tuple[float, ...] = COCO_IOU_THRESHOLDS
) -> float:
    """Mean of ``acc.mean_average_precision(t)`` over the IoU ``thresholds``."""
    return float(np.mean([acc.mean_average_precision(t) for t in thresholds]))


def image_quality(image: Tensor, target: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(PSNR dB (B,), SSIM (B,)) of sRGB images (B, 3, H, W) against clean ones, after
    clipping ``image`` to [0, 1]."""
    if image.shape != target.shape:
        raise InvalidInputError(
            f"a pipeline's image {tuple(image.shape)} must match the clean image {tuple(target.shape)}"
        )
    clipped = image.detach().float().clamp(0.0, 1.0)
    target = target.detach().float()
    psnr = metrics.psnr(clipped.cpu().numpy(), target.cpu().numpy())
    return psnr, ssim(clipped, target).cpu().numpy().astype(np.float64)


class Scorer:
    """Accumulates one pipeline's outputs over the batches of one (seed, level).

    Args:
        task: "classification", "detection" or "reconstruction".
        num_classes: detection classes (for the mAP); unused otherwise.
        has_image: whether the pipeline makes an image.
    """

    def __init__(
        self, task: str, num_classes: int = 1, has_image: bool = True, top5: bool = False, groups: Any = None
    ) -> None:
        metric_names(task)
        self.groups = None if groups is None or task != "classification" else np.asarray(groups)
        self.hits: list[np.ndarray] = []
        self.task = task
        self.has_image = has_image
        self.top5 = top5 and task == "classification"
        self.correct5 = 0
        self.correct = 0
        self.total = 0
        self.psnr: list[float] = []
        self.ssim: list[float] = []
        self.detections = metrics.DetectionAccumulator(num_classes) if task == "detection" else None

    def add(
        self, prediction: Any, image: Tensor | None, batch: tuple, target: Tensor, stride: int = DETECTOR_STRIDE
    ) -> None:
        """One batch: the pipeline's prediction and image, the loader's ``batch`` (labels /
        boxes on the CPU) and the clean sRGB ``target`` (B, 3, H, W); ``stride``: the
        detector maps' stride in the picture's pixels."""
        if self.task == "classification":
            logits = prediction.float().cpu().numpy()
            self.correct += metrics.top1_correct(logits, batch[1].numpy())
            self.hits.append(logits.argmax(1) == batch[1].numpy())
            if self.top5:
                self.correct5 += metrics.topk_correct(logits, batch[1].numpy(), 5)
            self.total += len(batch[1])
        elif self.task == "detection":
            decoded = CenterNetDetector.decode(prediction, top_k=DETECTION_TOP_K, stride=stride)
            for i in range(target.shape[0]):
                keep = decoded["scores"][i] >= DETECTION_MIN_SCORE
                real = batch[2][i] >= 0
                self.detections.add(
                    decoded["boxes"][i][keep].cpu().numpy(),
                    decoded["scores"][i][keep].cpu().numpy(),
                    decoded["labels"][i][keep].cpu().numpy(),
                    batch[1][i][real].numpy(),
                    batch[2][i][real].numpy(),
                )
        if self.has_image:
            if image is None:
                raise InvalidInputError("a pipeline declared to make an image returned none")
            psnr, ssim = image_quality(image, target)
            self.psnr += psnr.tolist()
            self.ssim += ssim.tolist()

    def result(self) -> dict[str, float | None]:
        """{metric: value}; image metrics None for a pipeline without an image."""
        out: dict[str, float | None] = {}
        if self.task == "classification":
            out["top1"] = self.correct / self.total if self.total else None
            if self.top5:
                out["top5"] = self.correct5 / self.total if self.total else None
            if self.groups is not None:
                hits = np.concatenate(self.hits) if self.hits else np.zeros(0, bool)
                if len(hits) != len(self.groups):
                    raise InvalidInputError(f"{len(hits)} images scored but {len(self.groups)} groups given")
                out["top1_low"], out["top1_high"] = bootstrap_interval(hits, self.groups)
        elif self.task == "detection":
            out["map50"] = self.detections.mean_average_precision(0.5)
            out["map50_95"] = map_over_thresholds(self.detections)
        has = self.has_image and bool(self.psnr)
        out["psnr"] = float(np.mean(self.psnr)) if has else None
        out["ssim"] = float(np.mean(self.ssim)) if has else None
        return out


def spread(values: list[float | None]) -> tuple[float | None, float | None]:
    """(mean, sample standard deviation) over seeds; std None for one seed, both None when
    any value is None."""
    if not values or any(v is None for v in values):
        return None, None
    array = np.asarray(values, np.float64)
    return float(array.mean()), (float(array.std(ddof=1)) if array.size > 1 else None)
