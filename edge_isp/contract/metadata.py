"""What an exported model says about itself: the ONNX ``metadata_props`` contract.

Keys (docs/ARCHITECTURE.md, "The exported model"), every value a string: ``edge_isp.version``,
``edge_isp.model_config`` (the resolved ``ModelConfig`` as JSON), ``edge_isp.task``,
``edge_isp.class_names`` (JSON list), ``edge_isp.input_size`` (``WxH`` of the full-resolution
frame), ``edge_isp.profile`` (the NAME of the sensor profile the model was trained for, never a
path). Added by the export side, optional for a reader: ``edge_isp.precision``
(fp32/fp16/int8), ``edge_isp.exporter`` (the torch, onnx and opset versions that wrote the
graph), ``edge_isp.top_k`` (detections per image), ``edge_isp.higher_precision`` (JSON list of
the layer groups kept in higher precision) and ``edge_isp.noise_range`` (the noise levels the
model was trained on: JSON ``{"a": [lo, hi], "sigma": [lo, hi]}`` on the scale of the
``noise`` input), ``edge_isp.raw_scale`` (``2`` for a half-resolution ISP: its ``image``
output is ``input_size`` / 2; written when not 1, and read from ``model_config`` when absent),
``edge_isp.input_kind`` (what the model takes, :data:`INPUT_KINDS`: ``raw``, the
fused learned-ISP model, or ``rgb``, a perception network alone that runs behind a conventional
ISP; absent means ``raw``) and, for an ``rgb`` model, ``edge_isp.conventional_isp`` (the
conventional ISP it was trained behind: JSON ``{"demosaic": ..., "denoise": ...}``),
``edge_isp.teacher`` (JSON object: the ``[teacher]`` table of a model distilled from a teacher,
so an evaluation on a real set scores agreement with that teacher's answers) and
``edge_isp.size_multiple`` (a whole number, written only for a graph with dynamic height and
width, ``edge-isp export onnx --dynamic-size``: it runs at any full-resolution frame whose sides
are multiples of it; ``input_size`` is then the size it was exported and checked at, the default
for calibration and engines; absent means the graph takes ``input_size`` only).

One reader, :meth:`ModelMetadata.from_props`, two modes: ``strict`` (the export side: every
required key must be there) and lenient (the runtime: any ONNX file that follows the I/O
contract runs; the task is then read from its output names and the classes are numbered).
Both refuse a value that is there but malformed, with the key and the model named.

Plain Python; reading a file needs ``onnx`` or ONNX Runtime, never torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from edge_isp.contract.onnx_session import cpu_session
from edge_isp.contract.sizes import format_size, parse_size
from edge_isp.errors import InvalidInputError, MissingDependencyError, MissingFileError

PREFIX = "edge_isp."
# The graph's inputs by input kind: the packed raw and its noise level (the fused model), or an
# sRGB picture (B, 3, H, W) on [0, 1] from a conventional ISP (a perception network alone).
INPUT_KINDS = {"raw": ("raw", "noise"), "rgb": ("rgb",)}
INPUT_NAMES = INPUT_KINDS["raw"]
# The conventional ISP an rgb model was trained behind: these keys of an IspConfig.
CONVENTIONAL_ISP_KEYS = ("demosaic", "denoise")
# Each task's outputs, in graph order; the first one identifies the task.
TASK_OUTPUTS = {
    "classification": ("logits",),
    "detection": ("boxes", "scores", "labels"),
    "reconstruction": ("image",),
}
TASKS = tuple(TASK_OUTPUTS)
# Detections a detector's file keeps per frame (its Top-K), unless the export asks for another.
DEFAULT_TOP_K = 100
REQUIRED_KEYS = ("version", "model_config", "task", "class_names", "input_size", "profile")
# A profile name: what `SensorProfile.load` finds among the shipped profiles. Never a path.
_PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def is_profile_name(name: str) -> bool:
    """Whether ``name`` is a sensor profile name: letters, digits, ``.``, ``_``, ``-``, starting
    with a letter or digit, no ``..``; so never a path."""
    return isinstance(name, str) and _PROFILE_NAME.fullmatch(name) is not None and ".." not in name


def check_profile_name(name: str, origin: str = "model") -> str:
    """``name`` if :func:`is_profile_name`, else an :class:`InvalidInputError` naming ``origin``."""
    if not is_profile_name(name):
        raise InvalidInputError(
            f"{origin}: metadata '{PREFIX}profile' must be a sensor profile name (letters, digits, '.', '_', '-', "
            f"no path), got {name!r}; run it with --profile NAME|PATH to choose the profile yourself"
        )
    return name


@dataclasses.dataclass(frozen=True)
class NoiseRange:
    """The noise levels a model was trained on, on the scale of its ``noise`` input.

    Attributes:
        a: ``(low, high)`` of the signal-dependent term ``a`` (``var = a * x + sigma**2``).
        sigma: ``(low, high)`` of the signal-independent standard deviation ``sigma``.
    """

    a: tuple[float, float]
    sigma: tuple[float, float]

    def __post_init__(self) -> None:
        for name in ("a", "sigma"):
            value = getattr(self, name)
            pair = tuple(value) if isinstance(value, (list, tuple)) else ()
            if len(pair) != 2 or not all(_is_number(v) for v in pair):
                raise InvalidInputError(f"noise range {name!r} must be [low, high], two numbers, got {value!r}")
            low, high = float(pair[0]), float(pair[1])
            if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high):
                raise InvalidInputError(f"noise range {name!r} needs finite 0 <= low <= high, got [{low}, {high}]")
            object.__setattr__(self, name, (low, high))

    def contains(self, a: float, sigma: float) -> bool:
        """Whether the noise level ``(a, sigma)`` lies inside the range (bounds included)."""
        return self.a[0] <= a <= self.a[1] and self.sigma[0] <= sigma <= self.sigma[1]

    def clamp(self, a: float, sigma: float) -> tuple[float, float]:
        """The nearest trained level: each of ``a`` and ``sigma`` clipped to its range."""
        return min(max(a, self.a[0]), self.a[1]), min(max(sigma, self.sigma[0]), self.sigma[1])

    def to_json(self) -> str:
        return json.dumps({"a": list(self.a), "sigma": list(self.sigma)})

    @classmethod
    def from_json(cls, text: str, origin: str = "model") -> NoiseRange:
        what = f"{origin}: metadata '{PREFIX}noise_range'"
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise InvalidInputError(f"{what} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or set(data) != {"a", "sigma"}:
            raise InvalidInputError(f'{what} must be {{"a": [low, high], "sigma": [low, high]}}, got {text[:80]!r}')
        try:
            return cls(a=data["a"], sigma=data["sigma"])
        except InvalidInputError as exc:
            raise InvalidInputError(f"{what}: {exc}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """What a model says about itself.

    Attributes:
        task: one of :data:`TASKS`.
        class_names: one name per class index; empty when the model does not say.
        input_size: ``(width, height)`` of the full-resolution frame the model was exported
            for; its ``raw`` input is (B, 4, height/2, width/2). None when it does not say.
        profile: the sensor profile name the model was trained for, or None.
        version: the edge-isp version that exported it, or None.
        model_config: ``ModelConfig.to_dict()`` of the network, or None.
        precision: "fp32", "fp16" or "int8".
        exporter: e.g. "torch 2.13.0, onnx 1.23.2, opset 17".
        top_k: detections per image (detection only), else None.
        higher_precision: layer groups the FP16/INT8 conversion kept in higher precision.
        noise_range: the noise levels the model was trained on, or None.
        raw_scale: the ``raw`` input's sides over the ``image`` output's: 1, or 2 for a
            half-resolution ISP (``ModelConfig.raw_scale``). Detection boxes are in
            ``input_size`` pixels either way.
        input_kind: "raw" (inputs ``raw`` and ``noise``) or "rgb" (input ``rgb``), see
            :data:`INPUT_KINDS`.
        conventional_isp: for an rgb model, the conventional ISP it was trained behind
            (``{"demosaic": ..., "denoise": ...}``), or None when it does not say.
        teacher: the ``[teacher]`` table (training config) the model was distilled from, or
            None: an evaluation on an unlabelled real set labels it with this teacher.
        size_multiple: for a graph with dynamic height and width, the multiple both sides of
            the full-resolution frame must be (32 for a detector, whose deepest features are at
            stride 32 of the raw); ``input_size`` is then the size it was exported at. None: the
            graph takes ``input_size`` only.
    """

    task: str
    class_names: tuple[str, ...] = ()
    input_size: tuple[int, int] | None = None
    profile: str | None = None
    version: str | None = None
    model_config: dict[str, Any] | None = None
    precision: str = "fp32"
    exporter: str = ""
    top_k: int | None = None
    higher_precision: tuple[str, ...] = ()
    noise_range: NoiseRange | None = None
    raw_scale: int = 1
    input_kind: str = "raw"
    conventional_isp: dict[str, str] | None = None
    teacher: dict[str, Any] | None = None
    size_multiple: int | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InvalidInputError(f"model task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.raw_scale not in (1, 2):
            raise InvalidInputError(f"model raw_scale must be 1 or 2, got {self.raw_scale!r}")
        if self.profile is not None:
            check_profile_name(self.profile)
        check_input_kind(self.input_kind)
        if self.size_multiple is not None and (
            not _is_number(self.size_multiple) or self.size_multiple < 2 or self.size_multiple % 2
        ):
            raise InvalidInputError(
                f"model size_multiple must be an even whole number >= 2, got {self.size_multiple!r}"
            )
        if self.conventional_isp is not None:
            object.__setattr__(self, "conventional_isp", check_conventional_isp(self.conventional_isp))
            if self.input_kind != "rgb":
                raise InvalidInputError("only an rgb-input model runs behind a conventional ISP (conventional_isp)")

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(width, height)`` of the ``image`` output (the picture the head sees), or None."""
        if self.input_size is None:
            return None
        return self.input_size[0] // self.raw_scale, self.input_size[1] // self.raw_scale

    @property
    def dynamic_size(self) -> bool:
        """Whether the graph takes any frame size that is a multiple of :attr:`size_multiple`."""
        return self.size_multiple is not None

    @property
    def input_names(self) -> tuple[str, ...]:
        """The graph's input names for its :attr:`input_kind`."""
        return INPUT_KINDS[self.input_kind]

    def class_name(self, index: int) -> str:
        """The name of class ``index``; ``"class N"`` when the model names none (or too few)."""
        if 0 <= index < len(self.class_names):
            return self.class_names[index]
        return f"class {index}"

    def replace(self, **changes: Any) -> ModelMetadata:
        return dataclasses.replace(self, **changes)

    def to_props(self) -> dict[str, str]:
        """The ``metadata_props`` entries (every value a string); None fields are left out."""
        props = {
            "version": self.version,
            "model_config": None if self.model_config is None else json.dumps(self.model_config, sort_keys=True),
            "task": self.task,
            "class_names": json.dumps(list(self.class_names)),
            "input_size": None if self.input_size is None else format_size(self.input_size),
            "profile": self.profile,
            "precision": self.precision,
            "exporter": self.exporter,
            "higher_precision": json.dumps(list(self.higher_precision)),
            "top_k": None if self.top_k is None else str(self.top_k),
            "noise_range": None if self.noise_range is None else self.noise_range.to_json(),
            "raw_scale": None if self.raw_scale == 1 else str(self.raw_scale),
            "input_kind": self.input_kind,
            "conventional_isp": None if self.conventional_isp is None else json.dumps(self.conventional_isp),
            "teacher": None if self.teacher is None else json.dumps(self.teacher, sort_keys=True),
            "size_multiple": None if self.size_multiple is None else str(self.size_multiple),
        }
        return {PREFIX + k: v for k, v in props.items() if v is not None}

    @classmethod
    def from_props(
        cls,
        props: Mapping[str, str],
        *,
        strict: bool = True,
        output_names: Iterable[str] = (),
        origin: str = "model",
        input_names: Iterable[str] = (),
    ) -> ModelMetadata:
        """Parse ``metadata_props`` (string to string).

        ``strict``: every key of :data:`REQUIRED_KEYS` must be there (an edge-isp export).
        Lenient: any may be missing; ``output_names`` then decide the task, and
        ``input_names`` the input kind (an ``rgb`` input without a ``raw`` one: rgb). Either
        way a malformed value raises :class:`InvalidInputError` naming the key and ``origin``.
        """
        values = {k[len(PREFIX) :]: v for k, v in props.items() if k.startswith(PREFIX)}
        missing = [PREFIX + k for k in REQUIRED_KEYS if k not in values]
        if strict and missing:
            raise InvalidInputError(
                f"{origin}: not an edge-isp export: metadata key(s) {', '.join(missing)} missing "
                "(export it with `edge-isp export onnx`)"
            )

        def parse_json(key: str, kind: type) -> Any:
            try:
                value = json.loads(values[key])
            except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nested too deeply
                raise InvalidInputError(f"{origin}: metadata '{PREFIX}{key}' is not valid JSON: {exc}") from None
            if not isinstance(value, kind):
                raise InvalidInputError(
                    f"{origin}: metadata '{PREFIX}{key}' must be a JSON {kind.__name__}, got {type(value).__name__}"
                )
            return value

        def string_list(key: str) -> tuple[str, ...]:
            items = parse_json(key, list) if key in values else []
            if not all(isinstance(item, str) for item in items):
                raise InvalidInputError(f"{origin}: metadata '{PREFIX}{key}' must be a JSON list of strings")
            return tuple(items)

        top_k = values.get("top_k")
        if top_k is not None and not top_k.strip().isdigit():
            raise InvalidInputError(f"{origin}: metadata '{PREFIX}top_k' must be a whole number, got {top_k!r}")
        multiple = values.get("size_multiple")
        if multiple is not None and not (multiple.strip().isdigit() and int(multiple) >= 2 and int(multiple) % 2 == 0):
            raise InvalidInputError(
                f"{origin}: metadata '{PREFIX}size_multiple' must be an even whole number >= 2, got {multiple!r}"
            )
        profile = values.get("profile") or None
        task = values.get("task") or task_from_outputs(output_names, origin)
        if task not in TASKS:
            raise InvalidInputError(f"{origin}: model task must be one of {', '.join(TASKS)}, got {task!r}")
        size = values.get("input_size")
        inputs = set(input_names)
        kind = values.get("input_kind") or ("rgb" if "rgb" in inputs and "raw" not in inputs else "raw")
        if kind not in INPUT_KINDS:
            raise InvalidInputError(
                f"{origin}: metadata '{PREFIX}input_kind' must be one of {', '.join(INPUT_KINDS)}, got {kind!r}"
            )
        conventional = parse_json("conventional_isp", dict) if "conventional_isp" in values else None
        if conventional is not None:
            try:
                conventional = check_conventional_isp(conventional)
            except InvalidInputError as exc:
                raise InvalidInputError(f"{origin}: metadata '{PREFIX}conventional_isp': {exc}") from None
        model_config = parse_json("model_config", dict) if "model_config" in values else None
        # An rgb model's input is the picture itself, whatever ISP its checkpoint had.
        raw_scale = config_raw_scale(model_config) if kind == "raw" else 1
        if "raw_scale" in values:
            text = values["raw_scale"].strip()
            if text not in ("1", "2") or int(text) != raw_scale:
                raise InvalidInputError(
                    f"{origin}: metadata '{PREFIX}raw_scale' must be 1 or 2 and agree with its model_config "
                    f"({raw_scale}), got {values['raw_scale']!r}"
                )
        return cls(
            task=task,
            class_names=string_list("class_names"),
            input_size=parse_size(size, f"{origin}: metadata '{PREFIX}input_size'") if size else None,
            profile=None if profile is None else check_profile_name(profile, origin),
            version=values.get("version") or None,
            model_config=model_config,
            precision=values.get("precision") or "fp32",
            exporter=values.get("exporter", ""),
            top_k=None if top_k is None else int(top_k),
            higher_precision=string_list("higher_precision"),
            noise_range=NoiseRange.from_json(values["noise_range"], origin) if "noise_range" in values else None,
            raw_scale=raw_scale,
            input_kind=kind,
            conventional_isp=conventional,
            teacher=parse_json("teacher", dict) if "teacher" in values else None,
            size_multiple=None if multiple is None else int(multiple),
        )


