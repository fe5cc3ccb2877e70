"""Counting multiply-accumulates and traffic on a graph whose numbers are known by hand."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from edge_isp.export.graph_stats import graph_stats

from .conftest import export_module


class Known(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)  # 16*16 outputs x 8 channels x (4*3*3) MACs
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # 16*16 x 8 x (1*3*3)
        self.fc = nn.Linear(8, 5)  # 8 x 5

    def forward(self, raw, noise):
        return self.fc(self.dw(self.conv(raw)).mean((2, 3))) + noise[:, :1] * 0


def test_macs_by_hand(tmp_path):
    torch.manual_seed(0)
    path = export_module(Known(), tmp_path / "k.onnx", packed_hw=(16, 16), task="classification",
                         class_names=list("abcde"), outputs=["logits"], batch="batch")  # fmt: skip
    stats = graph_stats(path, batch=2)
    by_layer = {name.split("/")[1]: macs for name, macs in stats.macs.items()}
    assert by_layer == {"conv": 2 * 256 * 8 * 36, "dw": 2 * 256 * 8 * 9, "fc": 2 * 8 * 5}
    assert stats.weight_elements >= 8 * 4 * 9 + 8 * 9 + 8 * 5
    assert stats.traffic_bytes(2) == 2 * (stats.activation_elements + stats.weight_elements)
    dw, total = 2 * 256 * 8 * 9, 2 * 256 * 8 * 36 + 2 * 256 * 8 * 9 + 2 * 8 * 5
    assert stats.total_macs == total
    assert stats.mac_fraction([n for n in stats.macs if "/dw/" in n]) == pytest.approx(dw / total)


def test_conv_transpose_and_activations_by_part_on_a_graph_written_by_hand():
    """A graph made with onnx.helper (not by our exporter): Conv 3->4 (3x3, pad 1) on 8x8, then
    ConvTranspose 4->2 (2x2, stride 2) to 16x16."""
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["y"], name="/a/conv", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["y"], ["r"], name="/a/relu"),
         helper.make_node("ConvTranspose", ["r", "w2"], ["z"], name="/b/up", strides=[2, 2])],
        "known",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2, 16, 16])],
        [numpy_helper.from_array(rng.random((4, 3, 3, 3), np.float32), "w1"),
         numpy_helper.from_array(rng.random((4, 2, 2, 2), np.float32), "w2")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    stats = graph_stats(model)
    # Conv: 4*8*8 outputs x 3*3*3; ConvTranspose: 4*8*8 inputs x 2*2*2 (each output of 2*16*16
    # gets 4 channels x 1 tap of the 2x2 kernel at stride 2: 512 x 4, the same 2048).
    assert stats.macs == {"/a/conv": 256 * 27, "/b/up": 2048}
    assert stats.output_elements == {"/a/conv": 256, "/a/relu": 256, "/b/up": 512}
    assert stats.weight_elements == 108 + 32
    assert stats.activation_elements == (192 + 256) + (256 + 256) + (256 + 512)
    parts = stats.by_part(lambda name: name.split("/")[1])
    assert parts == {"a": {"macs": 6912, "output_elements": 512, "nodes": 2},
                     "b": {"macs": 2048, "output_elements": 512, "nodes": 1}}  # fmt: skip
