"""The engine side a board runs (metadata, targets, build plan, cache, trtexec, GPU info,
progress, the TensorRT adapter) imports without torch: a Jetson runtime has none."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "edge_isp.contract.targets",
    "edge_isp.contract.build_plan",
    "edge_isp.contract.engine_cache",
    "edge_isp.contract.trtexec",
    "edge_isp.contract.progress",
    "edge_isp.contract.tensorrt_build",
    "edge_isp.contract.engine",
]


def test_engine_side_imports_without_torch():
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any import of torch now fails\n"
        + "".join(f"import {m}\n" for m in MODULES)
        + "assert sys.modules['torch'] is None\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
