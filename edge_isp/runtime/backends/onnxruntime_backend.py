"""ONNX Runtime backend: CPU anywhere, CUDA where ONNX Runtime was built with it.

The session is created when the backend is made (so its inputs, outputs and metadata are
known before it runs) and released by :meth:`close`; opening again recreates it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.contract.onnx_session import onnxruntime, open_session
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.runtime.interfaces import InferenceBackend, TensorSpec

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
# ONNX type strings (NodeArg.type) -> numpy dtypes of the inputs and outputs the contract uses.
_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(bool)": np.bool_,
}


def choose_providers(available: Sequence[str], device: str = "auto") -> list[str]:
    """The execution providers to ask for: CUDA first when ``device`` allows it and it is
    available, then always the CPU. ``device="cuda"`` without CUDA is refused."""
    if device not in DEVICES:
        raise InvalidInputError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cuda" and _CUDA not in available:
        raise InvalidInputError(
            f"device 'cuda' asked for, but this ONNX Runtime has no CUDA provider (it has {', '.join(available)}); "
            "install onnxruntime-gpu, or use device 'cpu'"
        )
    if device != "cpu" and _CUDA in available:
        return [_CUDA, _CPU]
    return [_CPU]


def runs_on_cpu(device: str = "auto") -> bool:
    """Whether an ONNX Runtime session for ``device`` runs on the CPU (no CUDA provider asked
    for, or none in this ONNX Runtime)."""
    return _CUDA not in choose_providers(onnxruntime().get_available_providers(), device)


def _spec(arg: Any) -> TensorSpec:
    if arg.type not in _DTYPES:
        raise InvalidInputError(f"tensor {arg.name!r} has type {arg.type}, which the runtime does not handle")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape)
    return TensorSpec(name=arg.name, dtype=np.dtype(_DTYPES[arg.type]), shape=shape)


class OnnxRuntimeBackend(InferenceBackend):
    """Runs an ``.onnx`` file with ONNX Runtime.

    Args:
        path: the ONNX model.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
        threads: intra-op threads for the CPU provider (None: ONNX Runtime's default, one
            per core).

    Attributes:
        providers: the execution providers the session actually uses, best first.
    """

    name = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise MissingFileError(f"ONNX model {self.path} does not exist")
        if threads is not None and threads < 1:
            raise InvalidInputError(f"threads must be >= 1, got {threads}")
        self.device, self.threads = device, threads
        self._requested = choose_providers(onnxruntime().get_available_providers(), device)
        self._session = self._create()
        self.providers: list[str] = list(self._session.get_providers())
        try:
            self._inputs = [_spec(a) for a in self._session.get_inputs()]
            self._outputs = [_spec(a) for a in self._session.get_outputs()]
            self._metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        except UnicodeDecodeError as exc:  # ONNX Runtime loads a graph whose names are not UTF-8
            raise InvalidInputError(f"{self.path}: a name or metadata entry is not UTF-8 text ({exc})") from None
        self._output_names = [s.name for s in self._outputs]
        if _CUDA in self._requested and _CUDA not in self.providers:
            # ONNX Runtime falls back to the CPU silently when the CUDA libraries fail to load.
            log.warning("ONNX Runtime could not start its CUDA provider; running %s on the CPU", self.path)

    def _create(self) -> Any:
        return open_session(self.path, self._requested, self.threads)

    @property
    def description(self) -> str:
        """E.g. ``onnxruntime (CPUExecutionProvider)``: what runs the model, for logs and the UI."""
        return f"{self.name} ({', '.join(self.providers)})"

    def _open(self) -> None:
        if self._session is None:
            self._session = self._create()

    def _close(self) -> None:
        self._session = None

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._session.run(self._output_names, feed)
        return dict(zip(self._output_names, values, strict=True))
