"""The thin adapter over TensorRT's Python API: parse the ONNX file, apply a
:class:`~edge_isp.contract.build_plan.BuildPlan`, build with a progress monitor, deserialize.

Everything it decides is decided in :mod:`edge_isp.contract.build_plan` (pure, tested); this
module only translates the plan into TensorRT calls, and is imported lazily: TensorRT is
imported when a build starts. It is exercised only where TensorRT is installed (the tests
under the ``tensorrt`` marker); it was written against the TensorRT 10 and 11 Python API
references (``IProgressMonitor``, ``BuilderFlag``, ``NetworkDefinitionCreationFlag``,
timing caches, ``deserialize_cuda_engine``) and has not been run here, where TensorRT cannot
be installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_isp.contract.build_plan import BuildPlan
from edge_isp.contract.engine_cache import EngineError
from edge_isp.contract.progress import BuildCancelled, BuildProgress, run_cancellable
from edge_isp.errors import MissingDependencyError
from edge_isp.fileio import write_bytes

INSTALL_HINT = (
    "TensorRT's Python bindings are not installed. On a Jetson they come with JetPack "
    "(apt install python3-libnvinfer; a virtual environment needs --system-site-packages to see them); "
    "on an x86 machine with an NVIDIA GPU: pip install tensorrt. The PyPI package on a machine without "
    "CUDA is a stub and cannot build engines."
)


def import_tensorrt() -> Any:
    """``import tensorrt``, or :class:`MissingDependencyError` saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise MissingDependencyError(f"{INSTALL_HINT} ({exc})") from exc
    if not hasattr(trt, "Builder"):
        raise MissingDependencyError(f"{INSTALL_HINT} (the installed 'tensorrt' module has no Builder)")
    return trt


def installed_version() -> str | None:
    """``tensorrt.__version__``, or None where TensorRT is not importable."""
    try:
        return str(import_tensorrt().__version__)
    except MissingDependencyError:
        return None


def _monitor(trt: Any, progress: BuildProgress) -> Any:
    """An ``IProgressMonitor`` forwarding to ``progress``. Its callbacks run on TensorRT's
    threads; an exception there must not unwind into C++, so each is contained."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            # A broken progress bar must not break the build.
            with contextlib.suppress(Exception):
                progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            try:
                return progress.step_complete(phase_name, step)
            except Exception:
                return not progress.cancelled

        def phase_finish(self, phase_name: str) -> None:
            with contextlib.suppress(Exception):
                progress.phase_finish(phase_name)

    return Monitor()


def _flag_bits(enum: Any, names: tuple[str, ...], say: Callable[[str], None]) -> int:
    bits = 0
    for name in names:
        member = getattr(enum, name, None)
        if member is None:
            say(f"this TensorRT has no NetworkDefinitionCreationFlag.{name}; building without it")
            continue
        bits |= 1 << int(member)
    return bits


def _timing_cache(config: Any, path: Path | None, say: Callable[[str], None]) -> Any:
    data = path.read_bytes() if path is not None and path.is_file() else b""
    try:
        cache = config.create_timing_cache(data)
        if config.set_timing_cache(cache, False):
            return cache
    except Exception as exc:  # TensorRT raises on a corrupt or foreign cache
        say(f"timing cache {path} is unusable ({exc}); starting an empty one")
    cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, True)
    return cache


def build_serialized(
    onnx_path: str | Path,
    plan: BuildPlan,
    *,
    timing_cache: str | Path | None = None,
    progress: BuildProgress | None = None,
    say: Callable[[str], None] = print,
) -> bytes:
    """Build the engine for ``onnx_path`` as ``plan`` says and return the serialized plan.

    ``timing_cache`` is read before and written (atomically) after the build. With a
    ``progress`` and a TensorRT that has ``IProgressMonitor``, the build shows bars and
    Ctrl-C cancels it (:class:`~edge_isp.contract.progress.BuildCancelled`).
    """
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_flag_bits(trt.NetworkDefinitionCreationFlag, plan.network_flags, say))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT {plan.tensorrt_version} cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if plan.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
    if plan.optimization_level is not None:
        config.builder_optimization_level = plan.optimization_level
    if plan.input_shapes:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in plan.input_shapes.items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)
    cache_path = Path(timing_cache) if timing_cache is not None else None
    _timing_cache(config, cache_path, say)
    if progress is not None and plan.progress_monitor:
        config.progress_monitor = _monitor(trt, progress)
        serialized = run_cancellable(lambda: builder.build_serialized_network(network, config), progress)
    else:
        if progress is not None:
            say(f"TensorRT {plan.tensorrt_version} has no progress monitor: no progress bar, and Ctrl-C waits for it")
        serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        if progress is not None and progress.cancelled:
            raise BuildCancelled("engine build cancelled (Ctrl-C); no engine was written")
        raise EngineError(f"TensorRT {plan.tensorrt_version} failed to build {onnx_path}; its messages above say why")
    if cache_path is not None:
        write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


@dataclasses.dataclass
class LoadedEngine:
    """A deserialized engine with the runtime that owns it (which must outlive it)."""

    runtime: Any
    engine: Any


def deserialize(plan: bytes) -> LoadedEngine | None:
    """Deserialize a plan; None when TensorRT refuses it (another version or GPU, corruption)."""
    trt = import_tensorrt()
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    engine = runtime.deserialize_cuda_engine(plan)
    return None if engine is None else LoadedEngine(runtime, engine)
