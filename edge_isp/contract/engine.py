"""Build (or find in the cache) the TensorRT engine of an exported model for a target.

Ties the pure parts together: the target (:mod:`edge_isp.contract.targets`), the build plan
for the installed TensorRT (:mod:`edge_isp.contract.build_plan`), the cache key and sidecar
(:mod:`edge_isp.contract.engine_cache`). TensorRT itself is reached through a *backend*
object with ``version()``, ``build(onnx, plan, timing_cache, progress)`` and ``load(plan)``;
the default one is :mod:`edge_isp.contract.tensorrt_build`, and tests pass a stand-in to check
the cache, rebuild and cancel logic without a GPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_isp.contract.build_plan import BuildPlan, plan_build, spatial_shapes
from edge_isp.contract.engine_cache import CachedEngine, EngineCache, EngineKey
from edge_isp.contract.gpu import GpuInfo, detect_gpu
from edge_isp.contract.metadata import read_metadata
from edge_isp.contract.progress import BuildProgress
from edge_isp.contract.targets import Target
from edge_isp.contract.tensorrt_build import build_serialized, deserialize, import_tensorrt
from edge_isp.errors import InvalidInputError, require
from edge_isp.fileio import sha256_file


class TensorRTBackend:
    """The real backend: TensorRT through :mod:`edge_isp.contract.tensorrt_build`."""

    def __init__(self, say: Callable[[str], None] = print) -> None:
        self.say = say

    def version(self) -> str:
        return str(import_tensorrt().__version__)

    def build(self, onnx_path: Path, plan: BuildPlan, timing_cache: Path, progress: BuildProgress | None) -> bytes:
        return build_serialized(onnx_path, plan, timing_cache=timing_cache, progress=progress, say=self.say)

    def load(self, plan: bytes) -> Any:
        return deserialize(plan)


def onnx_input_shapes(path: str | Path) -> dict[str, tuple[int | str, ...]]:
    """``{input name: shape}`` of an ONNX file, a dynamic axis as its name (a string)."""
    onnx = require("onnx", "export", "reading ONNX models")
    model = onnx.load(str(path), load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    shapes = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)
    return shapes


def plan_for(target: Target, onnx_path: str | Path, tensorrt_version: str) -> BuildPlan:
    """The build plan of ``onnx_path`` for ``target`` with TensorRT ``tensorrt_version``; the
    model's precision must be the target's, and its input size too, unless it is a dynamic-size
    model (metadata ``edge_isp.size_multiple``): its engine is then built fixed at the target's
    size (an optimization profile with min = opt = max there), which must be a multiple."""
    metadata = read_metadata(onnx_path)
    if metadata.precision != target.precision:
        raise InvalidInputError(
            f"target {target.name!r} wants a {target.precision} engine but {onnx_path} is the {metadata.precision} "
            f"model; build from the {target.precision} ONNX file "
            f"(edge-isp export precision MODEL --precision {target.precision})"
        )
    if metadata.size_multiple is not None:
        multiple = metadata.size_multiple
        if target.input_size[0] % multiple or target.input_size[1] % multiple:
            raise InvalidInputError(
                f"target {target.name!r} has input size {target.input_size[0]}x{target.input_size[1]} but {onnx_path} "
                f"runs at sizes that are multiples of {multiple} only (metadata edge_isp.size_multiple)"
            )
    elif tuple(metadata.input_size) != tuple(target.input_size):
        raise InvalidInputError(
            f"target {target.name!r} has input size {target.input_size[0]}x{target.input_size[1]} but {onnx_path} "
            f"was exported at {metadata.input_size[0]}x{metadata.input_size[1]}; export at the target's size"
        )
    return plan_build(
        tensorrt_version,
        metadata.precision,
        workspace_mb=target.memory_pool_mb,
        dla_core=target.dla_core,
        gpu_fallback=target.gpu_fallback,
        optimization_level=target.builder_optimization_level,
        input_shapes=onnx_input_shapes(onnx_path),
        batch=target.batch,
        input_size=target.input_size,
        spatial=spatial_shapes(metadata.input_kind, target.input_size),
    )


def engine_key(onnx_sha256: str, plan: BuildPlan, gpu: GpuInfo) -> EngineKey:
    """The cache key of building ``plan`` on ``gpu`` (the plan carries the settings)."""
    settings = {
        "workspace_bytes": plan.workspace_bytes,
        "builder_flags": list(plan.builder_flags),
        "network_flags": list(plan.network_flags),
        "optimization_level": plan.optimization_level,
        "input_shapes": {k: [list(s) for s in v] for k, v in (plan.input_shapes or {}).items()},
        # One ONNX file with a dynamic size gives one engine per size.
        "input_size": None if plan.input_size is None else list(plan.input_size),
    }
    return EngineKey(onnx_sha256, plan.precision, plan.tensorrt_version, gpu.name, gpu.sm, plan.dla_core, settings)


@dataclasses.dataclass
class EngineResult:
    """The engine (the backend's loaded object), its cache entry, and whether it was built now."""

    engine: Any
    entry: CachedEngine
    built: bool
    plan: BuildPlan


def build_engine(
    onnx_path: str | Path,
    target: Target,
    cache_dir: str | Path,
    *,
    backend: Any = None,
    gpu: GpuInfo | None = None,
    rebuild: bool = False,
    progress: BuildProgress | None = None,
    say: Callable[[str], None] = print,
) -> EngineResult:
    """The engine of ``onnx_path`` for ``target`` from ``cache_dir``, built if it is not there
    (or is stale, or fails to load). ``gpu`` defaults to the detected GPU 0."""
    onnx_path = Path(onnx_path)
    backend = backend or TensorRTBackend(say)
    version = backend.version()
    if target.tensorrt_version and not version.startswith(target.tensorrt_version.split(".")[0] + "."):
        say(f"note: target {target.name!r} names TensorRT {target.tensorrt_version}; building with {version}")
    plan = plan_for(target, onnx_path, version)
    gpu = gpu or detect_gpu()
    key = engine_key(sha256_file(onnx_path), plan, gpu)
    cache = EngineCache(cache_dir, say)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    timing = cache.timing_cache_path(version, gpu.slug, gpu.sm)
    stem = onnx_path.name.split(".")[0]
    info = {
        "target": target.to_dict(),
        "onnx": str(onnx_path.resolve()),
        "plan": plan.to_dict(),
        "gpu": {"name": gpu.name, "compute_capability": gpu.sm},
        "model": read_metadata(onnx_path).to_props(),
        "timing_cache": timing.name,
    }
    engine, entry, built = cache.load_or_build(
        key, stem, lambda: backend.build(onnx_path, plan, timing, progress), backend.load, info, rebuild=rebuild
    )
    return EngineResult(engine, entry, built, plan)
