"""Small models whose answers are known, exported with the edge-isp metadata, and tiny data.

- :func:`export_module`: any torch module with ``forward(raw, noise)`` to an ONNX file that
  carries :class:`ModelMetadata`, so the accuracy and precision code accepts it.
- :class:`ColourClassifier`: logits = (mean of the B plane, mean of the R plane): a blue image
  is class 0, a red one class 1 (the folders' sorted names), right whenever the light is
  bright enough; ``swap=True`` answers the opposite, always wrong.
- ``sensitive_classifier``: a 3-layer network of which only the first layer cannot be
  quantized (its input carries the signal 2000x below a distractor; per-tensor INT8 rounds the
  signal to zero), so a correct sensitivity search keeps exactly that layer in FP32.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edge_isp.contract.metadata import ModelMetadata, set_metadata
from tests.tiny_data import COLOURS, make_classification, write_png

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def export_module(
    module: nn.Module,
    path: Path,
    *,
    packed_hw: tuple[int, int],
    task: str,
    class_names: list[str],
    outputs: list[str],
    batch: int | str = 1,
    precision: str = "fp32",
) -> Path:
    """Export ``module`` with inputs raw (B, 4, h, w), noise (B, 2) and the edge-isp metadata.
    ``batch="batch"`` makes the batch axis dynamic."""
    h, w = packed_hw
    b = 1 if isinstance(batch, str) else batch
    args = (torch.rand(b, 4, h, w), torch.rand(b, 2))
    dynamic = {n: {0: "batch"} for n in ("raw", "noise", *outputs)} if isinstance(batch, str) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(path), opset_version=17, dynamo=False, input_names=["raw", "noise"],
                          output_names=outputs, dynamic_axes=dynamic)  # fmt: skip
    model = onnx.load(str(path))
    set_metadata(
        model,
        ModelMetadata(
            version="test", model_config={"name": "test"}, task=task, class_names=tuple(class_names),
            input_size=(2 * w, 2 * h), profile="nexus6p-rear", precision=precision,
        ),
    )  # fmt: skip
    onnx.save(model, str(path))
    return path


class ColourClassifier(nn.Module):
    """Logits (B, 2): the mean of the B plane and of the R plane (class 0 blue, class 1 red)."""

    def __init__(self, swap: bool = False) -> None:
        super().__init__()
        self.order = (0, 3) if swap else (3, 0)

    def forward(self, raw: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        first, second = self.order
        return torch.stack([raw[:, first].mean((1, 2)), raw[:, second].mean((1, 2))], dim=1) + 0 * noise[:, :1]


class SensitiveClassifier(nn.Module):
    """stem -> body -> head, each one named layer; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(4, 4, 1, bias=False)
        self.body = nn.Conv2d(4, 4, 1, bias=False)
        self.head = nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            stem = torch.zeros(4, 4)
            stem[0, 1] = 1000.0  # the signal, plane 1, amplified
            stem[1, 0] = 1.0  # the distractor, plane 0, passed on
            self.stem.weight.copy_(stem.view(4, 4, 1, 1))
            self.body.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
            self.head.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]]))

    def forward(self, raw: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = self.body(self.stem(raw))
        return self.head(x.mean((2, 3))) + 0 * noise[:, :1]


def sensitive_inputs(count: int, seed: int, hw: tuple[int, int] = (8, 8)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw, noise, labels): plane 0 a +-100 distractor, plane 1 the +-0.05 signal (class 0 for
    positive, 1 for negative), balanced classes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    raw = np.zeros((count, 4, *hw), np.float32)
    raw[:, 0] = rng.uniform(-100, 100, (count, *hw))
    raw[:, 1] = np.where(labels == 0, 0.05, -0.05)[:, None, None]
    noise = np.full((count, 2), 0.01, np.float32)
    return raw, noise, labels.astype(np.int64)


def make_colour_folder(root: Path, per_class: int, size: int = 32, seed: int = 0) -> Path:
    """root/{red,blue}/NNN.png: flat colour fields with a little noise (a clean task for the
    colour classifier)."""
    return make_classification(root, per_class, size, seed, brightness=(0.7, 1.0), noise=0.03)


def make_coco(root: Path, count: int, size: int = 64) -> Path:
    """root/data/images/*.png + root/data.json (COCO): one red square per image at a fixed place."""
    images, annotations = [], []
    for i in range(count):
        image = np.full((size, size, 3), 0.4)
        image[8:40, 16:48] = COLOURS["red"]
        write_png(root / "data" / "images" / f"{i:02d}.png", (image * 255).astype(np.uint8))
        images.append({"id": i + 1, "file_name": f"{i:02d}.png", "width": size, "height": size})
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [16, 8, 32, 32],
                            "area": 1024, "iscrowd": 0})  # fmt: skip
    path = root / "data.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "other"}]}))  # fmt: skip
    return path


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny models here run in milliseconds on one thread; torch's thread pool spin-waits
    for seconds per call when the shared test machine's cores are busy. Restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def profile():
    from edge_isp.sensor.profile import SensorProfile

    return SensorProfile.load("nexus6p-rear")
