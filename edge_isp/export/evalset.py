"""Evaluation and calibration images at the model's size, and raw simulated from them.

The export measures every precision on the same inputs: clean images from an evaluation set
(a data set built by ``edge-isp data build``, an image folder, or COCO JSON) resized to the
model's input size, simulated through a sensor profile at each light level with a fixed seed
per level, so FP32, FP16 and INT8 (and every variant of a sensitivity search) see identical
raw frames and noise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.contract.model_input import live_preprocessor
from edge_isp.data.builtin import MANIFEST, builtin_dataset
from edge_isp.data.folders import CocoDetectionDataset, ImageFolderDataset
from edge_isp.data.real_build import real_set_dir
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile

LIGHT_UNITS = ("lux", "electrons")


@dataclasses.dataclass(frozen=True)
class LightLevel:
    """One light level: as the user gave it (``value`` in ``unit``) and in photo-electrons at white."""

    value: float
    unit: str
    electrons: float

    @property
    def label(self) -> str:
        return f"{self.value:g} {self.unit}" if self.unit == "lux" else f"{self.value:g} e-"


def light_levels(profile: Any, values: Sequence[float], unit: str) -> list[LightLevel]:
    """``values`` in ``unit`` ("lux" or "electrons") -> :class:`LightLevel` via ``profile``."""
    if unit not in LIGHT_UNITS:
        raise InvalidInputError(f"light unit must be one of {', '.join(LIGHT_UNITS)}, got {unit!r}")
    values = [float(v) for v in values]
    if not values or not all(np.isfinite(v) and v > 0 for v in values):
        raise InvalidInputError(f"light levels must be a non-empty list of positive numbers, got {values}")
    if unit == "electrons":
        return [LightLevel(v, unit, v) for v in values]
    return [LightLevel(v, unit, profile.electrons_at_white(v)) for v in values]


@dataclasses.dataclass
class EvalImages:
    """Clean images at the model's size and their targets.

    Attributes:
        images: (N, 3, H, W) uint8 RGB.
        targets: classification: (N,) int64 labels; detection: a list of N (boxes (M, 4)
            float32 xyxy pixels at the model's size, labels (M,) int64).
        class_names: the data set's classes.
        task: "classification" or "detection".
    """

    images: np.ndarray
    targets: Any
    class_names: list[str]
    task: str

    def __len__(self) -> int:
        return int(self.images.shape[0])


def open_dataset(
    path: str | Path,
    task: str,
    split: str = "val",
    images_dir: str | Path | None = None,
    *,
    teacher: dict[str, Any] | None = None,
    input_size: tuple[int, int] | None = None,
    raw_scale: int = 1,
) -> Any:
    """A data set for ``task``: a built data set's folder (its ``split``), an image folder of
    class folders (classification), a COCO JSON file (detection), or a real set (``edge-isp
    data build --real``, unlabelled) labelled by ``teacher``, the ``[teacher]`` the model was
    distilled from (its metadata records it), answering as training did on the picture of a
    model whose raw is ``input_size`` (width, height) at ``raw_scale`` times the picture."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"evaluation data {path} does not exist")
    if task not in ("classification", "detection"):
        raise InvalidInputError(f"only classification and detection models have an accuracy, got a {task} model")
    if real_set_dir(path, task) is not None:
        # The teacher's answers come from the training side (torch); the recorded-frames
        # calibration feed, which imports this module, must run without it.
        from edge_isp.train.datasets import open_real_eval_data

        picture = None if input_size is None else (input_size[0] // raw_scale, input_size[1] // raw_scale)
        return open_real_eval_data(path, task, split, teacher, picture, raw_scale)
    if (path / MANIFEST).is_file():
        return builtin_dataset(path, task, split)
    if task == "classification":
        if not path.is_dir():
            raise InvalidInputError(f"{path}: classification data must be a folder of class folders (CLASS/IMAGE.png)")
        return ImageFolderDataset(path)
    if path.suffix.lower() != ".json":
        raise InvalidInputError(f"{path}: detection data must be a COCO JSON file or a built data set's folder")
    return CocoDetectionDataset(path, images_dir=images_dir)


def load_images(dataset: Any, task: str, input_size: tuple[int, int], limit: int | None = None) -> EvalImages:
    """Read (up to ``limit``, spread over the set) images of ``dataset`` resized to ``input_size``
    (width, height); detection boxes are scaled alike."""
    # The training side's data pipeline imports torch; the recorded-frames calibration feed,
    # which imports this module, must run without it.
    from edge_isp.train.batches import TaskDataset

    items = TaskDataset(dataset, task, size=tuple(input_size), limit=limit)
    if len(items) == 0:
        raise InvalidInputError("the evaluation data holds no images")
    records = [items[i] for i in range(len(items))]
    images = np.stack([r[0].numpy() for r in records])
    if task == "classification":
        targets: Any = np.array([r[1] for r in records], np.int64)
    else:
        targets = [(r[1].numpy(), r[2].numpy()) for r in records]
    return EvalImages(images, targets, list(items.class_names), task)


def check_class_names(data_names: Sequence[str], model_names: Sequence[str], origin: str) -> None:
    """The evaluation data must use the model's classes in the model's order."""
    if list(data_names) != list(model_names):
        raise InvalidInputError(
            f"{origin}: the data's classes {list(data_names)} differ from the model's {list(model_names)}; "
            "evaluate on data with the classes the model was trained on"
        )


def simulate_frames(
    images: np.ndarray, profile: SensorProfile, electrons: float, seed: int = 0, chunk: int = 16
) -> list[RawFrame]:
    """The RawFrames a camera with ``profile`` records of (N, 3, H, W) uint8 ``images`` at
    ``electrons`` photo-electrons at white (the torch simulator; the exposure it chose is each
    frame's digital gain). The same ``seed`` gives the same frames."""
    # The simulator is torch; the recorded-frames calibration feed, which imports this module,
    # must run without it.
    import torch

    from edge_isp.sensor.simulate import simulate

    generator = torch.Generator().manual_seed(seed)
    frames: list[RawFrame] = []
    for start in range(0, images.shape[0], chunk):
        srgb = torch.from_numpy(np.ascontiguousarray(images[start : start + chunk])).float().div(255.0)
        frames += simulate(srgb, profile, float(electrons), generator=generator).to_frames(profile)
    return frames


def simulate_inputs(
    images: np.ndarray, profile: SensorProfile, electrons: float, seed: int = 0, chunk: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """The model inputs of :func:`simulate_frames` at the images' own size, through the live
    preprocessing as ``edge-isp run`` sets it for its simulated camera: the frames keep the
    simulator's exposure (white at 1.0, as in training); auto-exposure is for cameras.

    Returns ``raw`` (N, 4, H/2, W/2) and ``noise`` (N, 2), float32.
    """
    preprocess = live_preprocessor(profile, (int(images.shape[3]), int(images.shape[2])), auto_exposure=False)
    inputs = [preprocess(frame) for frame in simulate_frames(images, profile, electrons, seed, chunk)]
    return np.concatenate([i.raw for i in inputs]), np.concatenate([i.noise for i in inputs])
