"""scripts/: every shell script passes shellcheck (sourced helpers followed), and the study
scripts refuse an unknown task or action before they build data or train anything."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

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
