"""TensorRT backend: a serialized engine run with pycuda buffers on a CUDA stream.

Thin on purpose (the logic that can be pure lives elsewhere and is tested there): it
deserializes the engine, keeps one pinned host buffer (``cuda.pagelocked_empty``) and one
device buffer per I/O tensor, and runs each frame as asynchronous host-to-device copies,
``execute_async_v3`` and device-to-host copies on one CUDA stream, then waits for the stream.
Before loading, the engine is checked against the sidecar the export side's engine cache
writes beside it (:func:`edge_isp.contract.engine_sidecar.check_engine`): same bytes, same
TensorRT version and GPU model; the sidecar also carries the model's metadata (task, class
names, input size, profile).
TensorRT 10's tensor-name API throughout (``num_io_tensors``, ``get_tensor_name``,
``set_input_shape``, ``set_tensor_address``); dynamic shapes are bound on the first frame of
each new input shape.

CUDA work happens on the pipeline's inference thread, not the thread that made the backend,
so the device's primary context (the one TensorRT's runtime API uses too) is pushed around
every call rather than made current once with ``pycuda.autoinit``.

TensorRT's Python bindings come with JetPack on a Jetson (``python3-libnvinfer``; a virtual
environment needs ``--system-site-packages`` to see them) and pycuda with the ``jetson``
extra. Neither installs on the development machines, so this module is exercised only under
the ``tensorrt`` and ``gpu`` test markers, on hardware that has them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.contract.engine_sidecar import check_engine
from edge_isp.errors import InvalidInputError, MissingDependencyError, MissingFileError, install_hint
from edge_isp.runtime.interfaces import InferenceBackend, TensorSpec

log = logging.getLogger(__name__)


def import_tensorrt() -> tuple[Any, Any]:
    """``(tensorrt, pycuda.driver)``, or a :class:`MissingDependencyError` saying how to get them."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise MissingDependencyError(
            f"running a TensorRT engine needs TensorRT's Python bindings, which are not importable ({exc}). "
            "On a Jetson they come with JetPack (sudo apt install python3-libnvinfer); a virtual environment "
            "must be created with --system-site-packages to see them. Elsewhere use an .onnx model with "
            "--backend onnxruntime."
        ) from exc
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise MissingDependencyError(
            f"running a TensorRT engine needs pycuda, which is not importable ({exc}). Install it with: "
            f"{install_hint('jetson')}; it builds against the CUDA toolkit JetPack installs: put "
            "/usr/local/cuda/bin on PATH first (deploy/install-jetson.sh does all of this)"
        ) from exc
    return trt, cuda


def profile_shape(shape: Sequence[int], low: Sequence[int], high: Sequence[int]) -> tuple[int | None, ...]:
    """An engine input's shape as the runtime sees it: a dynamic axis (-1) that its
    optimization profile fixes (min = max, as a dynamic-size model's engine built at one size
    has for height and width) is that size; one that still varies (a batch range) is None."""
    return tuple(
        int(d) if d >= 0 else (int(lo) if lo == hi else None) for d, lo, hi in zip(shape, low, high, strict=True)
    )


