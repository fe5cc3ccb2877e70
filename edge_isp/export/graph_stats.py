"""Counting an ONNX graph's work: multiply-accumulates per layer and the memory traffic of
running it layer by layer. Pure bookkeeping on the graph; used to say what keeping layers in
FP32 costs and how close a measured speed is to the hardware's limits (bench/).

Shapes come from ONNX Runtime's symbolic shape inference. MACs count Conv (``out elements *
C_in/groups * kh * kw``), ConvTranspose (``in elements * C_out/groups * kh * kw``: every input
element is spread over a kernel), Gemm and MatMul (``M * N * K``); everything else
(element-wise, pooling, resize) counts as memory traffic only. Traffic is the bytes each node reads (inputs
and weights) and writes (outputs) at the given element size: what an unfused, layer-by-layer
execution moves through DRAM, an upper bound for an engine that fuses layers, and the honest
one for ONNX Runtime on a CPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from edge_isp.errors import InvalidInputError, require


@dataclasses.dataclass(frozen=True)
class GraphStats:
    """Per-node multiply-accumulates, and totals.

    Attributes:
        macs: ``{node name: MACs}`` of the Conv/Gemm/MatMul nodes (for the graph's batch).
        activation_elements: elements read plus written by all nodes, weights excluded.
        weight_elements: elements of the float weights (initializers) the nodes read.
        output_elements: ``{node name: elements it writes}`` for every node: each intermediate
            tensor once, what a part of the graph holds in activations per frame.
    """

    macs: dict[str, int]
    activation_elements: int
    weight_elements: int
    output_elements: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def total_macs(self) -> int:
        return int(sum(self.macs.values()))

    def traffic_bytes(self, bytes_per_element: float) -> float:
        """Bytes moved running the graph layer by layer at ``bytes_per_element``."""
        return float((self.activation_elements + self.weight_elements) * bytes_per_element)

    def mac_fraction(self, nodes: list[str]) -> float:
        """The share of the graph's MACs done by ``nodes`` (0 when the graph has none)."""
        total = self.total_macs
        return float(sum(self.macs.get(n, 0) for n in nodes) / total) if total else 0.0

    def by_part(self, part_of: Callable[[str], str]) -> dict[str, dict[str, int]]:
        """``{part: {"macs", "output_elements", "nodes"}}`` summed over the nodes that
        ``part_of(node name)`` puts in each part, in the order parts first appear."""
        parts: dict[str, dict[str, int]] = {}
        for name, written in self.output_elements.items():
            part = parts.setdefault(part_of(name), {"macs": 0, "output_elements": 0, "nodes": 0})
            part["macs"] += self.macs.get(name, 0)
            part["output_elements"] += written
            part["nodes"] += 1
        return parts


def _dims(value_info: Any) -> list[int] | None:
    shape = value_info.type.tensor_type.shape
    dims = []
    for d in shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return dims


def graph_stats(model_or_path: Any, batch: int = 1) -> GraphStats:
    """Count ``model_or_path`` (an ONNX path or ModelProto); a dynamic batch axis is taken as
    ``batch``. Raises :class:`InvalidInputError` if shapes stay unknown after inference."""
    onnx = require("onnx", "export", "reading ONNX models")
    model = onnx.load(str(model_or_path)) if not hasattr(model_or_path, "graph") else model_or_path
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = batch
    inferred = _infer_shapes(onnx, model)
    shapes: dict[str, list[int] | None] = {}
    for value in (*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info):
        shapes[value.name] = _dims(value)
    weights = {t.name: list(t.dims) for t in inferred.graph.initializer}
    for name, dims in weights.items():
        shapes[name] = dims
    macs: dict[str, int] = {}
    written: dict[str, int] = {}
    activations = 0
    weight_elements = 0
    for node in inferred.graph.node:
        for name in node.input:
            if not name:
                continue
            dims = shapes.get(name)
            size = int(np.prod(dims)) if dims is not None else 0
            if name in weights:
                weight_elements += size
            else:
                activations += size
        out = sum(int(np.prod(dims)) for dims in (shapes.get(n) for n in node.output if n) if dims is not None)
        activations += out
        written[node.name] = out
        if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            macs[node.name] = _node_macs(node, shapes)
    return GraphStats(macs, activations, weight_elements, written)


def _infer_shapes(onnx: Any, model: Any) -> Any:
    """Shapes of every tensor. ONNX Runtime's symbolic inference resolves the pads the ISP
    computes from Shape ops, where ONNX's own leaves them unknown; the latter is the fallback."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    except ImportError:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    return SymbolicShapeInference.infer_shapes(model, auto_merge=True)


def _node_macs(node: Any, shapes: dict[str, list[int] | None]) -> int:
    out = shapes.get(node.output[0])
    if out is None:
        raise InvalidInputError(f"the output shape of node {node.name!r} is unknown; cannot count its work")
    if node.op_type == "Conv":
        weight = shapes.get(node.input[1])
        if weight is None:
            raise InvalidInputError(f"the weight shape of node {node.name!r} is unknown")
        # weight (C_out, C_in / groups, kh, kw): every output element takes C_in/groups*kh*kw MACs.
        return int(np.prod(out)) * int(np.prod(weight[1:]))
    a = shapes.get(node.input[0])
    if node.op_type == "ConvTranspose":
        weight = shapes.get(node.input[1])
        if weight is None or a is None:
            raise InvalidInputError(f"the input or weight shape of node {node.name!r} is unknown")
        # weight (C_in, C_out / groups, kh, kw): every input element feeds C_out/groups*kh*kw outputs.
        return int(np.prod(a)) * int(np.prod(weight[1:]))
    if a is None:
        raise InvalidInputError(f"the input shape of node {node.name!r} is unknown")
    transpose_a = any(att.name == "transA" and att.i for att in node.attribute)
    k = a[-2] if (node.op_type == "Gemm" and transpose_a) else a[-1]
    return int(np.prod(out)) * int(k)
