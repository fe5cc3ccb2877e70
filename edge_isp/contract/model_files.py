"""Which ONNX file of a model runs, for the runtime that runs it and the precision asked for.

The export writes one network in several files side by side (``edge-isp export``):

- ``NAME.onnx`` or ``NAME.fp32.onnx``: FP32, the reference;
- ``NAME.fp16.onnx``: FP16 weights (TensorRT, or ONNX Runtime on a GPU);
- ``NAME.int8.onnx``: INT8 as Q/DQ nodes, the graph TensorRT builds an INT8 engine from;
- ``NAME.int8-cpu.onnx``: INT8 in ONNX Runtime's own integer format for its CPU kernels
  (:mod:`edge_isp.export.cpu_int8`), for boards without TensorRT (a Raspberry Pi). ONNX
  Runtime runs the Q/DQ graph slower than FP32 on a CPU, and TensorRT does not build the CPU one.

The rule (:func:`choose_model_file`), for the file the user named and ``precision``:

- ``"auto"`` (the default): the named file, except where a sibling fits the runtime better:
  ONNX Runtime on a CPU runs ``NAME.int8-cpu.onnx`` when it lies beside the named file and the
  named file is FP32 or the Q/DQ INT8 one (the export puts it there, measured per light level in
  its report; ``--precision fp32`` runs FP32 anyway); TensorRT given the CPU INT8 file builds
  from its Q/DQ sibling ``NAME.int8.onnx``.
- ``"fp32"``, ``"fp16"``, ``"int8"``: that precision's file for that runtime (INT8 is
  ``NAME.int8-cpu.onnx`` on ONNX Runtime's CPU, ``NAME.int8.onnx`` on TensorRT and on ONNX
  Runtime's GPU); a missing file is an error naming it and the export step that makes it.

Pure: which files exist is passed in, so the rule is tested without any.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

from edge_isp.errors import InvalidInputError, MissingFileError

RUNTIMES = ("tensorrt", "onnxruntime-cpu", "onnxruntime-gpu")
PRECISION_CHOICES = ("auto", "fp32", "fp16", "int8")
FILE_PRECISIONS = ("fp32", "fp16", "int8", "int8-cpu")
# The contract's INT8 target (issue #16): an INT8 file computes at least this share of its
# model's multiply-accumulates in INT8 (the layer search's default budget).
MIN_INT8_MAC_SHARE = 0.9
_SUFFIX = re.compile(r"\.(fp32|fp16|int8|int8-cpu)$")


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """The file to run and the one line that says why."""

    path: Path
    precision: str
    reason: str


def split_name(path: str | Path) -> tuple[Path, str]:
    """``dir/NAME.int8-cpu.onnx`` -> (``dir/NAME``, ``"int8-cpu"``); a name without a
    precision suffix (``model.onnx``) is FP32."""
    path = Path(path)
    match = _SUFFIX.search(path.stem)
    if match is None:
        return path.with_name(path.stem), "fp32"
    return path.with_name(path.stem[: match.start()]), match.group(1)


def sibling_candidates(path: str | Path, precision: str) -> list[Path]:
    """The file names a ``precision`` sibling of ``path`` may have, preferred first."""
    if precision not in FILE_PRECISIONS:
        raise InvalidInputError(f"file precision must be one of {', '.join(FILE_PRECISIONS)}, got {precision!r}")
    base, _ = split_name(path)
    suffix = Path(path).suffix or ".onnx"
    names = [base.with_name(f"{base.name}.{precision}{suffix}")]
    if precision == "fp32":
        names.append(base.with_name(f"{base.name}{suffix}"))
    return names


def file_precision(runtime: str, precision: str) -> str:
    """The file precision that ``precision`` means on ``runtime``."""
    if runtime not in RUNTIMES:
        raise InvalidInputError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if precision not in PRECISION_CHOICES[1:]:
        raise InvalidInputError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {precision!r}")
    if precision == "int8" and runtime == "onnxruntime-cpu":
        return "int8-cpu"
    return precision


def choose_model_file(
    path: str | Path, runtime: str, precision: str = "auto", exists: Callable[[Path], bool] = Path.is_file
) -> ModelFile:
    """The file ``runtime`` runs for the user's ``path`` and ``precision`` (module docstring)."""
    path = Path(path)
    if precision not in PRECISION_CHOICES:
        raise InvalidInputError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {precision!r}")
    if runtime not in RUNTIMES:
        raise InvalidInputError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    _, named = split_name(path)

    def sibling(wanted: str) -> Path | None:
        return next((p for p in sibling_candidates(path, wanted) if p == path or exists(p)), None)

    if precision == "auto":
        if runtime == "onnxruntime-cpu" and named in ("fp32", "int8"):
            found = sibling("int8-cpu")
            if found is not None:
                return ModelFile(found, "int8-cpu", f"{found.name}: the CPU INT8 model beside {path.name} "
                                 "(ONNX Runtime on a CPU; --precision fp32 runs FP32)")  # fmt: skip
        if runtime == "tensorrt" and named == "int8-cpu":
            found = sibling("int8")
            if found is None:
                raise MissingFileError(
                    f"{path.name} is INT8 in ONNX Runtime's CPU format, which TensorRT does not build, and its "
                    f"Q/DQ sibling {sibling_candidates(path, 'int8')[0].name} is not there: give the FP32 or "
                    "Q/DQ INT8 file (`edge-isp export precision MODEL --precision int8` makes it)"
                )
            return ModelFile(found, "int8", f"{found.name}: the Q/DQ INT8 model TensorRT builds, beside {path.name}")
        return ModelFile(path, named, f"{path.name}: the file given ({named})")
    wanted = file_precision(runtime, precision)
    found = sibling(wanted)
    if found is None:
        expected = sibling_candidates(path, wanted)[0]
        raise MissingFileError(
            f"--precision {precision} on {runtime} runs {expected.name}, which is not beside {path.name}: make it with "
            f"`edge-isp export precision {path} --precision {wanted}` (or give --precision auto)"
        )
    return ModelFile(found, wanted, f"{found.name}: the {wanted} model for {runtime} (--precision {precision})")
