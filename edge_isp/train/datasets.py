"""Open the training and validation data a config names, with errors that say how to get it.

``data.root`` is a data set built by ``edge-isp data build`` (its ``classification/`` or
``detection/`` splits ``train`` and ``val``); ``data.train``/``data.val`` name a user's own
data instead: an image folder (``CLASS_NAME/IMAGE.png``) for classification, a COCO JSON
file for detection. Validation keeps the training set's class order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from edge_isp.data.builtin import builtin_dataset
from edge_isp.data.folders import CocoDetectionDataset, ImageFolderDataset
from edge_isp.data.real_build import real_set_dir
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.isp.colour import resize_image
from edge_isp.teacher.cache import ClassificationAnswers, DetectionAnswers, cache_key, ensure_cache, load_answers
from edge_isp.teacher.classifiers import open_classifier_teacher
from edge_isp.teacher.detectors import TiledDetector, open_detection_teacher
from edge_isp.train.batches import TaskDataset, scaled_size
from edge_isp.train.config import DataSection, TeacherSection, TrainConfig
from edge_isp.train.teacher_data import (
    MANIFEST,
    DistillClassification,
    DistillDetection,
    RealImages,
    RealSplit,
    TeacherLabelled,
)

BUILD_HINT = (
    "build the demo data set with `edge-isp data build --out data/demo` (needs the Debian packages "
    "dataset-fashion-mnist and opencv-doc), or point data.train and data.val at your own data "
    "(an image folder CLASS_NAME/IMAGE.png for classification, a COCO JSON file for detection)"
)


def data_task(data: DataSection, model_task: str) -> str:
    """The kind of data a model of ``model_task`` trains on: its own task, or for
    reconstruction ``data.task`` (default classification images)."""
    if model_task in ("classification", "detection"):
        if data.task is not None and data.task != model_task:
            raise InvalidInputError(
                f"config key 'data.task' is {data.task!r} but the model is a {model_task} model; "
                "data.task only chooses the images of the isp (reconstruction) stage"
            )
        return model_task
    if data.task is not None:
        return data.task
    if data.root is None and data.train is not None and Path(data.train).suffix.lower() == ".json":
        return "detection"
    return "classification"


def _open_builtin(root: Path, task: str, split: str):
    if not root.exists():
        raise MissingFileError(f"training data {root} (data.root) does not exist: {BUILD_HINT}")
    return builtin_dataset(root, task, split)


def _open_path(path: str, images: str | None, task: str, key: str, class_names: list[str] | None):
    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"{key} = {path!r} does not exist: {BUILD_HINT}")
    if task == "classification":
        if not p.is_dir():
            raise InvalidInputError(
                f"{key} = {path!r} must be an image folder (CLASS_NAME/IMAGE.png) for classification"
            )
        return ImageFolderDataset(p, class_names=class_names)
    if p.suffix.lower() != ".json":
        raise InvalidInputError(f"{key} = {path!r} must be a COCO JSON file for detection")
    dataset = CocoDetectionDataset(p, images_dir=images)
    if class_names is not None and list(dataset.class_names) != list(class_names):
        raise InvalidInputError(
            f"{key} = {path!r} has categories {dataset.class_names}, but the training data has {class_names}; "
            "both must list the same categories"
        )
    return dataset


def open_datasets(data: DataSection, task: str, raw_scale: int = 1) -> tuple[TaskDataset, TaskDataset, list[str]]:
    """(train, val, class names) for ``task`` ("classification" or "detection" images), at
    ``raw_scale`` times ``data.size`` (:class:`~edge_isp.train.batches.TaskDataset`)."""
    if data.root is not None and (data.train is not None or data.val is not None):
        raise InvalidInputError("set either data.root (a built data set) or data.train and data.val, not both")
    if data.root is not None:
        root = Path(data.root)
        train = _open_builtin(root, task, "train")
        val = _open_builtin(root, task, "val")
    elif data.train is not None and data.val is not None:
        train = _open_path(data.train, data.train_images, task, "data.train", None)
        val = _open_path(data.val, data.val_images, task, "data.val", list(train.class_names))
    else:
        missing = "data.val" if data.train is not None else "data.root (or data.train and data.val)"
        raise InvalidInputError(f"no {'validation' if data.train else 'training'} data: set {missing}; {BUILD_HINT}")
    class_names = list(train.class_names)
    if len(train) == 0 or len(val) == 0:
        empty = "training" if len(train) == 0 else "validation"
        raise InvalidInputError(f"the {empty} data holds no images: {BUILD_HINT}")
    return (
        TaskDataset(train, task, data.size, data.train_limit, raw_scale),
        TaskDataset(val, task, data.size, data.val_limit, raw_scale),
        class_names,
    )


def teacher_identity(teacher: TeacherSection) -> dict:
    """What makes a teacher's answers: its settings, and a model file's size and sha256."""
    identity = {"model": teacher.model, "decode": teacher.decode, "input_size": teacher.input_size}
    if teacher.tiles is not None:
        identity["tiles"] = teacher.tiles
    if teacher.model is not None and Path(teacher.model).is_file():
        path = Path(teacher.model)
        identity.update(bytes=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    return identity


def _teacher_factory(teacher: TeacherSection, task: str):
    if task == "classification":
        return lambda: open_classifier_teacher(teacher.model, teacher.input_size)

    def make():
        detector = open_detection_teacher(teacher.model, teacher.decode, teacher.input_size)
        return detector if teacher.tiles is None else TiledDetector(detector, tuple(teacher.tiles))

    return make


def teacher_answers(
    folder: Path,
    teacher: TeacherSection,
    task: str,
    splits: dict[str, RealSplit],
    *,
    show: bool = True,
    via_size: tuple[int, int] | None = None,
) -> dict[str, ClassificationAnswers | DetectionAnswers]:
    """The ``[teacher]``'s answers on each of ``splits`` of the real set ``folder``, computed
    into its cache where missing (``teacher.cache``, default ``FOLDER/teacher``).

    ``via_size`` (classification): the teacher sees each image first resized to that (width,
    height), then to its own ``teacher.input_size``, as a half-resolution student's picture is
    made (the image at twice ``data.size``, from which its raw is simulated, area-averaged by 2:
    for an input size of ``data.size`` the very same uint8 picture). It is part of the cache key.
    """
    cache_dir = Path(teacher.cache) if teacher.cache else folder / "teacher"
    identity = teacher_identity(teacher)
    if via_size is not None and task == "classification":
        identity["via_size"] = [int(v) for v in via_size]

        def reader(split: RealSplit):
            return lambda i: resize_image(split.image(i), tuple(via_size))

        readers = {name: (reader(split), len(split)) for name, split in splits.items()}
    else:
        readers = {name: (split.image, len(split)) for name, split in splits.items()}
    key = cache_key(identity, folder / MANIFEST)
    describe = {"teacher": identity, "set": str(folder)}
    cached = ensure_cache(cache_dir, key, task, _teacher_factory(teacher, task), readers, describe, show=show)
    return {name: load_answers(cached, name) for name in splits}


def open_real_eval_data(
    data: str | Path,
    task: str,
    split: str,
    teacher: dict[str, Any] | None,
    size: tuple[int, int] | None,
    raw_scale: int = 1,
) -> TeacherLabelled:
    """Split ``split`` of the real set under ``data``, labelled by ``teacher`` (the
    ``[teacher]`` section a checkpoint or an exported model learnt from; its answers cached
    like training's), so a score is agreement with the teacher; with ``raw_scale`` 2 on the
    picture made as training makes it (through twice ``size``, the picture's size)."""
    if teacher is None:
        raise InvalidInputError(
            f"{data} is a real set without labels: evaluating on it needs a model trained with a [teacher] "
            "(its checkpoint, or an ONNX file exported from one, which records the teacher)"
        )
    section = TrainConfig.from_dict({"teacher": teacher}, "the model's [teacher]").teacher
    folder = real_set_dir(data, task)
    if folder is None:
        raise MissingFileError(f"{data} holds no real {task} set (real-{task}/manifest.json)")
    via = None if raw_scale == 1 or size is None else scaled_size(size, raw_scale)
    answers = teacher_answers(folder, section, task, {split: RealSplit(folder, split)}, via_size=via)[split]
    aspect = size[0] / size[1] if size else None
    return TeacherLabelled(RealSplit(folder, split), answers, section.score_threshold, section.classes, aspect)


def open_real_datasets(config: TrainConfig, task: str, image_task: str, *, show: bool = True, raw_scale: int = 1):
    """(train, val, class names) of the real ``image_task`` set under ``data.root``, labelled
    by ``[teacher]`` (answers cached on first use); ``task`` "reconstruction" reads the
    images alone. Images come at ``raw_scale`` times ``data.size`` (a half-resolution
    model's raw; boxes stay in ``data.size`` pixels), and a classification teacher answers on
    the picture made from them (:func:`teacher_answers`, ``via_size``)."""
    data, teacher = config.data, config.teacher
    if data.train_limit is not None or data.val_limit is not None:
        raise InvalidInputError("data.train_limit and data.val_limit apply to built garment sets, not to real sets")
    folder = real_set_dir(data.root, image_task)
    if folder is None:
        raise MissingFileError(
            f"data.root = {data.root!r} holds no real {image_task} set (real-{image_task}/manifest.json); "
            "build one with `edge-isp data build --real` (or --images DIR / --video FILE)"
        )
    splits = {name: RealSplit(folder, name) for name in ("train", "val")}
    if task == "reconstruction":
        return (
            RealImages(splits["train"], data.size, raw_scale),
            RealImages(splits["val"], data.size, raw_scale),
            ["image"],
        )
    if not teacher.enabled:
        raise InvalidInputError(
            f"{folder} has no labels: training a {task} model on it needs a [teacher] section (teacher.model)"
        )
    via = scaled_size(data.size, raw_scale) if raw_scale > 1 else None
    answers = teacher_answers(folder, teacher, task, splits, show=show, via_size=via)
    if task == "classification":
        train = DistillClassification(splits["train"], answers["train"], data.size, raw_scale)
        val = DistillClassification(splits["val"], answers["val"], data.size, raw_scale)
    else:
        common = {
            "size": data.size,
            "threshold": teacher.score_threshold,
            "classes": teacher.classes,
            "raw_scale": raw_scale,
        }
        train = DistillDetection(splits["train"], answers["train"], random_crops=True, seed=config.run.seed, **common)
        val = DistillDetection(splits["val"], answers["val"], **common)
    return train, val, list(train.class_names)