def config_raw_scale(model_config: Mapping[str, Any] | None) -> int:
    """``ModelConfig.raw_scale`` from its JSON form, without torch: 2 when its ISP runs at half
    resolution, else 1 (also for configs written before the field existed, or none)."""
    isp = (model_config or {}).get("isp")
    return 2 if isinstance(isp, Mapping) and isp.get("resolution") == "half" else 1


def check_input_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`INPUT_KINDS`, else an :class:`InvalidInputError`."""
    if kind not in INPUT_KINDS:
        raise InvalidInputError(f"input kind must be one of {', '.join(INPUT_KINDS)}, got {kind!r}")
    return kind


def check_conventional_isp(value: Mapping[str, Any]) -> dict[str, str]:
    """``{"demosaic": str, "denoise": str}``: exactly the keys of :data:`CONVENTIONAL_ISP_KEYS`,
    string values (the names are checked where the ISP is made, which knows the methods)."""
    if not isinstance(value, Mapping) or set(value) != set(CONVENTIONAL_ISP_KEYS):
        raise InvalidInputError(f"a conventional ISP is {{'demosaic': NAME, 'denoise': NAME}}, got {value!r}")
    if not all(isinstance(value[k], str) for k in CONVENTIONAL_ISP_KEYS):
        raise InvalidInputError(f"a conventional ISP's demosaic and denoise are names (strings), got {dict(value)!r}")
    return {k: value[k] for k in CONVENTIONAL_ISP_KEYS}


def task_from_outputs(output_names: Iterable[str], origin: str = "model") -> str:
    """The task a model's outputs imply: ``boxes`` -> detection, ``logits`` ->
    classification, only ``image`` -> reconstruction."""
    names = set(output_names)
    for task in ("detection", "classification", "reconstruction"):
        if TASK_OUTPUTS[task][0] in names:
            return task
    raise InvalidInputError(
        f"{origin}: cannot tell the task: no '{PREFIX}task' metadata and the outputs {sorted(names)} "
        "include none of 'boxes' (detection), 'logits' (classification) or 'image' (reconstruction)"
    )


def output_names(task: str, with_image: bool = False) -> list[str]:
    """The exported graph's output names for ``task``, plus ``image`` when asked for."""
    if task not in TASK_OUTPUTS:
        raise InvalidInputError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    names = list(TASK_OUTPUTS[task])
    if with_image and "image" not in names:
        names.append("image")
    return names


