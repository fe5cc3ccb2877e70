"""The built wheel works from anywhere: profiles, targets, the default models and the board
files are inside it, and `demo`, `run`, `export targets` run from a folder that has nothing to
do with the checkout.

The wheel is built from a copy of the checkout (the build writes build/ and *.egg-info beside
its sources) and installed, without its dependencies, into a fresh virtual environment that sees
this interpreter's site-packages through a .pth line (numpy, OpenCV, ONNX Runtime; nothing is
downloaded). A .pth line adds a folder only: the editable install's own .pth hooks in it do
not run, so the venv's edge_isp is the wheel's, which the test checks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "edge_isp", "calibration", "export", "models", "deploy")

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout_s: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """(the venv's bin folder, an unrelated working folder, the environment to run in)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
            shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)], tmp, env)
    (wheel,) = (tmp / "dist").glob("edge_isp-*.whl")

    venv.EnvBuilder(with_pip=False).create(tmp / "venv")
    python = tmp / "venv" / "bin" / "python"
    _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)], tmp, env)
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env)
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib.stdout.strip()) / "outer-site-packages.pth").write_text("\n".join(sorted(outer)) + "\n")

    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return tmp / "venv" / "bin", elsewhere, env


def test_the_installed_package_is_the_wheel_with_its_data(installed):
    bin_dir, cwd, env = installed
    code = (
        "import edge_isp, edge_isp.shipped as s; print(edge_isp.__file__); "
        "print(s.shipped_names('profiles', '.json')); print(s.shipped_names('targets', '.toml')); "
        "print(all(s.default_model(t, scene).is_file() for t in ('det', 'cls') for scene in ('footage', 'garments')), "
        "s.shipped_model_names()); "
        "print(sorted(p.name for p in s.shipped_dir('deploy').iterdir()))"
    )
    lines = _run([str(bin_dir / "python"), "-c", code], cwd, env).stdout.splitlines()
    assert Path(lines[0]).is_relative_to(bin_dir.parent), f"edge_isp came from {lines[0]}, not the wheel"
    checkout_profiles = sorted(p.stem for p in (ROOT / "calibration" / "profiles").glob("*.json"))
    assert lines[1] == str(checkout_profiles) and "nexus6p-rear" in lines[1]
    assert lines[2] == str(sorted(p.stem for p in (ROOT / "export" / "targets").glob("*.toml")))
    assert lines[3] == "True ['garment-cls', 'garment-det', 'real-cls', 'real-det']"
    assert "edge-isp.service" in lines[4] and "install-jetson.sh" in lines[4]


def test_export_targets_and_engine_plan_from_anywhere(installed):
    bin_dir, cwd, env = installed
    listed = _run([str(bin_dir / "edge-isp"), "export", "targets"], cwd, env).stdout
    assert {line.split()[0] for line in listed.splitlines() if line.strip()} >= {"orin-nano", "orin-nx", "x86-gpu"}
    model = _shipped_model(bin_dir, cwd, env)
    cmd = [str(bin_dir / "edge-isp"), "export", "engine", str(model), "--target", "orin-nano", "--print-trtexec"]
    refused = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "int8" in refused.stderr, "the shipped target is found and read"
    mine = cwd.parent / "my-board.toml"  # a user's own target, by path, beside the shipped ones
    mine.write_text('name = "my-board"\nprecision = "fp32"\ninput_size = [160, 128]\nmemory_pool_mb = 512\n')
    cmd[cmd.index("orin-nano")] = str(mine)
    plan = _run(cmd, cwd, env).stdout
    assert "trtexec" in plan and f"--onnx={model}" in plan, plan


def test_demo_and_run_from_anywhere(installed):
    bin_dir, cwd, env = installed
    scene = _run(
        [str(bin_dir / "python"), "-c", "from edge_isp.data import sources; "
         "print(', '.join(p.id for p in sources.available_photos()['test'])); print(sources.fashion_mnist_dir())"],
        cwd, env,
    ).stdout.splitlines()  # fmt: skip
    # The garment scene: Fashion-MNIST garments over one of the test split's photographs, as installed here.
    print(f"garment scene: garments from {scene[1]} over one of the test photographs [{scene[0]}]")
    for scene_args, model in (([], "real-det/model.onnx"), (["--scene", "garments"], "garment-det/model.onnx")):
        command = [str(bin_dir / "edge-isp"), "demo", *scene_args, "--max-frames", "3", "--http", "127.0.0.1:0"]
        demo = _run(command, cwd, env)
        # The demo's camera is live: on a busy machine it drops the oldest frame rather than wait.
        counts = re.search(r"(\d+) frame\(s\) processed, (\d+) dropped", demo.stdout)
        assert counts and int(counts[1]) >= 1 and int(counts[1]) + int(counts[2]) == 3, demo.stdout + demo.stderr
        assert "profile nexus6p-rear" in demo.stdout and model in demo.stdout, demo.stdout

    model = _shipped_model(bin_dir, cwd, env)
    cmd = [str(bin_dir / "edge-isp"), "run", "--source", "sim", "--model", str(model), "--profile", "oneplus6-rear"]
    run = _run([*cmd, "--max-frames", "2", "--lux", "30", "--process-all"], cwd, env)
    assert "2 frame(s) processed" in run.stdout and "profile oneplus6-rear" in run.stdout, run.stdout + run.stderr
    assert sorted(p.name for p in cwd.iterdir()) == [], "nothing is written into the working folder"


def _shipped_model(bin_dir: Path, cwd: Path, env: dict[str, str]) -> Path:
    code = "from edge_isp.shipped import default_model; print(default_model('det', 'garments'))"
    return Path(_run([str(bin_dir / "python"), "-c", code], cwd, env).stdout.strip())
