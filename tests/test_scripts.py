"""scripts/: every shell script passes shellcheck (sourced helpers followed), and the study
scripts refuse an unknown task or action before they build data or train anything."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge_isp.errors import InvalidInputError
from scripts.compare_variants import compare, table

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs shellcheck (apt-get install shellcheck)")
@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_passes_shellcheck(script):
    done = subprocess.run(
        ["shellcheck", "-x", "--severity=style", f"scripts/{script.name}"], cwd=ROOT, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["scripts/study.sh"], "usage: .*study.sh cls|det"),
        (["scripts/study.sh", "seg"], "usage: .*study.sh cls|det"),
        (["scripts/study.sh", "cls", "fly"], r"usage: .*\[train\|eval\|all\]"),
        (["scripts/study.sh", "real-seg"], "usage: .*study.sh cls|det|real-cls|real-det"),
        (["scripts/train_real.sh"], "usage: .*train_real.sh cls|det"),
        (["scripts/train_real.sh", "seg"], "usage: .*train_real.sh cls|det"),
    ],
)
def test_study_refuses_bad_arguments(argv, message):
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert re.search(message, done.stderr), done.stderr


def test_probes_need_the_study_runs_first(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "RUNS": str(tmp_path / "none")}
    done = subprocess.run(["scripts/study_probes.sh", "train", "schedule"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert f"missing {tmp_path / 'none'}/seed0/isp: run scripts/study.sh cls train 0 first" in done.stderr


def test_compare_variants_pairs_seeds(tmp_path):
    def sweep(name, values):
        folder = tmp_path / name
        folder.mkdir()
        data = {"settings": {"levels": [3.0, 100.0], "light_unit": "lux"}, "values": {"e": {"map50": [values]}}}
        (folder / "sweep.json").write_text(json.dumps(data))
        return folder

    a = [sweep("a0", [0.50, 0.80]), sweep("a1", [0.60, 0.80])]
    b = [sweep("b0", [0.47, 0.81]), sweep("b1", [0.58, 0.79])]
    result = compare(a, b, "e", "map50")
    assert result["difference"]["mean"] == pytest.approx([-2.5, 0.0])
    assert result["difference"]["std"] == pytest.approx([np.std([-3.0, -2.0], ddof=1), np.std([1.0, -1.0], ddof=1)])
    assert result["within"] == [False, True]  # 2.5 points lost at 3 lux, more than max(1, 0.71)
    assert "| -2.5 ± 0.7 |" in table(result, ("A", "B"))
    with pytest.raises(InvalidInputError, match="same number"):
        compare(a, b[:1], "e", "map50")
