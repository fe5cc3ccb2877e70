"""What a TensorRT build does, decided from the TensorRT version, the target and the precision:
pure code, tested without TensorRT.

Three API paths:

- ``weak-8``: TensorRT 8.5 and 8.6 (JetPack 5, Xavier). Explicit-batch network flag, builder
  precision flags, no progress monitor (``IProgressMonitor`` arrived in TensorRT 10), so no
  progress bar and no cancelling a build in progress.
- ``weak-10``: TensorRT 10 (JetPack 6). Builder flags: FP16 for the FP16 graph, INT8 for the
  Q/DQ graph. INT8 without FP16: the layers the export kept in FP32 then run in FP32, as
  their accuracy was measured.
- ``strong-11``: TensorRT 11 and later. Weak typing and the precision flags are gone; the
  network is strongly typed and each tensor's type comes from the graph (FP16 weights and
  Casts, Q/DQ nodes), which is exactly what the accuracy report measured.

DLA: a DLA core runs FP16 and INT8 layers; ``gpu_fallback`` lets the rest run on the GPU.
TensorRT 11's releases so far do not support DLA (NVIDIA's 10.x-to-11.x migration guide), so
a DLA target with TensorRT 11 is refused with that reason.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from edge_isp.errors import InvalidInputError

API_PATHS = ("weak-8", "weak-10", "strong-11")
MIN_VERSION = (8, 5)


class UnsupportedTensorRTError(InvalidInputError):
    """The installed (or the target's) TensorRT cannot do what was asked."""


def parse_version(text: str) -> tuple[int, ...]:
    """``"10.3.0.30"`` -> (10, 3, 0, 30); a suffix after the numbers ("10.0.0b6") is ignored."""
    match = re.match(r"^\s*(\d+)((?:\.\d+)*)", str(text))
    if not match:
        raise InvalidInputError(f"not a TensorRT version: {text!r} (expected e.g. '10.3.0')")
    return tuple(int(p) for p in (match.group(1) + match.group(2)).split("."))


def api_path(version: str) -> str:
    """The API path (see the module docstring) for a TensorRT version string."""
    parts = parse_version(version)
    if parts[:2] < MIN_VERSION:
        raise UnsupportedTensorRTError(
            f"TensorRT {version} is too old: edge-isp builds with TensorRT 8.5 or later "
            "(JetPack 5.1 and newer); upgrade JetPack or TensorRT"
        )
    if parts[0] < 10:
        return "weak-8"
    if parts[0] == 10:
        return "weak-10"
    return "strong-11"


@dataclasses.dataclass(frozen=True)
class BuildPlan:
    """Everything the adapter sets on TensorRT's builder, as plain data.

    Attributes:
        api: the API path.
        tensorrt_version: the version the plan is for.
        precision: the ONNX file's precision ("fp32", "fp16", "int8").
        builder_flags: names of ``trt.BuilderFlag`` members to set.
        network_flags: names of ``trt.NetworkDefinitionCreationFlag`` members.
        workspace_bytes: the workspace memory pool limit.
        dla_core: the DLA core, or None.
        progress_monitor: whether the version has ``IProgressMonitor`` (bar and Ctrl-C).
        optimization_level: ``builder_optimization_level``, or None for the default.
        input_shapes: ``{input: (min, opt, max) shapes}`` for an ONNX file with dynamic axes
            (the optimization profile), else None. A dynamic batch spans 1 to the target's
            batch; dynamic height and width are fixed (min = opt = max) at ``input_size``.
        input_size: ``(width, height)`` of the full-resolution frame the engine runs at: part
            of the cache key, so one dynamic-size ONNX file gives one engine per size.
    """

    api: str
    tensorrt_version: str
    precision: str
    builder_flags: tuple[str, ...]
    network_flags: tuple[str, ...]
    workspace_bytes: int
    dla_core: int | None
    progress_monitor: bool
    optimization_level: int | None
    input_shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] | None
    input_size: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def plan_build(
    version: str,
    precision: str,
    *,
    workspace_mb: int,
    dla_core: int | None = None,
    gpu_fallback: bool = True,
    optimization_level: int | None = None,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    batch: int = 1,
    input_size: tuple[int, int] | None = None,
    spatial: dict[str, tuple[int, int]] | None = None,
) -> BuildPlan:
    """Decide the build for TensorRT ``version``.

    Args:
        precision: the precision of the ONNX file to build ("fp32", "fp16" or "int8").
        workspace_mb: the workspace memory pool limit in MiB.
        dla_core: build for this DLA core; None for the GPU.
        gpu_fallback: with DLA, let layers it cannot run fall back to the GPU.
        optimization_level: TensorRT's builder optimization level 0..5, or None.
        input_shapes: the ONNX inputs' shapes with None (or a string) for a dynamic axis;
            a dynamic batch (axis 0) spans 1 to ``batch`` in the optimization profile, a
            dynamic height and width (axes 2 and 3) take ``spatial``'s size for that input.
        batch: the largest batch (and the one TensorRT optimizes for).
        input_size: the full-resolution frame ``(width, height)`` the engine is for.
        spatial: ``{input: (height, width)}`` of the 4-D inputs at ``input_size``
            (:func:`spatial_shapes`); needed for an input whose height or width is dynamic.
    """
    path = api_path(version)
    if precision not in ("fp32", "fp16", "int8"):
        raise InvalidInputError(f"precision must be fp32, fp16 or int8, got {precision!r}")
    if workspace_mb < 1:
        raise InvalidInputError(f"the workspace limit must be >= 1 MiB, got {workspace_mb}")
    flags: list[str] = []
    network_flags: list[str] = []
    if path == "weak-8":
        network_flags.append("EXPLICIT_BATCH")
    if path == "strong-11":
        # Accepted and ignored by 11.x (always strongly typed); said anyway for clarity.
        network_flags.append("STRONGLY_TYPED")
    elif precision == "fp16":
        flags.append("FP16")
    elif precision == "int8":
        flags.append("INT8")
    if dla_core is not None:
        if dla_core < 0:
            raise InvalidInputError(f"dla_core must be >= 0, got {dla_core}")
        if precision == "fp32":
            raise InvalidInputError("DLA runs only fp16 or int8 layers; build the fp16 or int8 model for a DLA target")
        if path == "strong-11":
            raise UnsupportedTensorRTError(
                f"DLA (dla_core = {dla_core}) needs TensorRT 10 or 8.x (JetPack 6 or 5): TensorRT {version}'s releases "
                "do not support DLA; build for the GPU (remove dla_core) or with JetPack's TensorRT"
            )
        if gpu_fallback:
            flags.append("GPU_FALLBACK")
    if optimization_level is not None and not 0 <= optimization_level <= 5:
        raise InvalidInputError(f"builder optimization level must be 0..5, got {optimization_level}")
    if optimization_level is not None and parse_version(version)[:2] < (8, 6):
        raise UnsupportedTensorRTError(
            f"builder_optimization_level needs TensorRT 8.6 or later, this is {version}; remove it from the target"
        )
    profile = None
    if input_shapes is not None and any(not isinstance(d, int) for s in input_shapes.values() for d in s):
        if batch < 1:
            raise InvalidInputError(f"batch must be >= 1, got {batch}")
        profile = {
            name: _profile(name, shape, batch, (spatial or {}).get(name)) for name, shape in input_shapes.items()
        }
    return BuildPlan(
        api=path,
        tensorrt_version=str(version),
        precision=precision,
        builder_flags=tuple(flags),
        network_flags=tuple(network_flags),
        workspace_bytes=int(workspace_mb) * 1024 * 1024,
        dla_core=dla_core,
        progress_monitor=path != "weak-8",
        optimization_level=optimization_level,
        input_shapes=profile,
        input_size=None if input_size is None else (int(input_size[0]), int(input_size[1])),
    )


