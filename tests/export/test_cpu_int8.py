"""INT8 for ONNX Runtime's CPU: which ISP nodes stay float (pure, on the graph), and a tiny
model exported by torch and quantized by ONNX Runtime end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edge_isp.contract.metadata import read_metadata
from edge_isp.errors import InvalidInputError
from edge_isp.export.calibration import CalibrationFeed
from edge_isp.export.cpu_int8 import decoding_nodes, integer_nodes, isp_nodes_kept, quantize_int8_cpu
from edge_isp.export.precision import precision_suffix

from .conftest import export_module

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


class Isp(nn.Module):
    """A thin full-resolution convolution (4 -> 8), a wide one (16 -> 16) between, a square root."""

    def __init__(self) -> None:
        super().__init__()
        self.thin = nn.Conv2d(4, 16, 3, padding=1)
        self.wide = nn.Conv2d(16, 16, 3, padding=1)
        self.out = nn.Conv2d(16, 4, 1)

    def forward(self, raw):
        x = torch.relu(self.thin(torch.sqrt(raw + 0.01)))
        return self.out(torch.relu(self.wide(x)))


class Joint(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.isp = Isp()
        self.head = nn.Sequential(nn.Conv2d(4, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1))
        self.fc = nn.Linear(32, 3)

    def forward(self, raw, noise):
        return self.fc(self.head(self.isp(raw)).mean((2, 3))) + 0 * noise[:, :1]


@pytest.fixture(scope="module")
def joint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cpu8") / "m.onnx"
    return export_module(Joint(), path, packed_hw=(16, 16), task="classification", class_names=["a", "b", "c"],
                         outputs=["logits"])  # fmt: skip


def _feed(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return CalibrationFeed([{"raw": rng.random((1, 4, 16, 16), dtype=np.float32),
                             "noise": np.float32([[0.01, 0.001]])} for _ in range(n)])  # fmt: skip


def _convs(path):
    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]


def test_isp_placements(joint):
    isp_convs = [n for n in _convs(joint) if n.startswith("/isp/")]
    assert isp_convs == ["/isp/thin/Conv", "/isp/wide/Conv", "/isp/out/Conv"]
    kept_fp32 = isp_nodes_kept(joint, "fp32")
    assert set(isp_convs) <= set(kept_fp32) and all(n.startswith("/isp/") for n in kept_fp32)
    assert any("Sqrt" in n for n in kept_fp32)
    kept_wide = isp_nodes_kept(joint, "wide")
    # 4 -> 16 and 16 -> 4 are thin (fewer than 16 channels on one side); 16 -> 16 is wide.
    assert set(kept_wide) == set(kept_fp32) - {"/isp/wide/Conv"}
    assert isp_nodes_kept(joint, "int8") == []
    with pytest.raises(InvalidInputError, match="placement"):
        isp_nodes_kept(joint, "half")


def test_quantized_by_onnxruntime_end_to_end(joint, tmp_path):
    out = quantize_int8_cpu(joint, precision_suffix(joint, "int8-cpu"), _feed())
    assert out.name == "m.int8-cpu.onnx"
    model = onnx.load(str(out))
    ops = [n.op_type for n in model.graph.node]
    assert "QLinearConv" in ops and "QuantizeLinear" in ops
    integer = {n.removesuffix("_quant") for n in integer_nodes(out)}
    assert {"/isp/wide/Conv", "/head/head.0/Conv", "/head/head.2/Conv"} <= integer
    assert {"/isp/thin/Conv", "/isp/out/Conv"} <= set(_convs(out))  # still float Conv nodes
    # The layer that writes the answer and the graph-level arithmetic after it stay float.
    assert "/fc/Gemm" in {n.name for n in model.graph.node if n.op_type == "Gemm"}
    assert decoding_nodes(joint) and all(n.count("/") == 1 for n in decoding_nodes(joint))
    assert not {n.removesuffix("_quant") for n in integer_nodes(out)} & set(decoding_nodes(joint))
    # u8 activations with a zero point, s8 weights with one scale per output channel.
    inits = {t.name: t for t in model.graph.initializer}
    qconv = next(n for n in model.graph.node if n.name == "/isp/wide/Conv_quant")
    assert inits[qconv.input[2]].data_type == onnx.TensorProto.UINT8
    assert inits[qconv.input[3]].data_type == onnx.TensorProto.INT8 and list(inits[qconv.input[4]].dims) == [16]
    meta = read_metadata(out)
    assert meta.precision == "int8-cpu" and "isp/thin" in meta.higher_precision
    reference = ort.InferenceSession(str(joint), providers=["CPUExecutionProvider"])
    quantized = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    test = _feed(8, seed=1)
    ref = np.concatenate([reference.run(None, x)[0] for x in test])
    got = np.concatenate([quantized.run(None, x)[0] for x in test])
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 0.05


def test_an_activation_without_range_is_a_clear_error(joint, tmp_path):
    rng = np.random.default_rng(0)
    flat = [{"raw": (1 + 1e-6 * rng.random((1, 4, 16, 16))).astype(np.float32), "noise": np.float32([[0.01, 0.001]])}
            for _ in range(3)]  # fmt: skip
    with pytest.raises(InvalidInputError, match=r"almost no range over 3 calibration batches.*--calibration minmax"):
        quantize_int8_cpu(joint, tmp_path / "x.onnx", CalibrationFeed(flat), method="percentile", isp="int8")
    assert not (tmp_path / "x.onnx").exists()


def test_qdq_format_and_errors(joint, tmp_path):
    out = quantize_int8_cpu(joint, tmp_path / "q.onnx", _feed(4), isp="fp32", quant_format="qdq")
    integer = integer_nodes(out)
    assert "/head/head.0/Conv" in integer and not any(n.startswith("/isp/") for n in integer)
    with pytest.raises(InvalidInputError, match="format"):
        quantize_int8_cpu(joint, tmp_path / "x.onnx", _feed(2), quant_format="qint4")
    with pytest.raises(InvalidInputError, match="feed"):
        quantize_int8_cpu(joint, tmp_path / "x.onnx", None)
    with pytest.raises(InvalidInputError, match="not in the model"):
        quantize_int8_cpu(joint, tmp_path / "x.onnx", _feed(2), keep=["/nope/Conv"])
    assert not (tmp_path / "x.onnx").exists()
