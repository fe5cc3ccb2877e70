"""deploy/: the install script passes shellcheck and refuses boards it cannot support; the unit
passes `systemd-analyze verify` and says what the service needs; the container recipe is
consistent with the repository."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SCRIPT = DEPLOY / "install-jetson.sh"
UNIT = DEPLOY / "edge-isp.service"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs shellcheck (apt-get install shellcheck)")
def test_install_script_passes_shellcheck():
    done = subprocess.run(["shellcheck", "--severity=style", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def run_script(tmp_path: Path, release: str | None) -> subprocess.CompletedProcess:
    path = tmp_path / "nv_tegra_release"
    if release is not None:
        path.write_text(release)
    env = dict(os.environ, NV_TEGRA_RELEASE=str(path))
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(
    ("release", "message"),
    [
        (None, "not a Jetson running Jetson Linux"),
        ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref", "Jetson Linux 35.4.1 is JetPack 5"),
        ("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref", "Jetson Linux 32.7.1 is JetPack 4"),
        ("# R38 (release), REVISION: 2.0, GCID: 1, BOARD: generic", "38.2.0 is not JetPack 6"),
        ("garbage", "cannot read the Jetson Linux version"),
    ],
)
def test_install_script_refuses_a_board_it_cannot_support(tmp_path, release, message):
    done = run_script(tmp_path, release)
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert done.stderr.startswith("edge-isp install: error: ") and done.stdout == ""


@pytest.mark.skipif(platform.machine() == "aarch64", reason="past the board check this would install on this machine")
def test_install_script_accepts_jetpack_6_then_checks_the_cpu(tmp_path):
    done = run_script(tmp_path, "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64")
    assert "Jetson Linux 36.4.3 (JetPack 6): supported" in done.stdout
    assert done.returncode == 1 and f"this is a {platform.machine()} machine, not a Jetson" in done.stderr


def test_install_script_help_and_unknown_option():
    done = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "--deploy-user" in done.stdout and "idempotent" in done.stdout
    done = subprocess.run(["bash", str(SCRIPT), "--frobnicate"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "unknown option --frobnicate" in done.stderr


def test_unit_runs_the_service_as_asked():
    text = UNIT.read_text()
    keys = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
    assert keys["ExecStart"] == "/opt/edge-isp/current/bin/edge-isp run --config /etc/edge-isp/config.toml"
    assert keys["Restart"] == "on-failure" and keys["WantedBy"] == "multi-user.target"
    assert keys["StandardOutput"] == keys["StandardError"] == "journal"
    assert keys["User"] == "edge-isp" and "network-online.target" in keys["After"]


SYSTEMD_UNITS = Path("/usr/lib/systemd/system")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (apt-get install systemd)")
@pytest.mark.skipif(not SYSTEMD_UNITS.is_dir(), reason=f"needs systemd's own units in {SYSTEMD_UNITS}")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    # A root folder like the board's: the unit installed, its ExecStart there, systemd's
    # targets. --root keeps verify off this machine's own units (it may not run systemd).
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "usr/lib/systemd/system").mkdir(parents=True)
    for target in SYSTEMD_UNITS.glob("*.target"):
        if target.resolve().is_file():
            shutil.copyfile(target.resolve(), root / "usr/lib/systemd/system" / target.name)
    launcher = root / "opt/edge-isp/current/bin/edge-isp"
    launcher.parent.mkdir(parents=True)
    launcher.write_text("#!/bin/sh\n")
    launcher.chmod(0o755)

    def verify(unit_text: str, name: str) -> subprocess.CompletedProcess:
        (root / "etc/systemd/system" / name).write_text(unit_text)
        return subprocess.run(
            ["systemd-analyze", "verify", f"--root={root}", name], capture_output=True, text=True, timeout=60
        )

    done = verify(UNIT.read_text(), "edge-isp.service")
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr
    # The same check on a broken copy speaks up, so silence above means something.
    broken = UNIT.read_text().replace("Restart=on-failure", "Restart=sometimes").replace("Type=simple", "Tpye=simple")
    done = verify(broken, "broken.service")
    assert "Unknown key 'Tpye'" in done.stderr and "restart specifier" in done.stderr


def test_example_config_and_dockerfile_agree_with_the_repository():
    from edge_isp.deploy.run_config import parse_run_config_text

    parse_run_config_text((DEPLOY / "config.example.toml").read_text(), "/", origin="config.example.toml")
    text = (DEPLOY / "Dockerfile.l4t").read_text()
    assert re.search(r"^FROM nvcr\.io/nvidia/l4t-jetpack:\$\{L4T_TAG\}$", text, re.M)
    assert re.search(r"^ARG L4T_TAG=r36\.\d+\.\d+$", text, re.M)
    assert "--system-site-packages" in text
    for source in re.findall(r"^COPY (.+) /opt/edge-isp/src/", text, re.M):
        for path in source.split():
            assert (REPO / path).exists(), f"Dockerfile copies {path}, which the repository does not have"
    assert 'CMD ["run", "--config", "/etc/edge-isp/config.toml"]' in text
