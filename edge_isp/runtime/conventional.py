"""The conventional pipeline beside the learned one: a conventional ISP, then a perception network
trained on its pictures, run on the same frames so that both answers can be shown side by side.

The second model takes an sRGB picture (metadata ``edge_isp.input_kind`` = ``rgb``, input ``rgb``
(1, 3, H, W) on [0, 1]): the perception network alone, e.g. exported from a ``baseline``-stage
checkpoint, which is a detector fine-tuned on the conventional ISP's output
(``edge-isp export onnx BASELINE.pt --input rgb``). It sees what the baseline stage trained it
on: the same model input the learned model gets (the frame cropped to the model's aspect, exposed
and resized to the model's size; ``edge_isp.contract.model_input``), unpacked to a mosaic and
rendered by the conventional ISP the model was trained behind (metadata ``edge_isp.
conventional_isp``, else Malvar demosaicking without denoising), with the sensor profile's white
balance and colour matrix and, for a denoiser, the frame's measured noise level. Both models thus
start from the same pixels; their boxes map back to the frame through the same geometry.

numpy and OpenCV only, like the rest of the runtime.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from edge_isp.contract.metadata import ModelMetadata
from edge_isp.contract.model_input import ModelInput
from edge_isp.contract.sizes import format_size
from edge_isp.errors import InvalidInputError
from edge_isp.isp.pipeline import IspConfig, render_mosaic
from edge_isp.runtime.interfaces import InferenceBackend
from edge_isp.runtime.postprocess import Postprocessor
from edge_isp.sensor.cfa import unpack
from edge_isp.sensor.profile import SensorProfile

PERCEPTION_TASKS = ("classification", "detection")
RGB_INPUT = "rgb"


def rgb_input_size(backend: InferenceBackend, info: ModelMetadata) -> tuple[int, int] | None:
    """``(width, height)`` of an rgb model's input: fixed in its graph, else its metadata's, else None."""
    spec = next((s for s in backend.input_specs() if s.name == RGB_INPUT), None)
    if spec is None or len(spec.shape) != 4 or spec.shape[1] not in (3, None):
        shapes = {s.name: s.shape for s in backend.input_specs()}
        raise InvalidInputError(f"an rgb-input model takes one input 'rgb' (B, 3, H, W); {_name(backend)} has {shapes}")
    height, width = spec.shape[2], spec.shape[3]
    if height is not None and width is not None:
        return int(width), int(height)
    return info.input_size


def check_conventional_model(
    info: ModelMetadata,
    size: tuple[int, int] | None,
    learned: ModelMetadata,
    learned_size: tuple[int, int] | None,
    origin: str = "the conventional model",
) -> None:
    """Refuse a conventional model that cannot run beside the learned one, saying why and what
    to give instead: a raw-input model (a fused one), a task other than the learned model's
    classification or detection, or another input size than the learned model's."""
    if info.input_kind != "rgb":
        raise InvalidInputError(
            f"{origin} takes {info.input_kind} input (inputs {', '.join(info.input_names)}): it is a fused learned-ISP "
            "model, which belongs in --model; --conventional-model takes a perception network that runs on the "
            "conventional ISP's picture (input 'rgb'), e.g. a baseline checkpoint exported with `edge-isp export "
            "onnx runs/NAME/baseline/best.pt --input rgb --input-size WxH -o conventional.onnx`"
        )
    if learned.task not in PERCEPTION_TASKS:
        raise InvalidInputError(
            f"a conventional model answers beside a classification or detection model; the learned model here is "
            f"a {learned.task} model"
        )
    if info.task != learned.task:
        raise InvalidInputError(
            f"{origin} is a {info.task} model but the learned model is a {learned.task} model: the two pipelines "
            f"must answer the same task to be compared; give a {learned.task} model as --conventional-model"
        )
    if size is not None and learned_size is not None and tuple(size) != tuple(learned_size):
        raise InvalidInputError(
            f"{origin} takes {format_size(size)} pictures but the learned model sees {format_size(learned_size)}: "
            "both run on the same frame region at the same size; export the conventional model with "
            f"--input-size {format_size(learned_size)} (or run the learned model at {format_size(size)})"
        )


def conventional_isp_of(info: ModelMetadata) -> IspConfig:
    """The conventional ISP (demosaicking, denoising) an rgb model was trained behind."""
    if info.conventional_isp is None:
        return IspConfig()
    try:
        return IspConfig(**info.conventional_isp)
    except InvalidInputError as exc:
        raise InvalidInputError(f"the conventional model's metadata names an ISP this runtime lacks: {exc}") from None


@dataclasses.dataclass
class ConventionalModel:
    """The conventional ISP plus an rgb-input model, called on the learned model's input.

    Attributes:
        backend: the rgb model's inference backend (the pipeline opens and closes it).
        postprocessor: its outputs -> results, for its own metadata and class names.
        profile: the sensor's profile: white balance, colour matrix, CFA.
        isp: the conventional ISP (see :func:`conventional_isp_of`).
    """

    backend: InferenceBackend
    postprocessor: Postprocessor
    profile: SensorProfile
    isp: IspConfig = dataclasses.field(default_factory=IspConfig)

    def __post_init__(self) -> None:
        self._dtype = next((s.dtype for s in self.backend.input_specs() if s.name == RGB_INPUT), np.dtype(np.float32))

    @property
    def name(self) -> str:
        return _name(self.backend)

    def picture(self, model_input: ModelInput) -> np.ndarray:
        """The conventional ISP's picture of ``model_input``: (1, 3, H, W) float32 sRGB on [0, 1]."""
        planes = np.asarray(model_input.raw[0], dtype=np.float32)
        a, sigma = model_input.measured_noise
        denoise = self.isp.denoise != "none" and (a > 0 or sigma > 0)
        config = dataclasses.replace(
            self.isp,
            denoise=self.isp.denoise if denoise else "none",
            noise=(a, sigma) if denoise else None,
            white_balance=self.isp.white_balance or self.profile.white_balance,
            color_matrix=self.isp.color_matrix or self.profile.color_matrix,
        )
        rgb = render_mosaic(unpack(planes, self.profile.cfa), self.profile.cfa, config)
        return np.ascontiguousarray(np.clip(rgb, 0.0, 1.0).transpose(2, 0, 1)[None], dtype=np.float32)

    def __call__(self, model_input: ModelInput) -> tuple[dict[str, Any], dict[str, float]]:
        """``(results, latency_ms)``: the rgb model's results (``detections`` in frame pixels, or
        ``labels``) and the time the ISP (``conventional_isp``) and the model with its
        postprocessing (``conventional_inference``) took."""
        start = time.perf_counter()
        rgb = self.picture(model_input)
        lap = time.perf_counter()
        outputs = self.backend.infer({RGB_INPUT: rgb.astype(self._dtype, copy=False)})
        results = self.postprocessor(outputs, model_input.geometry)
        end = time.perf_counter()
        return results, {"conventional_isp": (lap - start) * 1000, "conventional_inference": (end - lap) * 1000}


def _name(backend: InferenceBackend) -> str:
    return str(getattr(backend, "path", None) or getattr(backend, "name", "the conventional model"))
