"""A teacher's model file: loading and running it, its class names, and its errors.

``.tflite`` files run on LiteRT (Google's TFLite runtime), ``.onnx`` on ONNX Runtime, anything
else on OpenCV DNN (see :class:`ModelRunner` for why not OpenCV for TFLite). Class names come
from ``MODEL.labels.txt`` beside the file, one per line. A file that does not load, or whose
outputs do not fit the decoding it was given, raises :class:`TeacherLoadError`, one paragraph
naming the file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from edge_isp.errors import InvalidInputError, MissingFileError, require
from edge_isp.isp.colour import resize_image


class TeacherLoadError(InvalidInputError):
    """A teacher file that does not load, or whose outputs do not match its decoding."""


class ModelRunner:
    """A model file: ``.tflite`` run by LiteRT (Google's TFLite runtime, ``ai-edge-litert``),
    ``.onnx`` by ONNX Runtime, anything else by OpenCV DNN.

    Not OpenCV DNN for TFLite: its 5.1 importer scrambles the order of the Objectron SSD's box
    tensor (class scores agree with LiteRT to 2e-5, box regressions differ by up to 82), so
    the boxes would land on the wrong anchors; ``tests/teacher`` checks that the two agree on the
    class scores and that LiteRT's boxes land on the people of a held-out frame.

    ``run(x)`` takes one NCHW float32 input and returns the outputs as arrays.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise MissingFileError(f"teacher model file {self.path} does not exist")
        self.session = self.net = self.interpreter = None
        suffix = self.path.suffix.lower()
        if suffix == ".tflite":
            litert = require("ai_edge_litert.interpreter", "teacher", "running a TFLite teacher")
        try:
            if suffix == ".tflite":
                self.interpreter = litert.Interpreter(model_path=str(self.path))
                self.interpreter.allocate_tensors()
            elif suffix == ".onnx" and importlib.util.find_spec("onnxruntime") is not None:
                import onnxruntime

                self.session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
            else:
                self.net = cv2.dnn.readNet(str(self.path))
        except Exception as exc:
            raise TeacherLoadError(
                f"teacher model file {self.path} does not load ({type(exc).__name__}: {str(exc).strip()[:300]}); "
                "expected a TFLite file (.tflite, run by LiteRT), an ONNX file (.onnx, run by ONNX Runtime) or a "
                "model OpenCV DNN reads (.pb, .caffemodel, ...)"
            ) from None
        if self.net is not None and self.net.empty():
            raise TeacherLoadError(f"teacher model file {self.path}: OpenCV DNN read it but found no network in it")

    def input_shape(self) -> tuple | None:
        """The input's (N, C, H, W) when the file states it, else None."""
        if self.session is not None:
            return tuple(self.session.get_inputs()[0].shape)
        if self.interpreter is not None:
            n, h, w, c = (int(v) for v in self.interpreter.get_input_details()[0]["shape"])
            return (n, c, h, w)
        return None

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        try:
            if self.interpreter is not None:
                detail = self.interpreter.get_input_details()[0]
                self.interpreter.set_tensor(detail["index"], np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
                self.interpreter.invoke()
                outputs = self.interpreter.get_output_details()
                return [np.array(self.interpreter.get_tensor(d["index"])) for d in outputs]
            if self.session is not None:
                name = self.session.get_inputs()[0].name
                return [np.asarray(o) for o in self.session.run(None, {name: x})]
            self.net.setInput(x)
            return [np.asarray(o) for o in self.net.forward(self.net.getUnconnectedOutLayersNames())]
        except Exception as exc:
            raise TeacherLoadError(
                f"teacher model file {self.path} fails on an input of shape {x.shape} "
                f"({type(exc).__name__}: {str(exc).strip()[:300]})"
            ) from None


def read_labels(model: Path, required: bool) -> tuple[str, ...] | None:
    """Class names from ``MODEL.labels.txt`` (one per line), or None when absent and not required."""
    path = model.with_suffix(".labels.txt")
    if not path.is_file():
        if required:
            raise MissingFileError(f"teacher model {model} needs its class names in {path} (one per line)")
        return None
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if not names:
        raise InvalidInputError(f"{path} holds no class names")
    return names


def mismatch(path: Path, decode: str, expected: str, outputs: list[np.ndarray]) -> TeacherLoadError:
    """The error for a model whose outputs do not fit its decoding."""
    shapes = ", ".join(str(tuple(o.shape)) for o in outputs)
    return TeacherLoadError(
        f"teacher model file {path} does not match decode = {decode!r}: expected {expected}, the model gives "
        f"output(s) of shape {shapes}; choose the decoding that matches the model (detection: ssd, yolo; "
        "classification: logits)"
    )


def nchw(image: np.ndarray, size: tuple[int, int], low: float, high: float) -> np.ndarray:
    """RGB uint8 (H, W, 3) resized to ``size`` (width, height) -> (1, 3, h, w) float32 in [low, high]."""
    x = resize_image(image, size).astype(np.float32) * ((high - low) / 255.0) + low
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])
