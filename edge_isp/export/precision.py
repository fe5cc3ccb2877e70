"""Precision lives in the ONNX file: FP16 as converted weights, INT8 as Q/DQ nodes.

- :func:`convert_fp16`: float32 weights and arithmetic to float16, with the graph's inputs
  and outputs kept float32 unless asked (a Cast at each end), through ONNX Runtime's
  converter (``onnxruntime.transformers.float16``; ``onnxconverter-common``'s where that is
  what is installed). Nodes named in ``keep`` stay float32.
- :func:`quantize_int8`: static INT8 quantization in the QDQ format TensorRT builds from,
  with ONNX Runtime's ``quantize_static``: symmetric activations and per-channel symmetric
  weights (TensorRT's scheme: zero points are 0), bias left in float (TensorRT folds it),
  Q/DQ on the inputs of Conv/Gemm/MatMul, the layers TensorRT runs in INT8. Ranges come
  from a calibration feed (:mod:`edge_isp.export.calibration`) and are cached in a JSON
  file, so the many variants of a sensitivity search calibrate once. Nodes named in
  ``keep`` are left unquantized (float32), and so are the ISP's numerically delicate parts
  (:func:`isp_float_islands`): only Conv/Gemm/MatMul get Q/DQ, so the element-wise ISP (the
  Anscombe square root, the HQS data step's division, the inverse Anscombe, the tone curve)
  stays float as it is, and the few convolutions inside those parts (the bilinear fill's
  normalized convolution, whose output is divided by its mask's; the tone curve's colour
  matrix and residual) are kept out of INT8 with them: float islands, where TensorRT runs
  them in FP32 (or FP16 where the builder allows it). The layers that write the answer
  (:func:`output_layers`: the detector's heatmap, size and offset convolutions, the classifier's
  last layer) stay float as well: a fraction of a percent of the work, and the detector's boxes
  and score order are measured on exactly their outputs.

Which nodes to keep is measured, not guessed: see :mod:`edge_isp.export.sensitivity`.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from edge_isp.contract.metadata import read_metadata, set_metadata
from edge_isp.errors import InvalidInputError, MissingDependencyError, MissingFileError, install_hint, require
from edge_isp.export.calibration import calibration_errors, chunked
from edge_isp.fileio import write_bytes

INT8_OP_TYPES = ("Conv", "Gemm", "MatMul")
ISP_SCOPE = "/isp/"
# The learned ISP's denoising prior (its U-Net, one per HQS iteration): the ISP's only part
# whose convolutions go to INT8 in the Q/DQ graph.
ISP_PRIOR_SCOPE = "/isp/priors"
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
# Measured on the shipped models at 3/6/30 lux against FP32 on identical frames (400 detection
# images, 1000 classification images per level): the 99.99th percentile of |x| loses less than
# min/max (whose ranges the noisy low-light raw's outliers stretch) and than the 99.999th.
DEFAULT_CALIBRATION = "percentile"
DEFAULT_PERCENTILE = 99.99


def _load(model_or_path: Any) -> Any:
    onnx = require("onnx", "export", "converting ONNX models")
    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        if not path.is_file():
            raise MissingFileError(f"ONNX model {path} does not exist")
        return onnx.load(str(path))
    return model_or_path


def _save(model: Any, path: str | Path) -> Path:
    path = Path(path)
    write_bytes(path, model.SerializeToString())
    return path


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantization tools log advice and per-tensor notes through the root
    logger at WARNING; they would drown the progress display."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def node_names(model_or_path: Any, op_types: Sequence[str] | None = None) -> list[str]:
    """Names of the graph's nodes, in graph order, optionally only those of ``op_types``."""
    model = _load(model_or_path)
    return [n.name for n in model.graph.node if op_types is None or n.op_type in op_types]


def layer_name(node_name: str) -> str:
    """A readable layer name from an exported node name: its module scope without the levels of
    containers whose children are numbered, ``/head/features.3/conv/conv.1/conv.1.0/Conv`` ->
    ``head/features.3/conv.1/conv.1.0``.
    """
    parts = [p for p in node_name.strip("/").split("/") if p]
    if len(parts) > 1:
        parts = parts[:-1]  # the op type (Conv, Gemm...)
    kept = [
        p for i, p in enumerate(parts) if not ("." not in p and i + 1 < len(parts) and parts[i + 1].startswith(p + "."))
    ]
    return "/".join(kept) or node_name


