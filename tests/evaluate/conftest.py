"""Tiny checkpoints and data for the evaluation tests: untrained narrow models saved with
``save_checkpoint`` (as a training run would save them) and a few 32x32 / 64x64 images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edge_isp.model.registry import create_model
from edge_isp.train.checkpoint import save_checkpoint
from edge_isp.train.config import load_config
from tests.tiny_data import COLOURS, make_classification, make_detection

CLASS_NAMES = list(COLOURS)
STAGE_OF_ROLE = {"head": "head", "baseline": "baseline", "isp": "isp", "raw": "joint", "joint": "joint",
                 "noansc": "joint"}  # fmt: skip
MODEL_OF_ROLE = {"head": "dp_s", "baseline": "dp_s", "isp": "dp_s", "raw": "raw", "joint": "dp_s",
                 "noansc": "dp_s_noansc"}  # fmt: skip
RUN_FOLDER = {"head": "head", "baseline": "baseline", "isp": "isp", "raw": "joint-raw", "joint": "joint",
              "noansc": "joint-noansc"}  # fmt: skip


def make_checkpoint(
    path: Path,
    role: str,
    task: str,
    *,
    light_range: tuple[float, float] = (2.0, 200.0),
    seed: int = 0,
    class_names: list[str] | None = None,
    overrides: tuple[str, ...] = (),
    isp: str | None = None,
) -> Path:
    """A checkpoint as the training stage of ``role`` writes it, of an untrained narrow model
    (``overrides``: more ``--set`` strings for its training config; ``isp``: the registry's ISP
    part of the model's name instead of the role's, e.g. ``dpnh_s``)."""
    suffix = {"classification": "cls", "detection": "det"}[task]
    name = f"{isp or MODEL_OF_ROLE[role]}_{'rec' if role == 'isp' else suffix}"
    class_names = class_names or CLASS_NAMES
    torch.manual_seed(seed)
    model = create_model(name, num_classes=len(class_names), pretrained_backbone=False, width_mult=0.35)
    size = [32, 32] if task == "classification" else [64, 64]
    config = load_config(None, overrides=[f"model.name={name}", f"sensor.light_range=[{light_range[0]}, "
                                          f"{light_range[1]}]", f"data.size={size}", *overrides])  # fmt: skip
    state = {
        "stage": STAGE_OF_ROLE[role],
        "model_config": model.config.to_dict(),
        "train_config": config.to_dict(),
        "class_names": class_names,
        "model": model.state_dict(),
    }
    save_checkpoint(path, state)
    return path


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: tiny CPU work on a shared 2-core machine runs faster so."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def cls_folder(tmp_path_factory) -> Path:
    return make_classification(tmp_path_factory.mktemp("cls") / "test", per_class=3)


@pytest.fixture(scope="session")
def det_json(tmp_path_factory) -> Path:
    return make_detection(tmp_path_factory.mktemp("det"), "test", count=3)


@pytest.fixture(scope="session")
def cls_runs(tmp_path_factory) -> Path:
    """runs/classification/<folder>/best.pt for every role but ``noansc`` (left missing)."""
    runs = tmp_path_factory.mktemp("runs")
    for role in ("head", "baseline", "isp", "raw", "joint"):
        make_checkpoint(runs / "classification" / RUN_FOLDER[role] / "best.pt", role, "classification")
    return runs


@pytest.fixture(scope="session")
def checkpoint_factory():
    """``checkpoint_factory(path, role, task, light_range=..., seed=...)``: see :func:`make_checkpoint`."""
    return make_checkpoint