class TensorRTBackend(InferenceBackend):
    """Runs a serialized TensorRT engine (``.engine``/``.plan``), checked with
    :func:`check_engine` first.

    Args:
        path: the engine file.
        device: the CUDA device index.
    """

    name = "tensorrt"

    def __init__(self, path: str | Path, device: int = 0) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise MissingFileError(f"TensorRT engine {self.path} does not exist")
        self._trt, self._cuda = import_tensorrt()
        self._cuda.init()
        self._device = self._cuda.Device(device)
        major, minor = self._device.compute_capability()
        self._metadata = check_engine(self.path, self._trt.__version__, self._device.name(), f"{major}.{minor}")
        self._context_cuda = None
        self._engine = self._context = self._stream = None
        self._buffers: dict[str, tuple[np.ndarray, Any]] = {}
        self._bound: dict[str, tuple[int, ...]] = {}
        self._load()
        self._inputs, self._outputs = self._read_specs()

    @property
    def description(self) -> str:
        return f"{self.name} {self._trt.__version__} on {self._device.name()}"

    @contextlib.contextmanager
    def _current(self) -> Iterator[None]:
        self._context_cuda.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def _load(self) -> None:
        trt = self._trt
        if self._context_cuda is None:
            self._context_cuda = self._device.retain_primary_context()
        # The logger must outlive the runtime and everything made through it.
        self._logger = trt.Logger(trt.Logger.WARNING)
        try:
            with self._current():
                self._runtime = trt.Runtime(self._logger)
                engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
                if engine is None:
                    raise InvalidInputError(
                        f"TensorRT {trt.__version__} cannot deserialize {self.path} (see its log above): an engine "
                        "only loads with the TensorRT version and GPU it was built for; rebuild it on this board "
                        "with `edge-isp export engine`"
                    )
                self._engine = engine
                self._context = engine.create_execution_context()
                self._stream = self._cuda.Stream()
        except BaseException:
            self._engine = self._context = self._stream = self._runtime = None
            self._context_cuda.detach()
            self._context_cuda = None
            raise

    def _read_specs(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        trt, engine = self._trt, self._engine
        inputs, outputs = [], []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            if is_input and -1 in shape:
                low, _, high = engine.get_tensor_profile_shape(name, 0)
                shape = profile_shape(shape, low, high)
            spec = TensorSpec(name=name, dtype=dtype, shape=tuple(None if d is None or d < 0 else d for d in shape))
            (inputs if is_input else outputs).append(spec)
        return inputs, outputs

    def _open(self) -> None:
        if self._engine is None:
            self._load()

    def _close(self) -> None:
        with self._current():
            for _host, device_buffer in self._buffers.values():
                device_buffer.free()
            self._buffers.clear()
            self._bound.clear()
            # Dropping the references lets TensorRT free the context before the engine.
            self._context = self._stream = None
            self._engine = self._runtime = None
        self._context_cuda.detach()
        self._context_cuda = None

    def _bind(self, feed: dict[str, np.ndarray]) -> None:
        """Set the input shapes and (re)allocate every buffer for them."""
        cuda, context = self._cuda, self._context
        for spec in self._inputs:
            if not context.set_input_shape(spec.name, feed[spec.name].shape):
                raise InvalidInputError(
                    f"the engine {self.path} does not accept input {spec.name!r} of shape "
                    f"{feed[spec.name].shape} (outside its optimization profile; it expects {spec.shape})"
                )
        for _host, device_buffer in self._buffers.values():
            device_buffer.free()
        self._buffers.clear()
        for spec in (*self._inputs, *self._outputs):
            shape = tuple(int(d) for d in context.get_tensor_shape(spec.name))
            host = cuda.pagelocked_empty(shape, spec.dtype)
            device_buffer = cuda.mem_alloc(max(1, host.nbytes))
            context.set_tensor_address(spec.name, int(device_buffer))
            self._buffers[spec.name] = (host, device_buffer)
        self._bound = {name: array.shape for name, array in feed.items()}

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda = self._cuda
        with self._current():
            if {name: array.shape for name, array in feed.items()} != self._bound:
                self._bind(feed)
            for spec in self._inputs:
                host, device_buffer = self._buffers[spec.name]
                np.copyto(host, feed[spec.name])
                cuda.memcpy_htod_async(device_buffer, host, self._stream)
            if not self._context.execute_async_v3(self._stream.handle):
                raise RuntimeError(f"TensorRT failed to run {self.path} (see its log above)")
            for spec in self._outputs:
                host, device_buffer = self._buffers[spec.name]
                cuda.memcpy_dtoh_async(host, device_buffer, self._stream)
            self._stream.synchronize()
            # Copies: the pinned buffers are overwritten by the next frame while this one's
            # results are still on their way through the pipeline.
            return {spec.name: self._buffers[spec.name][0].copy() for spec in self._outputs}
