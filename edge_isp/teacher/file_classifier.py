"""A classification teacher from a user's model file, its outputs read as plain logits.

``decode = "logits"``: the model (ONNX, TFLite or anything OpenCV DNN reads) takes one RGB
image and gives one output of C values, the logits (or scores) of C classes named in
``MODEL.labels.txt`` (``class_0``... when there is none). The input is the image resized to
the model's input size (or ``input_size`` when the file does not state it; 224x224 when
neither does), RGB, NCHW, on [0, 1]; ``MODEL.preprocess.json`` may say otherwise:
``{"range": [-1, 1]}``, or ``{"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}``
(applied to the [0, 1] values). Same interface as
:class:`edge_isp.teacher.classifiers.TorchClassifierTeacher`: ``class_names``,
``input_size``, ``logits(images) -> (N, C)``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_isp.errors import InvalidInputError
from edge_isp.teacher.model_file import ModelRunner, mismatch, nchw, read_labels

DEFAULT_SIZE = (224, 224)


@dataclasses.dataclass
class FileClassifierTeacher:
    """A model file giving logits; ``mean``/``std`` apply to the input after scaling to ``value_range``."""

    runner: ModelRunner
    class_names: tuple[str, ...] | None
    input_size: tuple[int, int]
    value_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def _one(self, image: np.ndarray) -> np.ndarray:
        x = nchw(image, self.input_size, *self.value_range)
        x = (x - np.float32(self.mean).reshape(1, 3, 1, 1)) / np.float32(self.std).reshape(1, 3, 1, 1)
        outputs = self.runner.run(x.astype(np.float32))
        n = len(self.class_names) if self.class_names is not None else None
        out = outputs[0] if len(outputs) == 1 else None
        if out is None or out.size != max(out.shape, default=1) or (n is not None and out.size != n):
            expected = f"one output of {n} logits (one per class in the labels file)" if n else "one output of logits"
            raise mismatch(self.runner.path, "logits", expected + " for one image", outputs)
        if self.class_names is None:
            self.class_names = tuple(f"class_{i}" for i in range(out.size))
        return out.reshape(-1).astype(np.float32)

    def logits(self, images: Sequence[np.ndarray], batch: int = 32) -> np.ndarray:
        """RGB uint8 images (H, W, 3), any sizes -> logits (N, C) float32 (one image per run)."""
        rows = [self._one(image) for image in images]
        if not rows:
            return np.zeros((0, len(self.class_names or ())), np.float32)
        return np.stack(rows)


def _preprocess(model: Path) -> dict:
    path = model.with_suffix(".preprocess.json")
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path} is not valid JSON: {exc}") from None
    unknown = set(data) - {"range", "mean", "std"}
    ok = not unknown and all(len(data.get(k, (0, 0, 0))) == n for k, n in (("range", 2), ("mean", 3), ("std", 3)))
    if not ok or any(v == 0 for v in data.get("std", (1,))):
        raise InvalidInputError(
            f"{path}: expected keys range [low, high], mean [r, g, b], std [r, g, b] (std non-zero), got {data}"
        )
    out = {}
    if "range" in data:
        out["value_range"] = tuple(float(v) for v in data["range"])
    for key in ("mean", "std"):
        if key in data:
            out[key] = tuple(float(v) for v in data[key])
    return out


def open_logits_teacher(model: str | Path, input_size: tuple[int, int] | None = None) -> FileClassifierTeacher:
    """The ``decode = "logits"`` teacher of ``model``; the first image checks the output shape."""
    path = Path(model)
    runner = ModelRunner(path)
    shape = runner.input_shape()
    size = tuple(input_size) if input_size is not None else None
    if size is None and shape is not None and all(isinstance(d, int) and d > 0 for d in shape[2:]):
        size = (int(shape[3]), int(shape[2]))
    teacher = FileClassifierTeacher(
        runner, read_labels(path, required=False), size or DEFAULT_SIZE, **_preprocess(path)
    )
    teacher.logits([np.zeros((teacher.input_size[1], teacher.input_size[0], 3), np.uint8)])
    return teacher
