"""Engine build targets: one TOML file per board in ``export/targets/`` (orin-nano, orin-nx,
agx-orin, xavier-nx, x86-gpu).

A target says how to build the engine for a board; every key is checked on load and a bad
one is refused with the file, the key, what it expects and what it got::

    name = "orin-nx"
    description = "Jetson Orin NX 16 GB, JetPack 6"
    precision = "int8"            # fp32 | fp16 | int8: which ONNX file the engine is built from
    input_size = [640, 480]       # full-resolution frame, width x height, multiples of 32
    batch = 1                     # frames per inference (the engine's largest batch)
    memory_pool_mb = 2048         # TensorRT workspace limit, MiB
    dla_core = 0                  # optional: run on this DLA core ...
    gpu_fallback = true           # ... with layers DLA cannot run falling back to the GPU
    tensorrt_version = "10.3"     # what the board's JetPack ships (used where TensorRT is absent)
    builder_optimization_level = 3  # optional, 0..5 (TensorRT's default when absent)
    sensor_profile = "imx219"     # optional: the camera's profile for calibration frames

Sizes are multiples of 32 because the detector's deepest features are at stride 32 and
the ISP works on 2x2 Bayer tiles; DLA runs only FP16 and INT8, so a DLA target must not
ask for FP32.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from edge_isp.errors import InvalidInputError
from edge_isp.fileio import read_text
from edge_isp.shipped import file_or_shipped, shipped_names

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PRECISIONS = ("fp32", "fp16", "int8")
SIZE_MULTIPLE = 32
_VERSION = re.compile(r"^\d+(\.\d+){0,3}$")


class TargetError(InvalidInputError):
    """A target file that fails validation; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class Target:
    """A validated build target. See the module docstring for the keys and their meaning.

    Attributes:
        name: the target's name (its file's stem for shipped targets).
        description: free text: the board and its software.
        precision: "fp32", "fp16" or "int8".
        input_size: (width, height) of the full-resolution frame in pixels.
        batch: the engine's largest batch (>= 1).
        memory_pool_mb: the TensorRT workspace memory pool limit in MiB.
        dla_core: the DLA core to run on, or None for the GPU only.
        gpu_fallback: let layers DLA cannot run fall back to the GPU (DLA targets only).
        tensorrt_version: the TensorRT version the board ships, e.g. "10.3", or None.
        builder_optimization_level: TensorRT's builder optimization level 0..5, or None.
        sensor_profile: the camera's sensor profile name or path, or None.
    """

    name: str
    precision: str
    input_size: tuple[int, int]
    memory_pool_mb: int
    description: str = ""
    batch: int = 1
    dla_core: int | None = None
    gpu_fallback: bool = True
    tensorrt_version: str | None = None
    builder_optimization_level: int | None = None
    sensor_profile: str | None = None

    def __post_init__(self) -> None:
        _validate(self, "target")

    @property
    def packed_size(self) -> tuple[int, int]:
        """(width, height) of the packed planes the model takes: half the frame's."""
        return self.input_size[0] // 2, self.input_size[1] // 2

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["input_size"] = list(self.input_size)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "target") -> Target:
        """Build from parsed TOML; unknown or missing keys raise :class:`TargetError`."""
        if not isinstance(data, dict):
            raise TargetError(f"{origin}: a target must be a table of keys, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise TargetError(
                f"{origin}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(fields)}"
            )
        required = [n for n, f in fields.items() if f.default is dataclasses.MISSING]
        missing = [n for n in required if n not in data]
        if missing:
            raise TargetError(f"{origin}: missing key(s) {', '.join(map(repr, missing))} (required: {required})")
        kwargs = dict(data)
        if isinstance(kwargs.get("input_size"), list):
            kwargs["input_size"] = tuple(kwargs["input_size"])
        try:
            return cls(**kwargs)
        except TargetError as exc:
            raise TargetError(f"{origin}: {str(exc).removeprefix('target: ')}") from None

    def replace(self, **changes: Any) -> Target:
        """A copy with ``changes`` applied and validated (e.g. an input size from the command line)."""
        return dataclasses.replace(self, **changes)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fail(origin: str, key: str, expected: str, got: Any) -> None:
    raise TargetError(f"{origin}: key {key!r} must be {expected}, got {got!r}")


def _validate(t: Target, origin: str) -> None:
    if not isinstance(t.name, str) or not t.name.strip():
        _fail(origin, "name", "a non-empty string", t.name)
    if not isinstance(t.description, str):
        _fail(origin, "description", "a string", t.description)
    if t.precision not in PRECISIONS:
        _fail(origin, "precision", f"one of {', '.join(PRECISIONS)}", t.precision)
    size = t.input_size
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(_is_int(v) for v in size)):
        _fail(origin, "input_size", "[width, height] as two integers", size)
    if not all(v >= SIZE_MULTIPLE and v % SIZE_MULTIPLE == 0 for v in size):
        _fail(origin, "input_size", f"[width, height] in pixels, each a positive multiple of {SIZE_MULTIPLE}", size)
    object.__setattr__(t, "input_size", (int(size[0]), int(size[1])))
    if not (_is_int(t.batch) and t.batch >= 1):
        _fail(origin, "batch", "an integer >= 1", t.batch)
    if not (_is_int(t.memory_pool_mb) and t.memory_pool_mb >= 1):
        _fail(origin, "memory_pool_mb", "an integer >= 1 (MiB)", t.memory_pool_mb)
    if t.dla_core is not None and not (_is_int(t.dla_core) and t.dla_core >= 0):
        _fail(origin, "dla_core", "an integer >= 0, or absent for the GPU only", t.dla_core)
    if not isinstance(t.gpu_fallback, bool):
        _fail(origin, "gpu_fallback", "true or false", t.gpu_fallback)
    if t.dla_core is not None and t.precision == "fp32":
        raise TargetError(
            f"{origin}: key 'precision' is 'fp32' but DLA (dla_core = {t.dla_core}) runs only fp16 or int8; "
            "choose one of those, or remove dla_core to build for the GPU"
        )
    version = t.tensorrt_version
    if version is not None and not (isinstance(version, str) and _VERSION.match(version)):
        _fail(origin, "tensorrt_version", 'a version string such as "10.3"', version)
    level = t.builder_optimization_level
    if level is not None and not (_is_int(level) and 0 <= level <= 5):
        _fail(origin, "builder_optimization_level", "an integer 0..5, or absent", level)
    if t.sensor_profile is not None and not (isinstance(t.sensor_profile, str) and t.sensor_profile):
        _fail(origin, "sensor_profile", "a profile name or path", t.sensor_profile)


def shipped_targets() -> list[str]:
    """Names of the targets shipped with the package (from ``export/targets/``)."""
    return shipped_names("targets", ".toml")


def target_path(name_or_path: str | Path) -> Path:
    """The TOML file of a target: a file that exists, else a shipped target's name."""
    return file_or_shipped(name_or_path, "targets", ".toml", "target")


def load_target(name_or_path: str | Path) -> Target:
    """Load a target from a TOML path, or a shipped one by name ("orin-nano")."""
    path = target_path(name_or_path)
    try:
        data = tomllib.loads(read_text(path, "target"))
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{path}: not valid TOML: {exc}") from None
    return Target.from_dict(data, origin=str(path))
