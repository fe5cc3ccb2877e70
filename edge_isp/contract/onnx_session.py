"""An ONNX Runtime session, set up one way for every side: the runtime's backend, the export's
parity check and accuracy measurement, metadata reading and the benchmarks.

Errors only in ONNX Runtime's log (its optimizer's notes about FP16 constant folding are noise
to a user), the intra-op thread count when asked, and a model that does not load reported as
the user's bad file, with the model named.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_isp.errors import InvalidInputError, require

CPU_PROVIDERS = ("CPUExecutionProvider",)


def onnxruntime() -> Any:
    """The ``onnxruntime`` module, or a message naming the extra that installs it."""
    return require("onnxruntime", "runtime", "running ONNX models")


def session_options(threads: int | None = None) -> Any:
    """``SessionOptions`` that log errors only; ``threads`` sets the intra-op threads."""
    if threads is not None and threads < 1:
        raise InvalidInputError(f"threads must be >= 1, got {threads}")
    options = onnxruntime().SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
    return options


def open_session(
    model: str | Path | bytes, providers: Sequence[str] = CPU_PROVIDERS, threads: int | None = None
) -> Any:
    """An ``InferenceSession`` of ``model`` (a path, or the serialized bytes) on ``providers``."""
    ort = onnxruntime()
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=session_options(threads), providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        name = "the serialized model" if isinstance(model, bytes) else str(model)
        raise InvalidInputError(
            f"ONNX Runtime cannot load {name} ({type(exc).__name__}: {str(exc).strip()[:300]})"
        ) from None


def cpu_session(model: str | Path | bytes, threads: int | None = None) -> Any:
    """:func:`open_session` on the CPU provider only."""
    return open_session(model, CPU_PROVIDERS, threads)