def _converter() -> Any:
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:
        try:
            from onnxconverter_common.float16 import convert_float_to_float16
        except ImportError:
            raise MissingDependencyError(
                "FP16 conversion needs onnxruntime (its transformers.float16 module) or onnxconverter-common; "
                f"install them with: {install_hint('export')}"
            ) from None
    return convert_float_to_float16


def convert_fp16(src: Any, dst: str | Path, *, keep: Sequence[str] = (), keep_io_types: bool = True) -> Path:
    """Write the FP16 version of the FP32 model ``src`` (path or ModelProto) to ``dst``.

    Args:
        keep: node names to leave in float32 (measured by the sensitivity search).
        keep_io_types: keep the graph's inputs and outputs float32 (the contract); False
            makes them float16 too.
    """
    model = _load(src)
    metadata = read_metadata(model)
    _check_names(model, keep, "keep")
    convert = _converter()
    with _quiet_root_logger():
        converted = convert(model, keep_io_types=keep_io_types, node_block_list=list(keep) or None)
    groups = sorted({layer_name(n) for n in keep})
    set_metadata(converted, metadata.replace(precision="fp16", higher_precision=tuple(groups)))
    return _save(converted, dst)


def _check_names(model: Any, names: Sequence[str], what: str) -> None:
    known = {n.name for n in model.graph.node}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInputError(f"{what}: node(s) {unknown[:5]} are not in the model (it has {len(known)} nodes)")


def isp_float_islands(model_or_path: Any, op_types: Sequence[str] = INT8_OP_TYPES) -> list[str]:
    """The ISP's ``op_types`` nodes outside its learned prior (module docstring): the
    convolutions of the numerically delicate parts, kept out of INT8. Empty for a graph without
    the ``/isp/`` scope (a head alone, a test model)."""
    model = _load(model_or_path)
    return [
        n.name
        for n in model.graph.node
        if n.op_type in op_types and n.name.startswith(ISP_SCOPE) and not n.name.startswith(ISP_PRIOR_SCOPE)
    ]


def output_layers(model_or_path: Any, op_types: Sequence[str] = INT8_OP_TYPES) -> list[str]:
    """The ``op_types`` nodes with no other ``op_types`` node downstream: the layers that write
    the answer (a detector's heatmap, size and offset convolutions, a classifier's last Gemm; the
    ISP's last convolution where the graph outputs its picture). Their outputs are what the host
    ranks and measures boxes with, at the cost of a few multiply-accumulates."""
    model = _load(model_or_path)
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    learned = [n for n in model.graph.node if n.op_type in op_types]
    result = []
    for node in learned:
        stack, seen, downstream = list(node.output), set(), False
        while stack and not downstream:
            tensor = stack.pop()
            for user in consumers.get(tensor, []):
                if user.op_type in op_types:
                    downstream = True
                    break
                if user.name not in seen:
                    seen.add(user.name)
                    stack.extend(user.output)
        if not downstream:
            result.append(node.name)
    return result