def spatial_shapes(input_kind: str, input_size: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """``{input: (height, width)}`` of a model's 4-D input at the full-resolution frame
    ``input_size`` (width, height): the packed ``raw`` planes are half the frame; an ``rgb``
    model's picture is the frame."""
    width, height = (int(v) for v in input_size)
    return {"raw": (height // 2, width // 2)} if input_kind == "raw" else {"rgb": (height, width)}


def _profile(
    name: str, shape: tuple[int | str | None, ...], batch: int, spatial: tuple[int, int] | None
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) of one input: a dynamic batch from 1 to ``batch``, a dynamic height and
    width fixed at ``spatial``; any other dynamic axis is refused."""
    low, high = [], []
    for axis, dim in enumerate(shape):
        if isinstance(dim, int):
            low.append(dim), high.append(dim)
        elif axis == 0:
            low.append(1), high.append(batch)
        elif axis in (2, 3) and len(shape) == 4 and spatial is not None:
            low.append(int(spatial[axis - 2])), high.append(int(spatial[axis - 2]))
        else:
            what = "height and width (give the engine's input size)" if axis in (2, 3) else f"axis {axis}"
            raise InvalidInputError(
                f"input {name!r} of shape {tuple(shape)} has a dynamic {what}; an engine is built for one size"
            )
    return tuple(low), tuple(high), tuple(high)
