"""Real image sets labelled by a teacher: what the distillation stages train on.

A real set (``edge-isp data build --real`` or ``--images``/``--video``) is a folder with a
``manifest.json`` listing its images by split; it has no labels. Here each split is paired
with the teacher's cached answers (:mod:`edge_isp.teacher.cache`):

- classification items ``(image (3, H, W) uint8, label, logits (2, C) float32)``: the label is
  the teacher's top-1 class on the clean image (so top-1 accuracy is agreement with the
  teacher), the logits its answers on the image and on the mirror image;
- detection items ``(image, boxes (K, 4) float32 xyxy pixels, labels (K,) int64)``: the
  teacher's boxes above ``teacher.score_threshold``, of ``teacher.classes`` (renumbered in
  that order). Training images are random crops (scale and position) of the stored frame,
  a new one each epoch, with the cached boxes cropped alike; validation and test see the
  largest centred crop of the training aspect ratio.

With ``raw_scale`` 2 (a half-resolution model) the images come at twice ``size`` (the raw is
simulated from them; the picture is their 2x2 area average, see ``edge_isp.train.batches``)
and boxes stay in ``size`` pixels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from edge_isp.data.real_build import MANIFEST
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.isp.colour import resize_image
from edge_isp.teacher.cache import ClassificationAnswers, DetectionAnswers, label_map
from edge_isp.train.batches import scaled_size

# A cropped box is kept when at least this share of its area stays inside the crop.
MIN_VISIBLE = 0.5
CROP_SCALE = (0.6, 1.0)


class RealSplit:
    """The images of one split of a real set, read from its manifest."""

    def __init__(self, folder: str | Path, split: str) -> None:
        self.folder = Path(folder)
        manifest = self.folder / MANIFEST
        if not manifest.is_file():
            raise MissingFileError(f"{manifest} does not exist: build the real set with `edge-isp data build --real`")
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            items = data["items"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"{manifest} is not a real-set manifest (needs a list 'items'): {exc}") from None
        chosen = [item for item in items if item.get("split") == split]
        self.files = [self.folder / item["file"] for item in chosen]
        # The photograph (or video) each image was cut from: the unit a bootstrap resamples.
        self.groups = [str(item.get("photo_id", item["file"])) for item in chosen]
        if not self.files:
            raise InvalidInputError(f"{manifest} lists no {split!r} images")
        self.split = split
        self.manifest = manifest

    def __len__(self) -> int:
        return len(self.files)

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as RGB uint8 (H, W, 3)."""
        bgr = cv2.imread(str(self.files[i]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InvalidInputError(f"cannot read image {self.files[i]} of the real set {self.folder}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _check_pairing(split: RealSplit, answers: Any, size: tuple[int, int] | bool | None = False) -> None:
    """A split and its cached answers must match one to one; training also needs a size."""
    if len(answers) != len(split):
        raise InvalidInputError(
            f"the teacher cache holds {len(answers)} answers for the {len(split)} {split.split} images of "
            f"{split.folder}; delete the cache to rebuild it"
        )
    if size is None:
        raise InvalidInputError("training on a real set needs data.size = [width, height]")


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()


class DistillClassification:
    """Classification items of a real split with the teacher's answers (module docstring)."""

    task = "classification"

    def __init__(
        self, split: RealSplit, answers: ClassificationAnswers, size: tuple[int, int] | None, raw_scale: int = 1
    ) -> None:
        _check_pairing(split, answers, size)
        self.split, self.answers, self.size = split, answers, tuple(size)
        self.pixels = scaled_size(self.size, raw_scale)
        self.class_names = list(answers.class_names)
        self.labels = answers.labels

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(i)
        image = resize_image(self.split.image(i), self.pixels)
        return _to_tensor(image), int(self.labels[i]), torch.from_numpy(self.answers.logits[i])


def _aspect_crop(width: int, height: int, aspect: float, scale: float, u: float, v: float) -> tuple[int, ...]:
    """A crop (x0, y0, x1, y1) of ``aspect`` (w/h), ``scale`` times the largest that fits,
    placed at fractions ``u``, ``v`` of the free room."""
    if width / height > aspect:
        crop_h = height * scale
        crop_w = crop_h * aspect
    else:
        crop_w = width * scale
        crop_h = crop_w / aspect
    x0 = u * (width - crop_w)
    y0 = v * (height - crop_h)
    return round(x0), round(y0), round(x0 + crop_w), round(y0 + crop_h)


def crop_boxes(boxes: np.ndarray, crop: tuple[int, ...], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (K, 4) xyxy in the image -> in the crop resized to ``size``; returns them and
    the mask of those kept (at least :data:`MIN_VISIBLE` of the area inside the crop)."""
    x0, y0, x1, y1 = crop
    clipped = np.stack(
        [np.clip(boxes[:, 0], x0, x1), np.clip(boxes[:, 1], y0, y1), np.clip(boxes[:, 2], x0, x1),
         np.clip(boxes[:, 3], y0, y1)], axis=1
    ) if len(boxes) else np.zeros((0, 4), np.float32)  # fmt: skip
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (area > 0) & (inside >= MIN_VISIBLE * np.maximum(area, 1e-9))
    sx, sy = size[0] / (x1 - x0), size[1] / (y1 - y0)
    out = (clipped - np.array([x0, y0, x0, y0], np.float32)) * np.array([sx, sy, sx, sy], np.float32)
    return out[keep].astype(np.float32), keep


class DistillDetection:
    """Detection items of a real split with the teacher's boxes (module docstring).

    Args:
        split: the images.
        answers: the teacher's cached boxes for them.
        size: (width, height) of the training images.
        threshold: ``teacher.score_threshold``.
        classes: teacher class names to keep, in the student's order (empty: all).
        random_crops: draw a crop per item and epoch (training); else the centred crop.
        seed: with the epoch and the index, fixes each random crop (so a resumed run sees
            the same ones).
        raw_scale: images at that many times ``size``, boxes in ``size`` pixels.
    """

    task = "detection"

    def __init__(
        self,
        split: RealSplit,
        answers: DetectionAnswers,
        size: tuple[int, int] | None,
        threshold: float,
        classes: tuple[str, ...] = (),
        random_crops: bool = False,
        seed: int = 0,
        raw_scale: int = 1,
    ) -> None:
        _check_pairing(split, answers, size)
        self.split, self.answers, self.size, self.threshold = split, answers, tuple(size), threshold
        self.pixels = scaled_size(self.size, raw_scale)
        self.keep, self.student_label = label_map(answers.class_names, classes, "teacher.classes")
        self.class_names = [answers.class_names[k] for k in self.keep]
        self.random_crops, self.seed, self.epoch = random_crops, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.split)

    def crop(self, i: int, width: int, height: int) -> tuple[int, ...]:
        aspect = self.size[0] / self.size[1]
        if not self.random_crops:
            return _aspect_crop(width, height, aspect, 1.0, 0.5, 0.5)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        scale, u, v = rng.uniform(*CROP_SCALE), rng.uniform(), rng.uniform()
        return _aspect_crop(width, height, aspect, scale, u, v)

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(i)
        image = self.split.image(i)
        h, w = image.shape[:2]
        crop = self.crop(i, w, h)
        boxes, _, labels = self.answers.of(i, self.threshold, self.keep)
        boxes, kept = crop_boxes(boxes, crop, self.size)
        student_labels = self.student_label[labels[kept]]
        x0, y0, x1, y1 = crop
        pixels = resize_image(image[y0:y1, x0:x1], self.pixels)
        return (
            _to_tensor(pixels),
            torch.from_numpy(boxes.reshape(-1, 4)),
            torch.from_numpy(np.asarray(student_labels, np.int64).reshape(-1)),
        )


class RealImages:
    """The clean images of a real split alone (the isp stage's reconstruction targets):
    items ``(image (3, H, W) uint8, 0)``."""

    task = "classification"

    def __init__(self, split: RealSplit, size: tuple[int, int] | None, raw_scale: int = 1) -> None:
        if size is None:
            raise InvalidInputError("training on a real set needs data.size = [width, height]")
        self.split, self.size, self.class_names = split, tuple(size), ["image"]
        self.pixels = scaled_size(self.size, raw_scale)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(i)
        return _to_tensor(resize_image(self.split.image(i), self.pixels)), 0


class TeacherLabelled:
    """A real split labelled by the teacher, as evaluation reads a data set: numpy items
    ``(image (H, W, 3) uint8, label)`` or ``(image, boxes (K, 4), labels (K,))``, which
    :class:`~edge_isp.train.batches.TaskDataset` resizes. Detection images are first cut to
    the largest centred crop of ``aspect`` (width / height), as validation sees them."""

    def __init__(
        self,
        split: RealSplit,
        answers: ClassificationAnswers | DetectionAnswers,
        threshold: float = 0.5,
        classes: tuple[str, ...] = (),
        aspect: float | None = None,
    ) -> None:
        _check_pairing(split, answers)
        self.split, self.answers, self.aspect = split, answers, aspect
        self.groups = split.groups
        if isinstance(answers, ClassificationAnswers):
            self.class_names, self.labels = list(answers.class_names), answers.labels
            return
        self.threshold = threshold
        self.keep, self.student_label = label_map(answers.class_names, classes, "teacher.classes")
        self.class_names = [answers.class_names[k] for k in self.keep]

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        image = self.split.image(i)
        if isinstance(self.answers, ClassificationAnswers):
            return image, int(self.labels[i])
        h, w = image.shape[:2]
        crop = _aspect_crop(w, h, self.aspect or w / h, 1.0, 0.5, 0.5)
        x0, y0, x1, y1 = crop
        boxes, _, labels = self.answers.of(i, self.threshold, self.keep)
        boxes, kept = crop_boxes(boxes, crop, (x1 - x0, y1 - y0))
        return image[y0:y1, x0:x1], boxes, self.student_label[labels[kept]]
