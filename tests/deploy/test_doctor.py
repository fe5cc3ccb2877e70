"""`edge-isp doctor` on machines described by what their files and commands say: a ready Jetson,
Jetsons with something missing, a Raspberry Pi, a PC; and the command on this machine."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from edge_isp.cli import deploy_commands
from edge_isp.deploy import doctor
from edge_isp.deploy.board_checks import FAIL, PASS, SKIP, WARN
from edge_isp.deploy.system import CommandResult, LocalSystem, ModuleProbe, System

from . import captured


@dataclasses.dataclass
class FakeSystem(System):
    """A machine as a table: file contents, command outputs (by argv joined with spaces), modules."""

    files: dict[str, str] = dataclasses.field(default_factory=dict)
    commands: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)
    modules: dict[str, str] = dataclasses.field(default_factory=dict)
    paths: list[str] = dataclasses.field(default_factory=list)
    free_bytes: int = 50 * 2**30
    http: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)
    arch: str = "aarch64 Linux"
    venv: tuple[str, bool, bool] = ("3.10.12", True, True)
    gpu_answer: tuple[str, str] | None = None

    def read_text(self, path: str) -> str | None:
        return self.files.get(path)

    def run(self, argv: Sequence[str], timeout_s: float = 10.0) -> CommandResult | None:
        key = " ".join(argv)
        if key in self.commands:
            return CommandResult(*self.commands[key])
        programs = {k.split()[0] for k in self.commands}
        return CommandResult(1, "") if argv[0] in programs else None

    def glob(self, pattern: str) -> list[str]:
        return sorted(p for p in self.paths if fnmatch.fnmatch(p, pattern))

    def disk_free_bytes(self, path: str) -> int | None:
        return self.free_bytes

    def import_module(self, name: str) -> ModuleProbe:
        if name in self.modules:
            return ModuleProbe(True, version=self.modules[name])
        return ModuleProbe(False, error=f"ModuleNotFoundError: No module named '{name}'")

    def http_get(self, url: str, token: str | None = None, timeout_s: float = 3.0) -> tuple[int, str] | None:
        return self.http.get(url)

    def machine(self) -> str:
        return self.arch

    def python(self) -> tuple[str, bool, bool]:
        return self.venv

    def gpu(self) -> tuple[str, str] | None:
        return self.gpu_answer


def ready_jetson() -> FakeSystem:
    gst = "gst-inspect-1.0"
    return FakeSystem(
        files={
            "/etc/nv_tegra_release": captured.TEGRA_R36,
            "/proc/device-tree/model": captured.MODEL_ORIN_NANO,
            "/usr/local/cuda/version.json": captured.CUDA_VERSION_JSON,
        },
        commands={
            "v4l2-ctl --list-formats-ext -d /dev/video0": (0, captured.V4L2_IMX219_JETSON),
            f"{gst} nvv4l2h264enc": (1, captured.GST_ABSENT),
            f"{gst} x264enc": (0, captured.GST_PRESENT),
            "systemctl show edge-isp --property=LoadState,ActiveState,SubState,NRestarts": (
                0,
                captured.SYSTEMCTL_ACTIVE,
            ),
        },
        modules={"tensorrt": "10.3.0", "pycuda": "2024.1.2", "onnxruntime": "1.19.0"},
        paths=[
            "/dev/video0",
            "/run/systemd/system",
            "/usr/lib/aarch64-linux-gnu/girepository-1.0/GstRtspServer-1.0.typelib",
        ],
        gpu_answer=("Orin", "8.7"),
    )


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_a_ready_jetson_passes_every_board_check():
    machine, checks = doctor.run_doctor(ready_jetson(), doctor.DoctorOptions())
    assert machine.kind == "jetson" and machine.l4t.version == "36.4.3"
    found = by_name(checks)
    for name in ("board", "python", "cuda", "gpu", "tensorrt", "pycuda", "cameras (V4L2)", "gstreamer", "disk"):
        assert found[name].status == PASS, found[name]
    assert "JetPack 6.2" in found["board"].detail
    assert "compute capability 8.7" in found["gpu"].detail
    assert "RG10" in found["cameras (V4L2)"].detail and "3280x2464" in found["cameras (V4L2)"].detail
    assert "Orin Nano has no hardware encoder" in found["gstreamer"].detail
    assert found["service edge-isp"].status == PASS and "active (running)" in found["service edge-isp"].detail
    report = doctor.format_report(machine, checks)
    assert "FAIL" not in report and report.splitlines()[0].endswith("(jetson)")


def test_missing_tensorrt_on_a_jetson_fails_and_says_how_to_fix_it():
    system = ready_jetson()
    del system.modules["tensorrt"]
    system.venv = ("3.10.12", True, False)
    _, checks = doctor.run_doctor(system, doctor.DoctorOptions())
    found = by_name(checks)
    assert found["tensorrt"].status == FAIL and "python3-libnvinfer" in found["tensorrt"].advice
    assert found["python"].status == FAIL and "--system-site-packages" in found["python"].advice
    report = doctor.format_report(doctor.identify(system), checks)
    assert "-> sudo apt install python3-libnvinfer" in report


@pytest.mark.parametrize(
    ("release", "status", "words"),
    [(captured.TEGRA_R35, WARN, "JetPack 5"), (captured.TEGRA_R32, FAIL, "too old")],
)
def test_older_jetpack_is_named(release, status, words):
    system = ready_jetson()
    system.files["/etc/nv_tegra_release"] = release
    check = by_name(doctor.run_doctor(system, doctor.DoctorOptions())[1])["board"]
    assert check.status == status and words in check.detail and check.advice


def test_l4t_from_the_package_when_the_release_file_is_absent():
    system = ready_jetson()
    del system.files["/etc/nv_tegra_release"]
    system.commands["dpkg-query -W -f=${Version} nvidia-l4t-core"] = (0, "36.3.0-20240506102626")
    machine = doctor.identify(system)
    assert machine.kind == "jetson" and machine.l4t.jetpack == "6.0"


def test_a_usb_webcam_is_not_a_raw_camera():
    system = ready_jetson()
    system.commands["v4l2-ctl --list-formats-ext -d /dev/video0"] = (0, captured.V4L2_USB_WEBCAM)
    check = by_name(doctor.run_doctor(system, doctor.DoctorOptions())[1])["cameras (V4L2)"]
    assert check.status == WARN and "MJPG/YUYV" in check.detail and "raw sensor" in check.advice


def test_no_camera_and_no_v4l2_ctl():
    system = ready_jetson()
    system.paths.remove("/dev/video0")
    assert by_name(doctor.run_doctor(system, doctor.DoctorOptions())[1])["cameras (V4L2)"].status == WARN
    system = ready_jetson()
    del system.commands["v4l2-ctl --list-formats-ext -d /dev/video0"]
    check = by_name(doctor.run_doctor(system, doctor.DoctorOptions())[1])["cameras (V4L2)"]
    assert check.status == WARN and "v4l-utils" in check.advice


def test_raspberry_pi_with_libcamera_cameras():
    system = FakeSystem(
        files={"/proc/device-tree/model": captured.MODEL_PI5},
        commands={"rpicam-hello --list-cameras": (0, captured.RPICAM_TWO_CAMERAS)},
        modules={"picamera2": "0.3.25"},
    )
    machine, checks = doctor.run_doctor(system, doctor.DoctorOptions())
    found = by_name(checks)
    assert machine.kind == "raspberry-pi"
    assert (
        found["cameras (libcamera)"].status == PASS
        and "imx708 4608x2592 10-bit RGGB" in found["cameras (libcamera)"].detail
    )
    assert found["onnxruntime"].status == FAIL  # the Pi's only backend
    assert found["tensorrt"].status == SKIP and found["cuda"].status == SKIP
    system.commands["rpicam-hello --list-cameras"] = (0, captured.RPICAM_NONE)
    assert by_name(doctor.run_doctor(system, doctor.DoctorOptions())[1])["cameras (libcamera)"].status == WARN


def test_a_pc_says_it_is_not_a_board_and_fails_nothing():
    system = FakeSystem(
        arch="x86_64 Linux",
        commands={"nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader": (0, captured.NVIDIA_SMI)},
    )
    machine, checks = doctor.run_doctor(system, doctor.DoctorOptions())
    found = by_name(checks)
    assert machine.kind == "host" and found["board"].status == SKIP and "not a board" in found["board"].detail
    assert found["gpu"].detail == "NVIDIA H100 80GB HBM3, compute capability 9.0"
    assert not [c for c in checks if c.status == FAIL]
    assert found["service edge-isp"].status == SKIP


@pytest.mark.parametrize(
    ("show", "health", "status", "words"),
    [
        (captured.SYSTEMCTL_FAILED, None, FAIL, "journalctl -u edge-isp"),
        (captured.SYSTEMCTL_NOT_FOUND, None, WARN, "install-jetson.sh"),
        (captured.SYSTEMCTL_ACTIVE, (200, '{"status": "ok"}'), PASS, "answers"),
        (captured.SYSTEMCTL_ACTIVE, (503, '{"status": "stale"}'), FAIL, "HTTP 503"),
        (captured.SYSTEMCTL_ACTIVE, None, FAIL, "no answer"),
    ],
)
def test_service_state_and_its_health(tmp_path, show, health, status, words):
    config = tmp_path / "config.toml"
    config.write_text('source = "sim"\nmodel = "m.onnx"\n[outputs]\nhttp = "0.0.0.0:8090"\n')
    system = ready_jetson()
    system.commands["systemctl show edge-isp --property=LoadState,ActiveState,SubState,NRestarts"] = (0, show)
    if health:
        system.http["http://127.0.0.1:8090/healthz"] = health
    check = by_name(doctor.run_doctor(system, doctor.DoctorOptions(config=str(config)))[1])["service edge-isp"]
    assert check.status == status and words in check.detail + check.advice


@pytest.mark.parametrize(("gib", "status"), [(0.2, FAIL), (1.0, WARN), (10.0, PASS)])
def test_disk_space_thresholds(gib, status):
    system = ready_jetson()
    system.free_bytes = int(gib * 2**30)
    assert by_name(doctor.run_doctor(system, doctor.DoctorOptions())[1])["disk"].status == status


def test_config_checks(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('source = "webcam"\nmodel = "m.onnx"\n')
    check, config = doctor.check_config(str(bad))
    assert check.status == FAIL and config is None and "key 'source'" in check.detail
    leaky = tmp_path / "leaky.toml"
    leaky.write_text('source = "sim"\nmodel = "m.onnx"\ntoken = "0123456789abcdef"\n')
    os.chmod(leaky, 0o644)
    check, config = doctor.check_config(str(leaky))
    assert check.status == WARN and "readable by every user" in check.detail and config.token
    os.chmod(leaky, 0o640)
    assert doctor.check_config(str(leaky))[0].status == PASS


def test_model_from_the_config_is_checked(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07" * 100)
    config = tmp_path / "config.toml"
    config.write_text('source = "sim"\nmodel = "m.onnx"\n')
    found = by_name(doctor.run_doctor(ready_jetson(), doctor.DoctorOptions(config=str(config)))[1])
    assert found["model"].status == PASS and "sha256" in found["model"].detail
    (tmp_path / "m.onnx").unlink()
    found = by_name(doctor.run_doctor(ready_jetson(), doctor.DoctorOptions(config=str(config)))[1])
    assert found["model"].status == FAIL and "does not exist" in found["model"].detail


def write_engine(tmp_path: Path, tensorrt: str, gpu: str, capability: str) -> Path:
    from edge_isp.contract.engine_cache import EngineCache
    from edge_isp.contract.engine_sidecar import EngineKey

    key = EngineKey("ab" * 32, "int8", tensorrt, gpu, capability, None)
    return EngineCache(tmp_path, say=lambda _: None).store(key, "model", b"plan-bytes", {}).engine_path


def test_engine_built_for_this_gpu_and_tensorrt_passes(tmp_path):
    engine = write_engine(tmp_path, "10.3.0", "Orin", "8.7")
    check = by_name(doctor.run_doctor(ready_jetson(), doctor.DoctorOptions(engine=str(engine)))[1])["engine"]
    assert check.status == PASS and "TensorRT 10.3.0 for Orin (8.7)" in check.detail


def test_engine_from_another_tensorrt_or_gpu_fails_with_why(tmp_path):
    engine = write_engine(tmp_path, "10.0.1", "NVIDIA H100 80GB HBM3", "9.0")
    system = ready_jetson()
    config = tmp_path / "config.toml"  # the engine named as the run config's model
    config.write_text(f'source = "sim"\nmodel = "{engine}"\n')
    found = by_name(doctor.run_doctor(system, doctor.DoctorOptions(config=str(config)))[1])
    check = found["engine"]
    assert check.status == FAIL and "model" not in found
    assert "built with TensorRT 10.0.1, this is TensorRT 10.3.0" in check.detail
    assert "this GPU is Orin (8.7)" in check.detail and "--target" in check.advice
    (tmp_path / (engine.name + ".json")).unlink()
    check = doctor.check_engine(system, str(engine))
    assert check.status == WARN and "no sidecar" in check.detail


def test_doctor_command_on_this_machine(capsys):
    machine, _ = doctor.run_doctor(LocalSystem(), doctor.DoctorOptions())
    import argparse

    parser = argparse.ArgumentParser()
    deploy_commands.register(parser.add_subparsers())
    args = parser.parse_args(["doctor", "--json", "--prefix", "/nonexistent-prefix"])
    code = args.func(args)
    data = json.loads(capsys.readouterr().out)
    assert data["machine"]["kind"] == machine.kind
    statuses = {c["name"]: c["status"] for c in data["checks"]}
    assert code == (1 if FAIL in statuses.values() else 0)
    assert {"board", "cuda", "tensorrt", "cameras (V4L2)", "gstreamer", "disk"} <= set(statuses)
    if machine.kind == "host":
        assert statuses["board"] == SKIP
