"""deploy/: the install scripts (Jetson, Raspberry Pi, and what they share) pass shellcheck,
refuse boards they cannot support and, with --dry-run, say what they would change without
changing it; the unit passes `systemd-analyze verify` and says what the service needs; the
container recipe is consistent with the repository."""

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
PI_SCRIPT = DEPLOY / "install-pi.sh"
UNIT = DEPLOY / "edge-isp.service"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs shellcheck (apt-get install shellcheck)")
@pytest.mark.parametrize("name", ["install-jetson.sh", "install-pi.sh", "install-common.sh"])
def test_install_scripts_pass_shellcheck(name):
    cmd = ["shellcheck", "--severity=style", "--external-sources", name]  # follows the sourced file
    done = subprocess.run(cmd, cwd=DEPLOY, capture_output=True, text=True, timeout=60)
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


def fake_aarch64(tmp_path: Path) -> dict[str, str]:
    """An environment whose `uname -m` says aarch64, so a dry run gets past the CPU check."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "uname").write_text("#!/bin/sh\necho aarch64\n")
    (bin_dir / "uname").chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def run_pi_script(
    tmp_path: Path, model: str | None, os_release: str, *args: str, env=None
) -> subprocess.CompletedProcess:
    if model is not None:
        (tmp_path / "model").write_bytes(model.encode() + b"\0")  # device-tree strings end in NUL
    (tmp_path / "os-release").write_text(os_release)
    env = dict(env or os.environ, DEVICE_TREE_MODEL=str(tmp_path / "model"), OS_RELEASE=str(tmp_path / "os-release"))
    return subprocess.run(["bash", str(PI_SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)


BOOKWORM = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n'
PI5 = "Raspberry Pi 5 Model B Rev 1.0"


@pytest.mark.parametrize(
    ("model", "os_release", "message"),
    [
        (None, BOOKWORM, "not a Raspberry Pi (on a Jetson use deploy/install-jetson.sh"),
        ("NVIDIA Jetson Orin Nano Developer Kit", BOOKWORM, "not a Raspberry Pi"),
        (PI5, BOOKWORM.replace("bookworm", "bullseye"), "bullseye is too old"),
        (PI5, "ID=ubuntu\nVERSION_CODENAME=noble\n", "the OS is 'ubuntu noble'"),
    ],
)
def test_pi_script_refuses_what_it_cannot_support(tmp_path, model, os_release, message):
    done = run_pi_script(tmp_path, model, os_release)
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert done.stderr.startswith("edge-isp install: error: ")


@pytest.mark.skipif(platform.machine() == "aarch64", reason="past the board check this would install on this machine")
def test_pi_script_refuses_another_cpu(tmp_path):
    done = run_pi_script(tmp_path, PI5, BOOKWORM)
    assert "board: Raspberry Pi 5" in done.stdout and "OS: debian bookworm: supported" in done.stdout
    assert done.returncode == 1 and f"this is a {platform.machine()} machine" in done.stderr


@pytest.mark.parametrize("script", ["pi", "jetson"])
def test_dry_run_says_each_change_and_makes_none(tmp_path, script):
    prefix = tmp_path / "prefix"
    env = fake_aarch64(tmp_path)
    if script == "pi":
        done = run_pi_script(tmp_path, PI5, BOOKWORM, "--dry-run", "--prefix", str(prefix), env=env)
        extras, wanted = "pi", "python3-picamera2"
    else:
        (tmp_path / "release").write_text("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic\n")
        env["NV_TEGRA_RELEASE"] = str(tmp_path / "release")
        cmd = ["bash", str(SCRIPT), "--dry-run", "--prefix", str(prefix)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        extras, wanted = "jetson,export", "python3-libnvinfer"
    assert done.returncode == 0, done.stdout + done.stderr
    would = [line.removeprefix("edge-isp install: would: ") for line in done.stdout.splitlines() if "would:" in line]
    assert any(wanted in line and "apt-get install" in line for line in would), done.stdout
    assert f"python3 -m venv --system-site-packages {prefix}/venv" in would
    assert any(line.endswith(f"pip install --quiet --disable-pip-version-check {REPO}[{extras}]") for line in would)
    assert "systemctl enable edge-isp.service" in would
    assert done.stdout.rstrip().endswith(
        "dry run: nothing was changed; run it again without --dry-run to make the changes above"
    )
    assert not prefix.exists(), "a dry run changes nothing"


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
