"""bench/isp_profile.py: its grouping of ONNX Runtime's nodes, and one tiny end-to-end run whose
profile accounts for the ISP's nodes (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "isp_profile.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("isp_profile_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nodes_are_grouped_by_kind_and_stage(bench):
    assert bench.op_kind("Conv", 16) == "conv, 16 output channels computed"
    assert bench.op_kind("ReorderOutput", None) == bench.op_kind("DepthToSpace", None) == "layout conversion"
    assert bench.op_kind("Concat", None) == "data movement" and bench.op_kind("Pow", None) == "element-wise"
    assert bench.stage_of("/isp/priors.0/enc0/enc0.1/LeakyRelu_output_0_nchwc") == "prior (U-Net)"
    assert bench.stage_of("/isp/tone/Pow") == "colour/tone"
    assert bench.stage_of("/isp/inverse/Mul_3") == "inverse Anscombe"
    assert bench.stage_of("/isp/Sub_2") == "planes, unit range, data step"
    assert bench.stage_of("ReorderOutput_token_50") == "layout nodes ONNX Runtime inserts"


@pytest.mark.slow
def test_the_profile_runs_end_to_end_at_a_tiny_size(tmp_path):
    out = tmp_path / "profile.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(SCRIPT), "--models", "dpnhu_xs_det", "--size", "64x64",
                             "--runs", "2", "--warmup", "0", "--json", str(out)],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["raw_size"] == "64x64" and set(data["models"]) == {"dpnhu_xs_det"}
    for entry in data["models"].values():
        assert entry["gmacs"] > 0 and entry["kernels_ms"] > 0
        for table in ("by_op", "by_kind", "by_stage"):
            assert sum(row["ms"] for row in entry[table].values()) == pytest.approx(entry["kernels_ms"])
        assert entry["by_op"]["Conv"]["ms"] > 0 and "prior (U-Net)" in entry["by_stage"]
    # The unshuffled U-Net shuffles its 12-channel output back to the picture (DepthToSpace).
    assert "DepthToSpace" in data["models"]["dpnhu_xs_det"]["by_op"]
