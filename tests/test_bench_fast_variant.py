"""bench/fast_variant.py: its cost split on a graph written by hand, its OpenCV row against the
project's ISP, and one tiny end-to-end run writing its JSON (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edge_isp.export.graph_stats import graph_stats
from edge_isp.isp import IspConfig, render_mosaic
from edge_isp.sensor.cfa import mosaic as make_mosaic
from edge_isp.sensor.profile import SensorProfile

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "fast_variant.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(SCRIPT.parent))  # the script imports its sibling export_latency
    try:
        spec = importlib.util.spec_from_file_location("fast_variant_bench", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


def _conv(name: str, x: str, w: str, out: str, **attributes) -> object:
    return helper.make_node("Conv", [x, w], [out], name=name, **attributes)


def test_cost_per_part_of_a_graph_written_by_hand(bench):
    """Names as the exporter writes them; every number below by hand."""
    rng = np.random.default_rng(0)
    weights = {"w_isp": (3, 4, 3, 3), "w_stem": (8, 3, 3, 3), "w_lat": (4, 8, 1, 1), "w_heat": (2, 4, 3, 3)}
    graph = helper.make_graph(
        [_conv("/isp/priors.0/Conv", "raw", "w_isp", "rgb", pads=[1, 1, 1, 1]),  # 3*8*8 out x 4*9
         _conv("/head/features.0/Conv", "rgb", "w_stem", "f", pads=[1, 1, 1, 1], strides=[2, 2]),  # 8*4*4 x 27
         _conv("/head/lateral.0/Conv", "f", "w_lat", "n"),  # 4*4*4 x 8
         _conv("/head/heatmap/heatmap.0/Conv", "n", "w_heat", "h", pads=[1, 1, 1, 1]),  # 2*4*4 x 36
         helper.make_node("Sigmoid", ["h"], ["scores"], name="/Sigmoid")],
        "parts",
        [helper.make_tensor_value_info("raw", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2, 4, 4])],
        [numpy_helper.from_array(rng.random(s, np.float32), n) for n, s in weights.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    cost = bench.graph_costs(graph_stats(model))
    macs = {p: round(c["gmacs"] * 1e9) for p, c in cost["parts"].items()}
    assert macs == {"isp": 192 * 36, "stem+backbone": 128 * 27, "neck": 64 * 8, "heads": 32 * 36, "decode": 0}
    written = {p: round(c["activation_mb_fp32"] * 1e6) for p, c in cost["parts"].items()}
    assert written == {"isp": 4 * 192, "stem+backbone": 4 * 128, "neck": 4 * 64, "heads": 4 * 32, "decode": 4 * 32}
    assert cost["gmacs"] * 1e9 == pytest.approx(6912 + 3456 + 512 + 1152)


def test_opencv_row_renders_what_the_project_isp_renders(bench):
    """A scene of smooth ramps, where bilinear and Malvar demosaicking agree away from the borders:
    OpenCV's row renders what the project's ISP renders, white balance, colour matrix and sRGB
    curve included."""
    profile = SensorProfile.load("nexus6p-rear")
    y, x = np.mgrid[0:32, 0:48] / 64.0
    linear = np.stack([0.2 + 0.3 * x, 0.3 + 0.2 * y, 0.25 + 0.1 * x * y], axis=0).astype(np.float32)
    gains = np.asarray(profile.white_balance, np.float32)[:, None, None]
    raw = make_mosaic(linear / gains, profile.cfa)
    config = IspConfig(white_balance=profile.white_balance, color_matrix=profile.color_matrix)
    expected = render_mosaic(raw, profile.cfa, config)
    got = bench.opencv_render(raw, profile.cfa, profile.white_balance, profile.color_matrix)
    assert got.shape == expected.shape == (32, 48, 3)
    assert np.abs(got - expected)[4:-4, 4:-4].max() < 1e-3  # a wrong Bayer code is off by 0.1


@pytest.mark.slow
def test_the_bench_runs_end_to_end_at_a_tiny_size(tmp_path):
    out = tmp_path / "fast.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(SCRIPT), "--sizes", "64x64", "--rounds", "1", "--warmup", "0",
                             "--json", str(out)], capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fused fast / its detector alone" in result.stdout and str(out) in result.stdout
    data = json.loads(out.read_text())
    assert data["rounds"] == 1 and data["ort_intra_op_threads"] == 1 and "noisy" in data["note"]
    (entry,) = data["sizes"]
    assert entry["size"] == "64x64" and len(entry["timings_ms"]) == 9  # 7 + the two light ISPs
    assert all(t["n"] == 1 and t["median"] > 0 for t in entry["timings_ms"].values())
    assert entry["ratios"]["fused fast / its detector alone"]["target"] == "<= 1.3"
    cost = entry["cost_per_frame"]
    fused, alone = cost["dpnh_s_det fused"]["parts"], cost["dpnh_s_det detector alone"]["parts"]
    full_alone = cost["dpn_s_det detector alone"]["parts"]
    for part in ("stem+backbone", "neck", "heads"):
        # The fused graph's perception is its detector alone, and the stride-1 stem on the half
        # picture does the full-resolution detector's work exactly.
        assert fused[part]["gmacs"] == alone[part]["gmacs"] == full_alone[part]["gmacs"] > 0
    assert "isp" not in alone and 0 < fused["isp"]["gmacs"] < cost["dpn_s_det fused"]["parts"]["isp"]["gmacs"]
    # The light ISPs: the same detector; the unshuffled U-Net at widths 16/16/32 has fewer MACs.
    light = cost["dpnhu_xs_det fused"]["parts"]
    assert light["heads"]["gmacs"] == fused["heads"]["gmacs"] and 0 < light["isp"]["gmacs"] < fused["isp"]["gmacs"]
    assert entry["ratios"]["conventional Malvar + detector / dpnhu_xs_det"]["target"] == ">= 1.0"
    if not torch.cuda.is_available():
        assert data["pytorch_gpu_fp16"].startswith("not measured")
