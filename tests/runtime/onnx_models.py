"""Tiny ONNX models that follow the exported-model contract and whose answers are known.

Built with ``onnx.helper`` (no torch), so the no-torch test can use them too:

- :func:`spot_detector`: finds the brightest 2x2 tile. ``boxes`` (1, 2, 4): a box of
  ``2 * radius`` px centred on the brightest tile (mean over the 4 planes) with score = that
  mean and label 1, plus a fixed box at (0, 0, 10, 10) with score 0.01 and label 0; ``image``
  (optional): the planes as RGB (R, mean of the greens, B) at full resolution, nearest.
- :func:`rgb_spot_detector`: the same idea on an sRGB picture (input ``rgb``), the conventional
  pipeline's model.
- :func:`brightness_classifier`: ``logits`` (1, 2) = ``gain * (t - m, m - t)`` with ``m``
  the mean of ``raw``: "dark" below ``t``, "bright" above. Dynamic spatial axes.

The raw-input ones read ``noise`` (adding 0 times its sum) so it stays a used input.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _const(name: str, value) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name))


def _save(graph: onnx.GraphProto, path: Path, metadata: dict[str, str]) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _noise_zero(nodes: list) -> str:
    """Append nodes making a (1, 1) zero that depends on ``noise``; return its name."""
    nodes += [
        helper.make_node("ReduceSum", ["noise", "axes1"], ["noise_sum"], keepdims=1),
        _const("zero_f", np.float32(0)),
        helper.make_node("Mul", ["noise_sum", "zero_f"], ["noise_zero"]),
    ]
    return "noise_zero"


def _peak_box(width: int, radius: float, scale: float, out: str) -> list:
    """Nodes turning ``idx`` (the flat index of the peak in a map ``width`` wide) into ``out``
    (1, 1, 4): a box of ``2 * radius`` px centred on the peak's centre times ``scale`` (2 from
    the packed planes to the full-resolution frame)."""
    return [
        _const("w_i", np.array(width, np.int64)),
        helper.make_node("Div", ["idx", "w_i"], ["row"]),
        helper.make_node("Mul", ["row", "w_i"], ["row_w"]),
        helper.make_node("Sub", ["idx", "row_w"], ["col"]),
        helper.make_node("Cast", ["row"], ["row_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["col"], ["col_f"], to=TensorProto.FLOAT),
        _const("half", np.float32(0.5)),
        _const("scale", np.float32(scale)),
        _const("r", np.float32(radius)),
        helper.make_node("Add", ["col_f", "half"], ["cx0"]),
        helper.make_node("Mul", ["cx0", "scale"], ["cx"]),
        helper.make_node("Add", ["row_f", "half"], ["cy0"]),
        helper.make_node("Mul", ["cy0", "scale"], ["cy"]),
        helper.make_node("Sub", ["cx", "r"], ["x0"]),
        helper.make_node("Sub", ["cy", "r"], ["y0"]),
        helper.make_node("Add", ["cx", "r"], ["x1"]),
        helper.make_node("Add", ["cy", "r"], ["y1"]),
        helper.make_node("Concat", ["x0", "y0", "x1", "y1"], ["peak_box"], axis=1),
        _const("box_shape", np.array([1, 1, 4], np.int64)),
        helper.make_node("Reshape", ["peak_box", "box_shape"], [out]),
    ]


def spot_detector(
    path: Path, width: int, height: int, radius: float = 8.0, with_image: bool = True, class_names=("thing", "spot")
) -> Path:
    """See the module docstring; ``width``x``height`` is the full-resolution input size."""
    h, w = height // 2, width // 2
    nodes = [
        _const("axes1", np.array([1], np.int64)),
        helper.make_node("ReduceMean", ["raw"], ["plane_mean"], axes=[1], keepdims=1),
        _const("flat_shape", np.array([1, -1], np.int64)),
        helper.make_node("Reshape", ["plane_mean", "flat_shape"], ["flat"]),
        helper.make_node("ArgMax", ["flat"], ["idx"], axis=1, keepdims=1),
        helper.make_node("ReduceMax", ["flat"], ["peak"], axes=[1], keepdims=1),
    ]
    zero = _noise_zero(nodes)
    nodes += [
        helper.make_node("Add", ["peak", zero], ["spot_score"]),
        *_peak_box(w, radius, scale=2.0, out="spot_box3"),
        _const("fixed_box", np.array([[[0, 0, 10, 10]]], np.float32)),
        helper.make_node("Concat", ["spot_box3", "fixed_box"], ["boxes"], axis=1),
        _const("fixed_score", np.array([[0.01]], np.float32)),
        helper.make_node("Concat", ["spot_score", "fixed_score"], ["scores"], axis=1),
        _const("labels", np.array([[1, 0]], np.int32)),
    ]
    outputs = [
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 2, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2]),
        helper.make_tensor_value_info("labels", TensorProto.INT32, [1, 2]),
    ]
    if with_image:
        weights = np.array([[1, 0, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 0, 1]], np.float32).reshape(3, 4, 1, 1)
        nodes += [
            _const("to_rgb", weights),
            helper.make_node("Conv", ["raw", "to_rgb"], ["rgb_half"]),
            _const("scales", np.array([1, 1, 2, 2], np.float32)),
            helper.make_node("Resize", ["rgb_half", "", "scales"], ["rgb_full"], mode="nearest"),
            _const("lo", np.float32(0)),
            _const("hi", np.float32(1)),
            helper.make_node("Clip", ["rgb_full", "lo", "hi"], ["image"]),
        ]
        outputs.append(helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, height, width]))
    graph = helper.make_graph(
        nodes,
        "spot_detector",
        [
            helper.make_tensor_value_info("raw", TensorProto.FLOAT, [1, 4, h, w]),
            helper.make_tensor_value_info("noise", TensorProto.FLOAT, [1, 2]),
        ],
        outputs,
    )
    metadata = {
        "edge_isp.version": "test",
        "edge_isp.task": "detection",
        "edge_isp.class_names": json.dumps(list(class_names)),
        "edge_isp.input_size": f"{width}x{height}",
        "edge_isp.profile": "nexus6p-rear",
        "edge_isp.model_config": json.dumps({"name": "spot_detector"}),
    }
    return _save(graph, path, metadata)


def brightness_classifier(path: Path, threshold: float = 0.2, gain: float = 50.0, metadata: bool = True) -> Path:
    """See the module docstring. Without ``metadata`` the file carries no edge_isp keys."""
    nodes = [
        _const("axes1", np.array([1], np.int64)),
        helper.make_node("ReduceMean", ["raw"], ["m"], axes=[1, 2, 3], keepdims=0),
        _const("m_shape", np.array([1, 1], np.int64)),
        helper.make_node("Reshape", ["m", "m_shape"], ["m11"]),
    ]
    zero = _noise_zero(nodes)
    nodes += [
        helper.make_node("Add", ["m11", zero], ["mean"]),
        _const("t", np.float32(threshold)),
        _const("k", np.float32(gain)),
        helper.make_node("Sub", ["t", "mean"], ["d_dark"]),
        helper.make_node("Sub", ["mean", "t"], ["d_bright"]),
        helper.make_node("Mul", ["d_dark", "k"], ["l_dark"]),
        helper.make_node("Mul", ["d_bright", "k"], ["l_bright"]),
        helper.make_node("Concat", ["l_dark", "l_bright"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "brightness_classifier",
        [
            helper.make_tensor_value_info("raw", TensorProto.FLOAT, [1, 4, "h", "w"]),
            helper.make_tensor_value_info("noise", TensorProto.FLOAT, [1, 2]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])],
    )
    props = {}
    if metadata:
        props = {
            "edge_isp.task": "classification",
            "edge_isp.class_names": json.dumps(["dark", "bright"]),
            "edge_isp.profile": "nexus6p-rear",
        }
    return _save(graph, path, props)


def rgb_spot_detector(
    path: Path,
    width: int,
    height: int,
    radius: float = 8.0,
    class_names=("thing", "spot"),
    conventional_isp: dict | None = None,
    task: str = "detection",
) -> Path:
    """An rgb-input model (input ``rgb`` (1, 3, H, W)): ``boxes`` (1, 1, 4), a box of ``2 * radius``
    px centred on the brightest pixel (mean over R, G, B), score = that mean, label 1. With
    ``task="classification"``: ``logits`` (1, 2) = (1 - peak, peak) instead."""
    nodes = [
        helper.make_node("ReduceMean", ["rgb"], ["grey"], axes=[1], keepdims=1),
        _const("flat_shape", np.array([1, -1], np.int64)),
        helper.make_node("Reshape", ["grey", "flat_shape"], ["flat"]),
        helper.make_node("ArgMax", ["flat"], ["idx"], axis=1, keepdims=1),
        helper.make_node("ReduceMax", ["flat"], ["scores"], axes=[1], keepdims=1),
    ]
    if task == "classification":
        nodes += [
            _const("one", np.float32(1)),
            helper.make_node("Sub", ["one", "scores"], ["dark"]),
            helper.make_node("Concat", ["dark", "scores"], ["logits"], axis=1),
        ]
        outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])]
    else:
        nodes += [
            *_peak_box(width, radius, scale=1.0, out="boxes"),
            _const("labels", np.array([[1]], np.int32)),
        ]
        outputs = [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 1, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1]),
            helper.make_tensor_value_info("labels", TensorProto.INT32, [1, 1]),
        ]
    graph = helper.make_graph(
        nodes,
        "rgb_spot_detector",
        [helper.make_tensor_value_info("rgb", TensorProto.FLOAT, [1, 3, height, width])],
        outputs,
    )
    metadata = {
        "edge_isp.version": "test",
        "edge_isp.task": task,
        "edge_isp.class_names": json.dumps(list(class_names) if task == "detection" else ["dark", "bright"]),
        "edge_isp.input_size": f"{width}x{height}",
        "edge_isp.profile": "nexus6p-rear",
        "edge_isp.model_config": json.dumps({"name": "rgb_spot_detector"}),
        "edge_isp.input_kind": "rgb",
    }
    if conventional_isp is not None:
        metadata["edge_isp.conventional_isp"] = json.dumps(conventional_isp)
    return _save(graph, path, metadata)
