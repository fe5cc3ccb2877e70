"""`edge-isp run --model model.onnx` on a machine with TensorRT: the engine for this GPU,
built on first use and cached, as jetson-inference does; else ONNX Runtime, with the reason.

The build is `edge-isp export engine`'s (:func:`edge_isp.contract.engine.build_engine`): the
model's own precision and input size (from its metadata), TensorRT's progress bars on a
terminal, Ctrl-C to cancel (:class:`~edge_isp.contract.progress.BuildCancelled` stops the run),
the timing cache and the engine with its sidecar in one cache folder,
``$XDG_CACHE_HOME/edge-isp/engines`` (``~/.cache/edge-isp/engines``; the service's
``/var/cache/edge-isp/engines``). The next start finds the engine there in a moment.

TensorRT is reached only through the seams ``builder`` (``version()``, ``build()``,
``load()``: :class:`edge_isp.contract.engine.TensorRTBackend` by default), ``gpu`` and
``runtime_check`` (pycuda, which the TensorRT backend runs engines with); the decisions
around them are pure and tested with stand-ins.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_isp.errors import EdgeIspError

DEFAULT_WORKSPACE_MB = 1024


@dataclasses.dataclass(frozen=True)
class EngineChoice:
    """What runs the ONNX model: ``engine`` (a cached TensorRT engine) or None for ONNX
    Runtime; ``message`` is the one line that says which and why; ``expected`` is True where
    ONNX Runtime is simply what this machine has (no TensorRT), not a fallback worth a warning."""

    engine: Path | None
    message: str
    expected: bool = False


def engine_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/edge-isp/engines``, else ``~/.cache/edge-isp/engines``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge-isp" / "engines"


def _pycuda_importable() -> None:
    import pycuda.driver  # noqa: F401  # the TensorRT backend's buffers and stream


def engine_on_first_use(
    onnx_path: str | Path,
    *,
    cache_dir: str | Path | None = None,
    builder: Any = None,
    gpu: Any = None,
    runtime_check: Callable[[], None] = _pycuda_importable,
    progress: Any = None,
    say: Callable[[str], None] = print,
    input_size: tuple[int, int] | None = None,
) -> EngineChoice:
    """The TensorRT engine for ``onnx_path`` on this GPU (built now if the cache lacks it), or
    None with the reason ONNX Runtime runs it instead. Ctrl-C during a build raises
    :class:`~edge_isp.contract.progress.BuildCancelled`.

    An engine runs at one size: a fixed-size model's, or for a dynamic-size model (metadata
    ``edge_isp.size_multiple``) ``input_size`` (``run --input-size``), else the size it was
    exported at; each size is its own cached engine."""
    from edge_isp.contract.engine import TensorRTBackend, build_engine
    from edge_isp.contract.gpu import detect_gpu
    from edge_isp.contract.metadata import read_metadata
    from edge_isp.contract.progress import BuildCancelled, BuildProgress
    from edge_isp.contract.targets import Target

    onnx_path = Path(onnx_path)
    builder = builder or TensorRTBackend(say)
    try:
        version = builder.version()
    except EdgeIspError:
        return EngineChoice(None, f"ONNX Runtime runs {onnx_path.name}: TensorRT is not installed here", True)
    try:
        runtime_check()
    except ImportError as exc:
        return EngineChoice(
            None,
            f"ONNX Runtime runs {onnx_path.name}, not TensorRT {version}: running an engine needs pycuda "
            f"({exc}); pip install 'edge-isp[jetson]' (or deploy/install-jetson.sh)",
        )
    try:
        gpu = gpu or detect_gpu()
        metadata = read_metadata(onnx_path)
        target = Target(
            name="this-gpu",
            precision=metadata.precision,
            input_size=tuple(input_size if input_size is not None and metadata.dynamic_size else metadata.input_size),
            memory_pool_mb=DEFAULT_WORKSPACE_MB,
            description=f"built on first use by edge-isp run for {gpu.name}",
        )
    except EdgeIspError as exc:
        return EngineChoice(None, f"ONNX Runtime runs {onnx_path.name}, not TensorRT {version}: {exc}")
    folder = Path(cache_dir) if cache_dir is not None else engine_cache_dir()
    if progress is None:
        progress = BuildProgress(show=sys.stderr.isatty())
    try:
        result = build_engine(onnx_path, target, folder, backend=builder, gpu=gpu, progress=progress, say=say)
    except BuildCancelled:
        raise
    except EdgeIspError as exc:
        return EngineChoice(
            None, f"ONNX Runtime runs {onnx_path.name}: building its TensorRT {version} engine failed ({exc})"
        )
    path = result.entry.engine_path
    if result.built:
        seconds = float(result.entry.info.get("build_seconds", 0.0))
        how = f"built for {gpu.name} with TensorRT {version} in {seconds:.0f} s, cached as {path}"
    else:
        how = f"found in the cache for {gpu.name} and TensorRT {version}: {path}"
    return EngineChoice(path, f"TensorRT runs {onnx_path.name} ({metadata.precision}): engine {how}")
