"""Tiny data sets for the training tests: a few 32x32 (classification) and 64x64
(detection) images written to a temporary folder, so a run takes seconds on a CPU."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edge_isp.train.config import TrainConfig, load_config

COLOURS = {"red": (0.85, 0.15, 0.1), "blue": (0.1, 0.2, 0.85)}


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def make_classification(root: Path, per_class: int, size: int = 32, seed: int = 0) -> Path:
    """root/CLASS/NNN.png: noisy images dominated by the class colour."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        for i in range(per_class):
            image = np.asarray(colour) * rng.uniform(0.6, 1.0) + rng.normal(0, 0.08, (size, size, 3))
            _write(root / name / f"{i:03d}.png", (np.clip(image, 0, 1) * 255).astype(np.uint8))
    return root


def make_detection(root: Path, split: str, count: int, size: int = 64, seed: int = 0) -> Path:
    """root/SPLIT/images/*.png + root/SPLIT.json (COCO): 1-2 coloured squares on grey."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for i in range(count):
        image = np.full((size, size, 3), 0.45) + rng.normal(0, 0.03, (size, size, 3))
        for _ in range(int(rng.integers(1, 3))):
            label = int(rng.integers(0, 2))
            side = int(rng.integers(14, 26))
            x, y = (int(v) for v in rng.integers(0, size - side, 2))
            image[y : y + side, x : x + side] = list(COLOURS.values())[label]
            annotations.append({
                "id": len(annotations) + 1, "image_id": i + 1, "category_id": label + 1,
                "bbox": [x, y, side, side], "area": side * side, "iscrowd": 0,
            })  # fmt: skip
        name = f"{i:03d}.png"
        _write(root / split / "images" / name, (np.clip(image, 0, 1) * 255).astype(np.uint8))
        images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(COLOURS)]
    path = root / f"{split}.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core machine, OpenMP threads that spin-wait on
    each other make tiny CPU steps many times slower. Restored after each module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def cls_data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cls")
    return {"train": make_classification(root / "train", 8), "val": make_classification(root / "val", 3, seed=1)}


@pytest.fixture(scope="session")
def det_data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("det")
    return {"train": make_detection(root, "train", 8), "val": make_detection(root, "val", 4, seed=1)}


@pytest.fixture(scope="session")
def tiny_config():
    """``tiny_config(data, out, *overrides)``: see :func:`make_tiny_config`."""
    return make_tiny_config


def make_tiny_config(data: dict[str, Path], out: Path, *overrides: str) -> TrainConfig:
    """A config for a few fast CPU steps on ``data``, written to ``out``."""
    base = [
        f"data.train={data['train']}",
        f"data.val={data['val']}",
        "data.batch_size=4",
        "data.num_workers=0",
        "model.pretrained_backbone=false",
        "model.width_mult=0.35",
        "run.epochs=2",
        "run.device=cpu",
        "run.progress=false",
        f"run.out={out}",
        "sensor.light_unit=electrons",
        "sensor.light_range=[20.0, 200.0]",
        "sensor.val_light=[50.0]",
    ]
    return load_config(None, overrides=[*base, *overrides])