def set_metadata(model: Any, metadata: ModelMetadata) -> None:
    """Write ``metadata`` into an ``onnx.ModelProto`` in place, replacing earlier edge_isp keys
    and keeping any other tool's."""
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in [*kept, *metadata.to_props().items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read_onnx_props(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, through ``onnx`` if installed, else ONNX Runtime."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"ONNX model {path} does not exist")
    try:
        import onnx  # optional: a board may have ONNX Runtime only
    except ImportError:
        onnx = None
    if onnx is not None:
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf raises its own DecodeError types
            raise InvalidInputError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc})") from None
        return {p.key: p.value for p in model.metadata_props}
    try:
        session = cpu_session(path)
    except MissingDependencyError:
        raise MissingDependencyError(
            f"reading {path} needs the 'onnx' or 'onnxruntime' package; "
            "install them with: pip install 'edge-isp[export]'"
        ) from None
    return dict(session.get_modelmeta().custom_metadata_map)


def read_metadata(model_or_path: Any, *, strict: bool = True) -> ModelMetadata:
    """The :class:`ModelMetadata` of an ONNX file (path) or an ``onnx.ModelProto``."""
    if isinstance(model_or_path, (str, Path)):
        return ModelMetadata.from_props(read_onnx_props(model_or_path), strict=strict, origin=str(model_or_path))
    props = {p.key: p.value for p in model_or_path.metadata_props}
    outputs = [o.name for o in model_or_path.graph.output]
    inputs = [i.name for i in model_or_path.graph.input]
    return ModelMetadata.from_props(props, strict=strict, output_names=outputs, origin="model", input_names=inputs)


def metadata_of_backend(backend: Any) -> ModelMetadata:
    """The lenient :class:`ModelMetadata` of an inference backend (open or not): its
    ``metadata()`` (the runtime's backends have one; any other counts as having no metadata)
    and its output names."""
    names = [spec.name for spec in backend.output_specs()]
    inputs = [spec.name for spec in backend.input_specs()]
    metadata = backend.metadata() if hasattr(backend, "metadata") else {}
    origin = str(getattr(backend, "path", backend.name))
    return ModelMetadata.from_props(metadata, strict=False, output_names=names, origin=origin, input_names=inputs)
