"""Quantization-aware fine-tuning: the training side's fake quantization against the INT8 file
ONNX Runtime's quantizer makes (the export's own arithmetic, code we did not write), the
layer choice against the export's, and the trainer's fake-quantized run and its resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edge_isp.errors import InvalidInputError
from edge_isp.train import train
from edge_isp.train.checkpoint import load_checkpoint
from edge_isp.train.qat import FakeQuant, calibrate_ranges, fake_quant_weight, output_layers, quantized_layers

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime.quantization")


class _Isp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.priors = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
        self.tone = nn.Conv2d(4, 4, 1)  # outside the prior: kept float by the export

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        # The residual addition reads raw unrounded, the prior's first convolution rounded.
        return self.tone(raw + self.priors(raw))


class SmallNet(nn.Module):
    """ISP (prior + tone) -> a MobileNet-like body (3x3, depthwise, 1x1) -> linear output."""

    def __init__(self) -> None:
        super().__init__()
        self.isp = _Isp()
        self.body = nn.Sequential(
            nn.Conv2d(4, 16, 3, padding=1), nn.ReLU6(), nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU6(),
            nn.Conv2d(16, 8, 1),
        )  # fmt: skip
        self.out = nn.Linear(8, 3)

    def forward(self, raw: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = self.body(self.isp(raw))
        return self.out(x.mean((2, 3))) + 0 * noise[:, :1]


def _onnx_layer(node_name: str) -> str:
    """``/body/body.2/Conv`` -> ``body.2``: an exported node's scope as a module path (each
    scope level repeats its parent's name before its own)."""
    parts, path = node_name.strip("/").split("/")[:-1], []
    for i, part in enumerate(parts):
        path.append(part[len(parts[i - 1]) + 1 :] if i and part.startswith(parts[i - 1] + ".") else part)
    return ".".join(path)


@pytest.fixture
def small(tmp_path):
    from edge_isp.export.calibration import CalibrationFeed
    from edge_isp.export.precision import quantize_int8, quantized_nodes
    from tests.export.conftest import export_module

    torch.manual_seed(0)
    net = SmallNet().eval()
    path = export_module(net, tmp_path / "small.onnx", packed_hw=(8, 8), task="classification",
                         class_names=["a", "b", "c"], outputs=["logits"], batch="batch")  # fmt: skip
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 1, (16, 4, 8, 8)).astype(np.float32)
    noise = np.full((16, 2), 0.01, np.float32)
    feed = CalibrationFeed([{"raw": raw[i : i + 8], "noise": noise[i : i + 8]} for i in (0, 8)])
    int8 = quantize_int8(path, tmp_path / "small.int8.onnx", feed, method="minmax")
    return {"net": net, "raw": raw, "noise": noise, "int8": int8, "onnx_layers": {
        _onnx_layer(n) for n in quantized_nodes(int8)}}  # fmt: skip


def test_the_layers_rounded_are_the_ones_the_export_quantizes(small):
    net, raw, noise = small["net"], torch.from_numpy(small["raw"]), torch.from_numpy(small["noise"])
    assert output_layers(net, lambda: net(raw, noise)) == ["out"]
    names = quantized_layers(net, lambda: net(raw, noise))
    assert names == ["isp.priors.0", "isp.priors.2", "body.0", "body.2", "body.4"]
    assert set(names) == small["onnx_layers"]  # ONNX Runtime's choice on the exported graph


def test_the_file_rounds_only_what_quantized_layers_read(small):
    """TensorRT's placement (edge_isp.export.precision.inputs_only): every rounded activation is
    read by convolutions only; the residual addition and the float tone layer read float."""
    import onnx

    graph = onnx.load(str(small["int8"])).graph
    weights = {t.name for t in graph.initializer}
    dq_out = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in weights}
    readers = [n for n in graph.node if any(i in dq_out for i in n.input)]
    assert readers and {n.op_type for n in readers} == {"Conv"}
    assert {n.name for n in readers} == {"/isp/priors/priors.0/Conv", "/isp/priors/priors.2/Conv", "/body/body.0/Conv",
                                         "/body/body.2/Conv", "/body/body.4/Conv"}  # fmt: skip
    add = next(n for n in graph.node if n.op_type == "Add")
    assert "raw" in add.input