def quantize_int8(
    src: str | Path,
    dst: str | Path,
    feed: Any,
    *,
    keep: Sequence[str] = (),
    op_types: Sequence[str] = INT8_OP_TYPES,
    per_channel: bool = True,
    method: str = DEFAULT_CALIBRATION,
    percentile: float = DEFAULT_PERCENTILE,
    cache_path: str | Path | None = None,
    isp_islands: bool = True,
    keep_outputs: bool = True,
) -> Path:
    """Write the INT8 Q/DQ version of the FP32 model ``src`` to ``dst``.

    Args:
        feed: the calibration data: an object with ``get_next() -> dict | None`` and
            ``rewind()`` (:class:`edge_isp.export.calibration.CalibrationFeed`); may be None
            when ``cache_path`` already holds the ranges.
        keep: node names to leave unquantized (float32).
        op_types: which node types get Q/DQ on their inputs and weights.
        per_channel: one weight scale per output channel.
        method: "minmax", "percentile" (``percentile`` of |x|) or "entropy".
        cache_path: a JSON file for the calibrated ranges: read when it exists (for this
            same model and method), else written after calibrating.
        isp_islands: keep :func:`isp_float_islands` out of INT8 too.
        keep_outputs: keep the :func:`output_layers` in float too.
    """
    ort_quant = require("onnxruntime.quantization", "export", "INT8 quantization")
    if method not in CALIBRATION_METHODS:
        raise InvalidInputError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}, got {method!r}")
    if not 0 < percentile <= 100:
        raise InvalidInputError(f"percentile must be in (0, 100], got {percentile}")
    model = _load(src)
    metadata = read_metadata(model)
    if metadata.input_kind != "raw":
        raise InvalidInputError(
            "INT8 calibration feeds simulated raw frames to the fused model; this model takes an "
            f"{metadata.input_kind} picture (convert it to fp16 with --no-search instead)"
        )
    _check_names(model, keep, "keep")
    if isp_islands:
        keep = list(dict.fromkeys([*keep, *isp_float_islands(model, op_types)]))
    if keep_outputs:
        keep = list(dict.fromkeys([*keep, *output_layers(model, op_types)]))
    if feed is None and (cache_path is None or not Path(cache_path).is_file()):
        raise InvalidInputError("INT8 quantization needs calibration data (a feed) or a calibration cache file")
    if feed is not None:
        feed.rewind()
    methods = {
        "minmax": ort_quant.CalibrationMethod.MinMax,
        "percentile": ort_quant.CalibrationMethod.Percentile,
        "entropy": ort_quant.CalibrationMethod.Entropy,
    }
    extra = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,
        "CalibTensorRangeSymmetric": True,
    }
    if method == "percentile":
        extra["CalibPercentile"] = float(percentile)
    extra.update(chunked(feed))
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.quant.tmp")
    try:
        with _quiet_root_logger(), calibration_errors(method, feed):
            ort_quant.quantize_static(
                str(src) if isinstance(src, (str, Path)) else model,
                str(tmp),
                feed,
                quant_format=ort_quant.QuantFormat.QDQ,
                op_types_to_quantize=list(op_types),
                per_channel=per_channel,
                activation_type=ort_quant.QuantType.QInt8,
                weight_type=ort_quant.QuantType.QInt8,
                nodes_to_exclude=list(keep),
                calibrate_method=methods[method],
                extra_options=extra,
                calibration_cache_path=str(cache_path) if cache_path is not None else None,
            )
        quantized = _load(tmp)
    finally:
        tmp.unlink(missing_ok=True)
    quantized = inputs_only(quantized, op_types)
    groups = sorted({layer_name(n) for n in keep})
    set_metadata(quantized, metadata.replace(precision="int8", higher_precision=tuple(groups)))
    return _save(quantized, dst)


def inputs_only(model: Any, op_types: Sequence[str] = INT8_OP_TYPES) -> Any:
    """``model`` (a Q/DQ graph, changed in place and returned) with activations rounded only where
    a quantized layer (``op_types``) reads them: TensorRT's recommended placement (Q/DQ on the
    inputs of weighted layers; the engine fuses each layer with its activation and the next
    layer's rounding). ONNX Runtime's quantizer also rounds every quantized layer's output, before
    its ReLU6 at the pre-activation's wider range and before residual additions, and hands the
    rounded tensor to every user of a tensor it rounds: measured on the shipped classifier with
    every layer in INT8 (200 validation crops, 10,000 lux), that placement lost 28 points of top-1
    agreement, this one 19. Here a Q/DQ pair on an activation stays only for the ``op_types`` nodes
    that read it (other users read the float tensor), and a pair no such node reads is removed."""
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    users: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    unused = []
    for q in graph.node:
        if q.op_type != "QuantizeLinear" or q.input[0] in weights:
            continue
        dqs = users.get(q.output[0], [])
        if len(dqs) != 1 or dqs[0].op_type != "DequantizeLinear":
            continue
        dq = dqs[0]
        readers = users.get(dq.output[0], [])
        for node in readers:
            if node.op_type not in op_types:
                for i, name in enumerate(node.input):
                    if name == dq.output[0]:
                        node.input[i] = q.input[0]
        if not any(n.op_type in op_types for n in readers) and dq.output[0] not in outputs:
            unused += [q, dq]
    for node in unused:
        graph.node.remove(node)
    return model


def quantized_nodes(model_or_path: Any, op_types: Sequence[str] = INT8_OP_TYPES) -> list[str]:
    """Names of the ``op_types`` nodes whose data and weight inputs both come through
    DequantizeLinear: the layers that run in INT8."""
    model = _load(model_or_path)
    dq_outputs = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [
        n.name
        for n in model.graph.node
        if n.op_type in op_types and len(n.input) > 1 and n.input[0] in dq_outputs and n.input[1] in dq_outputs
    ]


def precision_suffix(path: str | Path, precision: str) -> Path:
    """``model.onnx`` -> ``model.fp16.onnx`` (an existing precision suffix is replaced; the CPU
    INT8 model is ``model.int8-cpu.onnx``)."""
    path = Path(path)
    stem = re.sub(r"\.(fp32|fp16|int8|int8-cpu)$", "", path.stem)
    return path.with_name(f"{stem}.{precision}{path.suffix or '.onnx'}")
