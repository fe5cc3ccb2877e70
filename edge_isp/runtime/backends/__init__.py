"""Inference backends: TensorRT, ONNX Runtime, torch; one interface, picked by the model file.

``make_backend(path)`` with ``backend="auto"`` picks by the file: an engine (``.engine``,
``.plan``, ``.trt``) runs on TensorRT, an ``.onnx`` file on ONNX Runtime (its CUDA provider
when present, else the CPU), a checkpoint (``.pt``, ``.pth``) on torch. It logs what it chose
and the backend's ``description`` says it too. Each backend imports its library only when
made, so a board without torch (or a laptop without TensorRT) imports this package fine.
With ``engine_on_first_use`` (what `edge-isp run` asks for) an ``.onnx`` file on a machine with
TensorRT runs as a TensorRT engine built for its GPU on first use and cached
(:mod:`~edge_isp.runtime.backends.engine_on_first_use`); ONNX Runtime, with the reason, when
that cannot be. Which of a model's ONNX files runs (FP32, the Q/DQ INT8 one TensorRT builds, the
CPU INT8 one ONNX Runtime's CPU runs fast) follows ``precision`` and the runtime
(:func:`edge_isp.contract.model_files.choose_model_file`); the log says which and why.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edge_isp.contract.model_files import PRECISION_CHOICES, ModelFile, choose_model_file
from edge_isp.errors import EdgeIspError, InvalidInputError, MissingFileError
from edge_isp.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend, runs_on_cpu
from edge_isp.runtime.backends.tensorrt_backend import TensorRTBackend
from edge_isp.runtime.backends.torch_backend import TorchBackend
from edge_isp.runtime.interfaces import InferenceBackend
from edge_isp.runtime.native import prefer_libgcc_unwinder

log = logging.getLogger(__name__)


prefer_libgcc_unwinder()

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
ONNX_SUFFIXES = (".onnx",)
CHECKPOINT_SUFFIXES = (".pt", ".pth")
_RUNS = {"tensorrt": ENGINE_SUFFIXES, "onnxruntime": ONNX_SUFFIXES, "torch": CHECKPOINT_SUFFIXES}
_HINTS = {
    "tensorrt": "build an engine from the ONNX file on the board with `edge-isp export engine`",
    "onnxruntime": "give the .onnx file the engine was built from",
    "torch": "give a training checkpoint (.pt) or a registered model name",
}


def choose_backend(model: str | Path, backend: str = "auto") -> str:
    """The backend that runs ``model``: ``backend`` itself, checked against the file's kind,
    or for ``"auto"`` the one the file's suffix calls for."""
    if backend not in BACKENDS:
        raise InvalidInputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    suffix = Path(model).suffix.lower()
    kind = next((name for name, suffixes in _RUNS.items() if suffix in suffixes), None)
    if backend == "auto":
        if kind is None:
            known = ", ".join(s for suffixes in _RUNS.values() for s in suffixes)
            raise InvalidInputError(
                f"cannot tell how to run {str(model)!r} from its name: expected one of {known}, got {suffix or 'none'}"
            )
        return kind
    # A registry name (no suffix, no file) is the torch backend's development shortcut.
    if backend == "torch" and suffix == "" and not Path(model).exists():
        return backend
    if kind != backend:
        raise InvalidInputError(
            f"the {backend} backend runs {'/'.join(_RUNS[backend])} files, got {str(model)!r}; {_HINTS[backend]}"
        )
    return backend


def make_backend(
    model: str | Path,
    backend: str = "auto",
    *,
    device: str = "auto",
    threads: int | None = None,
    engine_on_first_use: bool = False,
    precision: str = "auto",
    input_size: tuple[int, int] | None = None,
) -> InferenceBackend:
    """Make (not yet open) the backend for ``model``.

    Args:
        model: an engine, an ONNX file, or a checkpoint (see the module docstring).
        backend: one of :data:`BACKENDS`.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` for ONNX Runtime and torch; for TensorRT a
            device index as a string ("0") or "auto" (device 0).
        threads: ONNX Runtime's intra-op threads (None: one per core).
        engine_on_first_use: with ``backend="auto"``, run an ONNX file as this GPU's TensorRT
            engine (built and cached on first use) where TensorRT is installed and ``device``
            is not "cpu".
        precision: for an ONNX file, which of the model's files runs: "auto" or "fp32",
            "fp16", "int8" (:data:`~edge_isp.contract.model_files.PRECISION_CHOICES`).
        input_size: with ``engine_on_first_use``, the size a dynamic-size model's engine is
            built at (None: the size it was exported at).

    Returns:
        The backend; its ``name`` and ``description`` say what runs the model.
    """
    name = choose_backend(model, backend)
    path = Path(model)
    if name != "torch" and not path.is_file():
        raise MissingFileError(f"model {path} does not exist")
    if precision not in PRECISION_CHOICES:
        raise InvalidInputError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {precision!r}")
    if name != "onnxruntime" and precision != "auto":
        raise InvalidInputError(f"--precision {precision} chooses among ONNX files; {path.name} runs as it is")
    if name == "onnxruntime" and backend == "auto" and engine_on_first_use and device != "cpu":
        from edge_isp.runtime.backends.engine_on_first_use import engine_on_first_use as first_use

        try:
            trt_file: ModelFile | None = choose_model_file(path, "tensorrt", precision)
        except EdgeIspError as exc:
            log.info("not trying TensorRT: %s", exc)
            trt_file = None
        if trt_file is not None:
            choice = first_use(trt_file.path, say=log.info, input_size=input_size)
            if choice.engine is not None:
                log.info("%s; %s", trt_file.reason, choice.message)
                name, path = "tensorrt", choice.engine
            elif choice.expected:
                log.debug(choice.message)
            else:
                log.warning(choice.message)
    if name == "onnxruntime":
        runtime = "onnxruntime-cpu" if runs_on_cpu(device) else "onnxruntime-gpu"
        chosen = choose_model_file(path, runtime, precision)
        log.info("ONNX Runtime runs %s", chosen.reason)
        path = chosen.path
    if name == "tensorrt":
        index = 0 if device in ("auto", "cuda") else _device_index(device)
        made: InferenceBackend = TensorRTBackend(path, device=index)
    elif name == "onnxruntime":
        made = OnnxRuntimeBackend(path, device=device, threads=threads)
    else:
        made = TorchBackend(model, device=device)
    how = "chosen by its file type" if backend == "auto" else "as asked"
    log.info("inference backend for %s: %s (%s)", model, made.description, how)
    return made


def _device_index(device: str) -> int:
    try:
        index = int(device)
    except ValueError:
        raise InvalidInputError(f"TensorRT's device must be a CUDA device index such as 0, got {device!r}") from None
    if index < 0:
        raise InvalidInputError(f"a CUDA device index is >= 0, got {index}")
    return index


__all__ = ["BACKENDS", "choose_backend", "make_backend"]