def test_fake_quantization_computes_what_the_int8_file_computes(small):
    """Min/max ranges on both sides (the export's minmax calibration over the same 16 frames):
    the torch model with fake quantization gives the INT8 file's answers but for the odd value
    that float rounding puts across a rounding boundary, while FP32's answers are far from them."""
    net, raw, noise = small["net"], torch.from_numpy(small["raw"]), torch.from_numpy(small["noise"])
    with torch.no_grad():
        fp32 = net(raw, noise).numpy()
    names = quantized_layers(net, lambda: net(raw, noise))
    scales = calibrate_ranges(net, names, [lambda: net(raw, noise)], percentile=100.0)
    # The graph's arithmetic as written (ONNX Runtime's CPU fusions requantize in integers, a
    # rounding of their own that a TensorRT engine does not share).
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(small["int8"]), options, providers=["CPUExecutionProvider"])
    want = session.run(None, {"raw": small["raw"], "noise": small["noise"]})[0]
    quant = FakeQuant(net, scales).attach()
    with torch.no_grad():
        got = net(raw, noise).numpy()
    quant.detach()
    with torch.no_grad():
        back = net(raw, noise).numpy()
    np.testing.assert_array_equal(back, fp32)  # detach restores the float layers
    int8_error = np.abs(want - fp32).mean()
    assert int8_error > 1e-4 * np.abs(fp32).mean()
    # A value that float convolutions summed in another order put on the other side of a
    # rounding boundary moves a step.
    assert np.abs(got - want).mean() < 0.02 * int8_error, (np.abs(got - want).mean(), int8_error)
    assert np.abs(got - want).max() < 0.25 * np.abs(want - fp32).max()


def test_fake_quant_weight_rounds_each_channel_to_its_own_127_steps():
    w = torch.tensor([[0.5, -1.0, 0.26], [10.0, 3.3, -0.04]], requires_grad=True)
    q = fake_quant_weight(w)
    steps = torch.tensor([[1.0 / 127], [10.0 / 127]])
    assert torch.allclose(q / steps, torch.round(w.detach() / steps), atol=1e-4)
    q.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # straight through


def test_calibration_and_scales_are_checked():
    net = SmallNet()
    raw, noise = torch.randn(2, 4, 8, 8), torch.zeros(2, 2)
    with pytest.raises(InvalidInputError, match=r"no Conv2d/Linear layer named nope"):
        calibrate_ranges(net, ["nope"], [lambda: net(raw, noise)])
    with pytest.raises(InvalidInputError, match=r"at least one batch"):
        calibrate_ranges(net, ["body.0"], [])
    with pytest.raises(InvalidInputError, match=r"percentile"):
        calibrate_ranges(net, ["body.0"], [lambda: net(raw, noise)], percentile=0)
    with pytest.raises(InvalidInputError, match=r"lacks: head.conv"):
        FakeQuant(net, {"head.conv": 0.1})
    with pytest.raises(InvalidInputError, match=r"must be numbers > 0: body.0"):
        FakeQuant(net, {"body.0": 0.0})


def test_a_fake_quantized_run_saves_plain_weights_and_resumes_bitwise(cls_data, tmp_path, tiny_config):
    overrides = ("quant.fake_quant=true", "quant.calib_batches=2")
    whole = train("joint", tiny_config(cls_data, tmp_path / "whole", *overrides))
    train("joint", tiny_config(cls_data, tmp_path / "plain"))
    a, p = load_checkpoint(tmp_path / "whole" / "last.pt"), load_checkpoint(tmp_path / "plain" / "last.pt")
    assert a["model"].keys() == p["model"].keys()  # no quantization state among the weights
    assert p["fake_quant"] is None and len(a["fake_quant"]) > 10
    assert all(s > 0 for s in a["fake_quant"].values())
    assert not all(torch.equal(a["model"][k], p["model"][k]) for k in a["model"])  # the rounding trained them
    stopped = train("joint", tiny_config(cls_data, tmp_path / "split", *overrides, "run.max_steps=5"))
    assert stopped.global_step == 5
    resumed = train("joint", tiny_config(cls_data, tmp_path / "split", *overrides), resume=True)
    assert resumed.global_step == whole.global_step
    b = load_checkpoint(tmp_path / "split" / "last.pt")
    assert b["fake_quant"] == a["fake_quant"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    with pytest.raises(InvalidInputError, match=r"trained without quant.fake_quant"):
        train("joint", tiny_config(cls_data, tmp_path / "plain", *overrides, "run.epochs=3"), resume=True)
