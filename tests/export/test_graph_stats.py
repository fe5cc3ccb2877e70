"""Counting multiply-accumulates and traffic on a graph whose numbers are known by hand."""

from __future__ import annotations

import pytest
import torch
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
