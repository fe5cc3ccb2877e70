"""INT8 for boards without TensorRT: ONNX Runtime's own integer format, for its CPU kernels.

A Raspberry Pi (or any board without TensorRT) runs the model with ONNX Runtime on its CPU.
The TensorRT-style Q/DQ graph (:func:`edge_isp.export.precision.quantize_int8`: signed
symmetric activations, Q/DQ on Conv inputs only) runs *slower* than FP32 there: every Conv is
wrapped in float conversions and ONNX Runtime's x86/Arm integer kernels want unsigned
activations. :func:`quantize_int8_cpu` writes the model ONNX Runtime's CPU runs fast:

- ``QOperator`` format (QLinearConv, QLinearAdd, QLinearConcat...; ``QDQ`` on request, which
  ONNX Runtime fuses to the same kernels), unsigned 8-bit activations with a zero point,
  signed 8-bit weights with one symmetric scale per output channel ("u8s8", the combination
  ONNX Runtime's CPU integer GEMMs take on x86 with VNNI and on Arm with dot products);
- the operators between the convolutions quantized too (:data:`CPU_INT8_OP_TYPES`), so the
  integer path is not broken by a float conversion at every activation or residual add;
- ranges calibrated on the feed :mod:`edge_isp.export.calibration` builds: frames at the
  deployment light levels through the live preprocessing;
- the ISP's parts placed by :data:`ISP_PLACEMENTS` (measured in ``bench/cpu_int8.py``): its
  full-resolution tensors are thin (3 to 8 channels) and there INT8 costs more in conversions
  and poorly filled integer kernels than it saves, while the U-Net's lower levels (16 and 32
  channels) gain like the head does. The element-wise ISP (Anscombe square root, the HQS data
  step's division, the inverse Anscombe, the tone curve) stays float under every placement.

The file sits beside the model as ``NAME.int8-cpu.onnx`` (:func:`edge_isp.export.precision.
precision_suffix`), its metadata's precision ``int8-cpu``; ``edge-isp run`` picks it for ONNX
Runtime on a CPU (:mod:`edge_isp.contract.model_files`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_isp.contract.metadata import read_metadata, set_metadata
from edge_isp.errors import InvalidInputError, require
from edge_isp.export.calibration import calibration_errors, chunked
from edge_isp.export.graph_stats import graph_stats
from edge_isp.export.precision import (
    CALIBRATION_METHODS,
    DEFAULT_CALIBRATION,
    DEFAULT_PERCENTILE,
    _load,
    _quiet_root_logger,
    _save,
    layer_name,
    output_layers,
)

CPU_INT8_PRECISION = "int8-cpu"
CPU_INT8_OP_TYPES = (
    "Conv", "Gemm", "MatMul", "Add", "Concat", "Clip", "Relu", "LeakyRelu", "Resize", "MaxPool", "AveragePool",
    "GlobalAveragePool", "Sigmoid",
)  # fmt: skip
FORMATS = ("qoperator", "qdq")
# Measured on the shipped detector (400 images per level, 3/6/30 lux, ISP "wide", output layers
# and decoding float): the 99.99th percentile loses 0.0/0.2/0.1 points of mAP@0.5, min/max
# 0.0/0.4/0.6. (With the decoding's sigmoid quantized too, the percentile lost 2.8/8.0/14.1.)
CPU_DEFAULT_CALIBRATION = DEFAULT_CALIBRATION
DEFAULT_FORMAT = "qoperator"
ISP_SCOPE = "/isp/"
# Where the ISP's nodes run: "fp32" every ISP node kept float; "wide" the ISP convolutions with
# at least WIDE_CHANNELS input (per group) and output channels in INT8, the rest float; "int8"
# the ISP quantized like the head. bench/cpu_int8.py measures the three.
ISP_PLACEMENTS = ("fp32", "wide", "int8")
DEFAULT_ISP_PLACEMENT = "wide"
WIDE_CHANNELS = 16


def _weight_shapes(model: Any) -> dict[str, list[int]]:
    return {t.name: list(t.dims) for t in model.graph.initializer}


def is_wide_conv(node: Any, weight_shapes: dict[str, list[int]], min_channels: int = WIDE_CHANNELS) -> bool:
    """A Conv whose weight is a stored (C_out, C_in/groups, kh, kw) tensor with at least
    ``min_channels`` output channels and ``min_channels`` input channels per group."""
    if node.op_type != "Conv" or len(node.input) < 2:
        return False
    shape = weight_shapes.get(node.input[1])
    if shape is None or len(shape) < 2:
        return False  # a weight computed in the graph (the ISP's fixed kernels) is not a layer
    return shape[0] >= min_channels and shape[1] >= min_channels


def isp_nodes_kept(model_or_path: Any, placement: str = DEFAULT_ISP_PLACEMENT) -> list[str]:
    """The ISP's nodes to keep in float under ``placement`` (see :data:`ISP_PLACEMENTS`), in
    graph order. The ISP is the nodes under the ``/isp/`` scope of the exported graph."""
    if placement not in ISP_PLACEMENTS:
        raise InvalidInputError(f"ISP placement must be one of {', '.join(ISP_PLACEMENTS)}, got {placement!r}")
    model = _load(model_or_path)
    if placement == "int8":
        return []
    shapes = _weight_shapes(model)
    kept = []
    for node in model.graph.node:
        if not node.name.startswith(ISP_SCOPE):
            continue
        if placement == "wide" and is_wide_conv(node, shapes):
            continue
        kept.append(node.name)
    return kept


def decoding_nodes(model_or_path: Any) -> list[str]:
    """The nodes outside every module scope (``/Sigmoid``, ``/MaxPool``, ``/TopK``...): the
    exported graph's decoding of the detector's maps into scored boxes. Quantized, the scores
    come in 8-bit steps and the peak search ties (measured: see :data:`CPU_DEFAULT_CALIBRATION`)."""
    model = _load(model_or_path)
    return [n.name for n in model.graph.node if n.name.startswith("/") and n.name.count("/") == 1]


def fold_constant_inputs(model: Any) -> Any:
    """A copy of ``model`` whose ``Constant`` nodes, and ``Identity`` nodes of an initializer
    (torch's exporter writes one where two layers share a parameter), are initializers: ONNX
    Runtime's QOperator quantization needs every Conv's weight and bias to be one."""
    onnx = require("onnx", "export", "reading ONNX models")
    numpy_helper = onnx.numpy_helper
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    outputs = {o.name for o in graph.output}
    changed = True
    while changed:
        changed = False
        initializers = {t.name: t for t in graph.initializer}
        for node in list(graph.node):
            if node.output[0] in outputs:
                continue
            tensor = None
            if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
                tensor = numpy_helper.to_array(node.attribute[0].t)
            elif node.op_type == "Identity" and node.input[0] in initializers:
                tensor = numpy_helper.to_array(initializers[node.input[0]])
            if tensor is None:
                continue
            graph.initializer.append(numpy_helper.from_array(tensor, node.output[0]))
            graph.node.remove(node)
            changed = True
    return model


def quantize_int8_cpu(
    src: str | Path,
    dst: str | Path,
    feed: Any,
    *,
    isp: str = DEFAULT_ISP_PLACEMENT,
    keep: Sequence[str] = (),
    quant_format: str = DEFAULT_FORMAT,
    method: str = CPU_DEFAULT_CALIBRATION,
    percentile: float = DEFAULT_PERCENTILE,
    op_types: Sequence[str] = CPU_INT8_OP_TYPES,
    keep_outputs: bool = True,
) -> Path:
    """Write the CPU INT8 version of the FP32 model ``src`` to ``dst`` (module docstring).

    Args:
        feed: the calibration data (``get_next()``/``rewind()``,
            :class:`edge_isp.export.calibration.CalibrationFeed`).
        isp: where the ISP runs, one of :data:`ISP_PLACEMENTS`.
        keep: further node names to leave in float.
        quant_format: "qoperator" or "qdq".
        method: "minmax", "percentile" or "entropy" (activation ranges).
        op_types: the operator types quantized.
        keep_outputs: keep the layers that write the answer
            (:func:`edge_isp.export.precision.output_layers`) and the graph's own decoding of
            it (:func:`decoding_nodes`) in float.
    """
    ort_quant = require("onnxruntime.quantization", "export", "INT8 quantization")
    if quant_format not in FORMATS:
        raise InvalidInputError(f"CPU INT8 format must be one of {', '.join(FORMATS)}, got {quant_format!r}")
    if method not in CALIBRATION_METHODS:
        raise InvalidInputError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}, got {method!r}")
    if feed is None:
        raise InvalidInputError("CPU INT8 quantization needs calibration data (a feed of model inputs)")
    model = fold_constant_inputs(_load(src))
    metadata = read_metadata(model)
    known = {n.name for n in model.graph.node}
    unknown = [n for n in keep if n not in known]
    if unknown:
        raise InvalidInputError(f"keep: node(s) {unknown[:5]} are not in the model (it has {len(known)} nodes)")
    outputs = [*output_layers(model), *decoding_nodes(model)] if keep_outputs else []
    kept = list(dict.fromkeys([*isp_nodes_kept(model, isp), *keep, *outputs]))
    feed.rewind()
    methods = {
        "minmax": ort_quant.CalibrationMethod.MinMax,
        "percentile": ort_quant.CalibrationMethod.Percentile,
        "entropy": ort_quant.CalibrationMethod.Entropy,
    }
    extra: dict[str, Any] = {"WeightSymmetric": True, "ActivationSymmetric": False}
    if method == "percentile":
        extra["CalibPercentile"] = float(percentile)
    extra.update(chunked(feed))
    formats = {"qoperator": ort_quant.QuantFormat.QOperator, "qdq": ort_quant.QuantFormat.QDQ}
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.quant.tmp")
    try:
        with _quiet_root_logger(), calibration_errors(method, feed):
            ort_quant.quantize_static(
                model,
                str(tmp),
                feed,
                quant_format=formats[quant_format],
                op_types_to_quantize=list(op_types),
                per_channel=True,
                activation_type=ort_quant.QuantType.QUInt8,
                weight_type=ort_quant.QuantType.QInt8,
                nodes_to_exclude=kept,
                calibrate_method=methods[method],
                extra_options=extra,
            )
        quantized = _load(tmp)
    finally:
        tmp.unlink(missing_ok=True)
    # Module scopes two levels deep (isp/priors.0, isp/tone...): kept in float in whole or in part.
    groups = sorted({"/".join(layer_name(n).split("/")[:2]) for n in kept if n.count("/") > 1})
    set_metadata(quantized, metadata.replace(precision=CPU_INT8_PRECISION, higher_precision=tuple(groups)))
    return _save(quantized, dst)


def integer_nodes(model_or_path: Any) -> list[str]:
    """Names of the nodes that compute in integers: QOperator kernels (``QLinear*``,
    ``ConvInteger``, ``MatMulInteger``...) and, in a Q/DQ graph, the Conv/Gemm/MatMul nodes
    whose data and weight both come through DequantizeLinear."""
    model = _load(model_or_path)
    dq_outputs = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}

    def integer(n: Any) -> bool:
        if n.op_type.startswith("QLinear") or n.op_type.endswith("Integer"):
            return True
        return n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1 and {*n.input[:2]} <= dq_outputs

    return [n.name for n in model.graph.node if integer(n)]


def int8_mac_fraction(fp32_path: str | Path, quantized_path: str | Path) -> float:
    """The share of the FP32 graph's multiply-accumulates that the quantized graph (Q/DQ or
    QOperator) computes in integers (a QOperator node is named after its float node +
    ``_quant``)."""
    names = {n.removesuffix("_quant") for n in integer_nodes(quantized_path)}
    return graph_stats(fp32_path).mac_fraction(sorted(names))
