"""Tiny data sets for the training tests: a few 32x32 (classification) and 64x64
(detection) images written to a temporary folder, so a run takes seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edge_isp.train.config import TrainConfig, load_config
from tests.tiny_data import make_classification, make_detection


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
