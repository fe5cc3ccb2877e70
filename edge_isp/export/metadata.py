"""The metadata every exported ONNX file carries (``metadata_props``), and reading it back.

Keys (docs/ARCHITECTURE.md, "The exported model"): ``edge_isp.version``,
``edge_isp.model_config`` (the resolved ``ModelConfig`` as JSON), ``edge_isp.task``,
``edge_isp.class_names`` (JSON list), ``edge_isp.input_size`` (``WxH`` of the full-resolution
frame), ``edge_isp.profile`` (the sensor profile the model was trained for). Added by the
export side, all optional for a reader: ``edge_isp.precision`` (fp32/fp16/int8),
``edge_isp.exporter`` (the torch, onnx and opset versions that wrote the graph),
``edge_isp.top_k`` (detections per image) and ``edge_isp.higher_precision`` (JSON list of the
layer groups kept in higher precision by the FP16/INT8 conversion).

Needs ``onnx`` only to read or write a file; the dataclass itself is plain Python, so a
runtime without torch can use it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from edge_isp.errors import InvalidInputError, require

PREFIX = "edge_isp."
REQUIRED_KEYS = ("version", "model_config", "task", "class_names", "input_size", "profile")
TASK_OUTPUTS = {
    "classification": ("logits",),
    "detection": ("boxes", "scores", "labels"),
    "reconstruction": ("image",),
}
INPUT_NAMES = ("raw", "noise")


@dataclasses.dataclass(frozen=True)
class ExportMetadata:
    """What an exported model says about itself.

    Attributes:
        version: the edge-isp version that exported it.
        model_config: ``ModelConfig.to_dict()`` of the network.
        task: "classification", "detection" or "reconstruction".
        class_names: the class of each logit / label index.
        input_size: (width, height) of the full-resolution frame in pixels; the model's
            ``raw`` input is (B, 4, height/2, width/2).
        profile: the sensor profile name the model was trained for.
        precision: "fp32", "fp16" or "int8".
        exporter: e.g. "torch 2.13.0, onnx 1.23.2, opset 17".
        top_k: detections per image (detection only), else None.
        higher_precision: layer groups the FP16/INT8 conversion kept in higher precision.
    """

    version: str
    model_config: dict[str, Any]
    task: str
    class_names: tuple[str, ...]
    input_size: tuple[int, int]
    profile: str
    precision: str = "fp32"
    exporter: str = ""
    top_k: int | None = None
    higher_precision: tuple[str, ...] = ()

    def to_props(self) -> dict[str, str]:
        """The ``metadata_props`` entries: every value a string."""
        props = {
            "version": self.version,
            "model_config": json.dumps(self.model_config, sort_keys=True),
            "task": self.task,
            "class_names": json.dumps(list(self.class_names)),
            "input_size": f"{self.input_size[0]}x{self.input_size[1]}",
            "profile": self.profile,
            "precision": self.precision,
            "exporter": self.exporter,
            "higher_precision": json.dumps(list(self.higher_precision)),
        }
        if self.top_k is not None:
            props["top_k"] = str(self.top_k)
        return {PREFIX + k: v for k, v in props.items()}

    @classmethod
    def from_props(cls, props: dict[str, str], origin: str = "model") -> ExportMetadata:
        """Parse ``metadata_props``; a missing or malformed key raises :class:`InvalidInputError`."""
        values = {k[len(PREFIX) :]: v for k, v in props.items() if k.startswith(PREFIX)}
        missing = [PREFIX + k for k in REQUIRED_KEYS if k not in values]
        if missing:
            raise InvalidInputError(
                f"{origin}: not an edge-isp export: metadata key(s) {', '.join(missing)} missing "
                "(export it with `edge-isp export onnx`)"
            )

        def parse_json(key: str, kind: type) -> Any:
            try:
                value = json.loads(values[key])
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{origin}: metadata {PREFIX}{key} is not valid JSON: {exc}") from None
            if not isinstance(value, kind):
                raise InvalidInputError(
                    f"{origin}: metadata {PREFIX}{key} must be a JSON {kind.__name__}, got {type(value).__name__}"
                )
            return value

        size = values["input_size"].lower().split("x")
        if len(size) != 2 or not all(s.isdigit() for s in size):
            raise InvalidInputError(f"{origin}: metadata {PREFIX}input_size must be WxH, got {values['input_size']!r}")
        top_k = values.get("top_k")
        return cls(
            version=values["version"],
            model_config=parse_json("model_config", dict),
            task=values["task"],
            class_names=tuple(str(c) for c in parse_json("class_names", list)),
            input_size=(int(size[0]), int(size[1])),
            profile=values["profile"],
            precision=values.get("precision", "fp32"),
            exporter=values.get("exporter", ""),
            top_k=int(top_k) if top_k is not None else None,
            higher_precision=tuple(parse_json("higher_precision", list)) if "higher_precision" in values else (),
        )

    def replace(self, **changes: Any) -> ExportMetadata:
        return dataclasses.replace(self, **changes)


def set_metadata(model: Any, metadata: ExportMetadata) -> None:
    """Write ``metadata`` into an ``onnx.ModelProto`` in place, replacing earlier edge_isp keys
    and keeping any other tool's."""
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in [*kept, *metadata.to_props().items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(model_or_path: Any) -> ExportMetadata:
    """The :class:`ExportMetadata` of an ONNX file (path) or an ``onnx.ModelProto``."""
    if isinstance(model_or_path, (str, Path)):
        onnx = require("onnx", "export", "reading an ONNX model")
        path = Path(model_or_path)
        if not path.is_file():
            from edge_isp.errors import MissingFileError

            raise MissingFileError(f"ONNX model {path} does not exist")
        model = onnx.load(str(path), load_external_data=False)
        origin = str(path)
    else:
        model, origin = model_or_path, "model"
    return ExportMetadata.from_props({p.key: p.value for p in model.metadata_props}, origin)


def output_names(task: str, with_image: bool = False) -> list[str]:
    """The exported graph's output names for ``task``, plus ``image`` when asked for."""
    if task not in TASK_OUTPUTS:
        raise InvalidInputError(f"task must be one of {', '.join(TASK_OUTPUTS)}, got {task!r}")
    names = list(TASK_OUTPUTS[task])
    if with_image and "image" not in names:
        names.append("image")
    return names
