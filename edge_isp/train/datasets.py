"""Open the training and validation data a config names, with errors that say how to get it.

``data.root`` is a data set built by ``edge-isp data build`` (its ``classification/`` or
``detection/`` splits ``train`` and ``val``); ``data.train``/``data.val`` name a user's own
data instead: an image folder (``CLASS_NAME/IMAGE.png``) for classification, a COCO JSON
file for detection. Validation keeps the training set's class order.
"""

from __future__ import annotations

from pathlib import Path

from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.train.batches import TaskDataset
from edge_isp.train.config import DataSection

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
    from edge_isp.data.builtin import builtin_dataset

    if not root.exists():
        raise MissingFileError(f"training data {root} (data.root) does not exist: {BUILD_HINT}")
    return builtin_dataset(root, task, split)


def _open_path(path: str, images: str | None, task: str, key: str, class_names: list[str] | None):
    from edge_isp.data.folders import CocoDetectionDataset, ImageFolderDataset

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


def open_datasets(data: DataSection, task: str) -> tuple[TaskDataset, TaskDataset, list[str]]:
    """(train, val, class names) for ``task`` ("classification" or "detection" images)."""
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
        TaskDataset(train, task, data.size, data.train_limit),
        TaskDataset(val, task, data.size, data.val_limit),
        class_names,
    )
