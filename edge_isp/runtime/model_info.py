"""What an exported model says about itself: task, class names, input size, sensor profile.

The export side writes these as ONNX ``metadata_props`` (see docs/ARCHITECTURE.md):
``edge_isp.version``, ``edge_isp.model_config`` (JSON), ``edge_isp.task``,
``edge_isp.class_names`` (a JSON list), ``edge_isp.input_size`` (``WxH`` of the
full-resolution frame) and ``edge_isp.profile`` (the sensor profile's name). A model without
them (any ONNX file that follows the I/O contract) still runs: the task is then read from its
output names and the classes are numbered.

Reading needs either the ``onnx`` package or ONNX Runtime; never torch.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from edge_isp.errors import InvalidInputError, MissingDependencyError, MissingFileError

TASKS = ("classification", "detection", "reconstruction")
PREFIX = "edge_isp."
# The output that identifies each task, per the I/O contract.
_TASK_OUTPUTS = (("detection", "boxes"), ("classification", "logits"), ("reconstruction", "image"))


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """A model's self-description.

    Attributes:
        task: "classification", "detection" or "reconstruction".
        class_names: one name per class index; empty when the model does not say.
        input_size: ``(width, height)`` of the full-resolution frame the model was exported
            for, or None (a model with dynamic spatial axes and no size in its metadata).
        profile: the sensor profile name the model was trained for, or None.
        version: the edge-isp version that exported it, or None.
        model_config: the resolved model config (a dict), or None.
    """

    task: str
    class_names: tuple[str, ...] = ()
    input_size: tuple[int, int] | None = None
    profile: str | None = None
    version: str | None = None
    model_config: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InvalidInputError(f"model task must be one of {', '.join(TASKS)}, got {self.task!r}")

    def class_name(self, index: int) -> str:
        """The name of class ``index``; ``"class N"`` when the model names none (or too few)."""
        if 0 <= index < len(self.class_names):
            return self.class_names[index]
        return f"class {index}"

    @classmethod
    def from_metadata(
        cls, props: Mapping[str, str], output_names: Iterable[str] = (), origin: str = "model"
    ) -> ModelInfo:
        """Parse ``metadata_props`` (string to string). ``output_names`` decide the task when
        the metadata does not give one."""
        task = props.get(PREFIX + "task") or task_from_outputs(output_names, origin)
        names: tuple[str, ...] = ()
        if PREFIX + "class_names" in props:
            names = _parse_class_names(props[PREFIX + "class_names"], origin)
        size = props.get(PREFIX + "input_size")
        config = None
        if PREFIX + "model_config" in props:
            try:
                config = json.loads(props[PREFIX + "model_config"])
            except (json.JSONDecodeError, RecursionError) as exc:
                raise InvalidInputError(f"{origin}: metadata 'edge_isp.model_config' is not JSON: {exc}") from None
            if not isinstance(config, dict):
                raise InvalidInputError(f"{origin}: metadata 'edge_isp.model_config' must be a JSON object")
        return cls(
            task=task,
            class_names=names,
            input_size=parse_input_size(size, f"{origin}: metadata 'edge_isp.input_size'") if size else None,
            profile=props.get(PREFIX + "profile") or None,
            version=props.get(PREFIX + "version") or None,
            model_config=config,
        )


def task_from_outputs(output_names: Iterable[str], origin: str = "model") -> str:
    """The task a model's outputs imply: ``boxes`` -> detection, ``logits`` ->
    classification, only ``image`` -> reconstruction."""
    names = set(output_names)
    for task, output in _TASK_OUTPUTS:
        if output in names:
            return task
    raise InvalidInputError(
        f"{origin}: cannot tell the task: no 'edge_isp.task' metadata and the outputs {sorted(names)} "
        "include none of 'boxes' (detection), 'logits' (classification) or 'image' (reconstruction)"
    )


def _parse_class_names(text: str, origin: str) -> tuple[str, ...]:
    try:
        names = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidInputError(f"{origin}: metadata 'edge_isp.class_names' is not JSON: {exc}") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidInputError(
            f"{origin}: metadata 'edge_isp.class_names' must be a JSON list of strings, got {text[:80]!r}"
        )
    return tuple(names)


def parse_input_size(text: str, what: str = "input size") -> tuple[int, int]:
    """``"640x480"`` -> ``(640, 480)``; both even and positive (a Bayer tile is 2x2)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not match:
        raise InvalidInputError(f"{what} must be WIDTHxHEIGHT, e.g. 640x480, got {text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise InvalidInputError(f"{what} must be even and at least 2x2 (a Bayer tile is 2x2), got {width}x{height}")
    return width, height


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, through ``onnx`` if installed, else ONNX Runtime."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"model {path} does not exist")
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf raises its own DecodeError types
            raise InvalidInputError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc})") from None
        return {p.key: p.value for p in model.metadata_props}
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError(
            f"reading {path} needs the 'onnx' or 'onnxruntime' package; "
            "install them with: pip install 'edge-isp[export]'"
        ) from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise InvalidInputError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    return dict(session.get_modelmeta().custom_metadata_map)


def model_info_of(backend: Any) -> ModelInfo:
    """The :class:`ModelInfo` of a backend (open or not): its ``metadata()`` (the backends of
    this package have one; any other ``InferenceBackend`` counts as having no metadata) and
    its output names."""
    names = [spec.name for spec in backend.output_specs()]
    metadata = backend.metadata() if hasattr(backend, "metadata") else {}
    return ModelInfo.from_metadata(metadata, names, origin=str(getattr(backend, "path", backend.name)))
