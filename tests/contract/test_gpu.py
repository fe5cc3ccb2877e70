"""GPU identity for the cache key: parsing, naming."""

from __future__ import annotations

import pytest

from edge_isp.contract.gpu import GpuInfo, NoGpuError, parse_compute_capability, parse_nvidia_smi
from edge_isp.errors import InvalidInputError


def test_parse_nvidia_smi_lines():
    output = "NVIDIA H100 80GB HBM3, 9.0\nNVIDIA GeForce RTX 4090, 8.9\n"
    assert parse_nvidia_smi(output) == GpuInfo("NVIDIA H100 80GB HBM3", (9, 0))
    assert parse_nvidia_smi(output, 1).compute_capability == (8, 9)
    with pytest.raises(NoGpuError, match=r"lists 2 GPU"):
        parse_nvidia_smi(output, 2)
    with pytest.raises(InvalidInputError, match=r"NAME, 8.7"):
        parse_nvidia_smi("8.7")


def test_compute_capability_and_names():
    assert parse_compute_capability(" 8.7 ") == (8, 7)
    with pytest.raises(InvalidInputError, match=r"8.7"):
        parse_compute_capability("sm_87")
    gpu = GpuInfo("NVIDIA H100 80GB HBM3", (9, 0))
    assert gpu.sm == "9.0" and gpu.slug == "nvidia-h100-80gb-hbm3"
    assert GpuInfo("Orin (nvgpu)", (8, 7)).slug == "orin-nvgpu"
