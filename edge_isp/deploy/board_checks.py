"""The machine half of `edge-isp doctor`: what board this is and what it has.

Each check reads the machine through a :class:`~edge_isp.deploy.system.System` and returns a
:class:`Check`: pass, warn, fail or skip (does not apply here), what it found and what to
do. What counts as a failure depends on the machine: TensorRT missing fails on a Jetson and
is skipped on a laptop, where the report says first that this is not a board.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from edge_isp.deploy import probes
from edge_isp.deploy.system import System

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of the report: ``status`` one of pass/warn/fail/skip, what was found, what to do."""

    name: str
    status: str
    detail: str
    advice: str = ""


@dataclasses.dataclass(frozen=True)
class Machine:
    """What kind of machine this is: "jetson", "raspberry-pi" or "host" (anything else)."""

    kind: str
    name: str
    l4t: probes.L4TRelease | None = None

    @property
    def is_board(self) -> bool:
        return self.kind != "host"


def identify(system: System) -> Machine:
    """Jetson (L4T release file or package), Raspberry Pi (device tree) or a host."""
    model = probes.parse_device_model(system.read_text("/proc/device-tree/model") or "")
    l4t = probes.parse_nv_tegra_release(system.read_text("/etc/nv_tegra_release") or "")
    if l4t is None:
        package = system.run(["dpkg-query", "-W", "-f=${Version}", "nvidia-l4t-core"])
        if package is not None and package.returncode == 0:
            l4t = probes.parse_l4t_package_version(package.output)
    if l4t is not None or (model is not None and model.family == "jetson"):
        return Machine("jetson", model.name if model else "NVIDIA Jetson", l4t)
    if model is not None and model.family == "raspberry-pi":
        return Machine("raspberry-pi", model.name)
    return Machine("host", system.machine())


def check_board(system: System, machine: Machine) -> Check:
    if machine.kind == "host":
        return Check(
            "board",
            SKIP,
            f"not a board: {machine.name} (no /etc/nv_tegra_release, no Raspberry Pi device tree); "
            "the board checks below say what this machine lacks for running edge-isp live",
        )
    if machine.kind == "raspberry-pi":
        return Check("board", PASS, f"{machine.name}: runs ONNX Runtime on the CPU (no TensorRT)")
    l4t = machine.l4t
    if l4t is None:
        return Check(
            "board",
            WARN,
            f"{machine.name}: Jetson Linux version unknown (no /etc/nv_tegra_release, no nvidia-l4t-core package)",
            "check the board was flashed with JetPack 6 (SDK Manager): `apt show nvidia-jetpack`",
        )
    found = f"{machine.name}, L4T {l4t.version} (JetPack {l4t.jetpack or 'unknown'})"
    if l4t.major == 36:
        return Check("board", PASS, found)
    if l4t.major == 35:
        return Check(
            "board",
            WARN,
            found + ": JetPack 5 ships TensorRT 8.5; edge-isp builds engines with TensorRT 10 (JetPack 6)",
            "reflash the board with JetPack 6 (L4T 36.x) for engine builds; ONNX Runtime still works",
        )
    if l4t.major < 35:
        return Check(
            "board",
            FAIL,
            found + ": too old (TensorRT 8.2, Python 3.6); edge-isp needs JetPack 6",
            "use an Orin-class board with JetPack 6 (the original Nano and TX2 stop at JetPack 4)",
        )
    return Check("board", WARN, found + ": newer than edge-isp was tested on (JetPack 6)")


def check_python(system: System, machine: Machine) -> Check:
    version, in_venv, sees_system = system.python()
    where = "a virtual environment" if in_venv else "the system Python"
    detail = f"Python {version} in {where}"
    if machine.kind == "jetson" and in_venv and not sees_system:
        return Check(
            "python",
            FAIL,
            detail + " that does not see the system's packages, where JetPack puts TensorRT's bindings",
            "recreate it with `python3 -m venv --system-site-packages` (deploy/install-jetson.sh does)",
        )
    return Check("python", PASS, detail + (" (sees the system's packages)" if in_venv and sees_system else ""))


def check_cuda(system: System, machine: Machine) -> Check:
    version = None
    text = system.read_text("/usr/local/cuda/version.json") or system.read_text("/usr/local/cuda/version.txt")
    if text:
        version = probes.parse_cuda_version(text)
    if version is None:
        for nvcc in ("nvcc", "/usr/local/cuda/bin/nvcc"):
            result = system.run([nvcc, "--version"])
            if result is not None and result.returncode == 0:
                version = probes.parse_cuda_version(result.output)
                break
    if version:
        return Check("cuda", PASS, f"CUDA {version}")
    if machine.kind == "jetson":
        return Check("cuda", FAIL, "no CUDA toolkit found", "sudo apt install nvidia-jetpack (or cuda-toolkit-12-6)")
    return Check("cuda", SKIP, "no CUDA: engines are not built here; ONNX Runtime runs on the CPU")


def check_gpu(system: System, machine: Machine) -> Check:
    if machine.kind == "jetson":
        capability = probes.compute_capability_for_board(machine.name)
        return Check(
            "gpu", PASS if capability else WARN, f"integrated GPU, compute capability {capability or 'unknown'}"
        )
    result = system.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"])
    gpu = probes.parse_gpu_query(result.output) if result is not None and result.returncode == 0 else None
    if gpu:
        return Check("gpu", PASS, f"{gpu[0]}, compute capability {gpu[1]}")
    return Check("gpu", SKIP, "no NVIDIA GPU")


def check_module(system: System, machine: Machine, module: str, needed_on: Sequence[str], advice: str) -> Check:
    probe = system.import_module(module)
    if probe.ok:
        return Check(module, PASS, f"{module} {probe.version or '(version unknown)'}")
    if machine.kind in needed_on:
        return Check(module, FAIL, f"{module} does not import: {probe.error}", advice)
    return Check(module, SKIP, f"{module} not installed (needed on {', '.join(needed_on)})")


def check_tensorrt(system: System, machine: Machine) -> Check:
    check = check_module(
        system,
        machine,
        "tensorrt",
        ("jetson",),
        "sudo apt install python3-libnvinfer (JetPack), and a venv made with --system-site-packages",
    )
    if check.status == PASS:
        major = check.detail.split()[1].split(".")[0]
        if major.isdigit() and int(major) < 10:
            return Check(
                "tensorrt", WARN, check.detail + ": edge-isp builds with TensorRT 10 or 11", "upgrade to JetPack 6"
            )
    return check


def check_v4l2(system: System, machine: Machine) -> Check:
    devices = system.glob("/dev/video*")
    if not devices:
        if machine.is_board:
            return Check(
                "cameras (V4L2)",
                WARN,
                "no /dev/video* device",
                "check the camera's ribbon cable and overlay; `sudo dmesg | grep -i -E 'imx|csi'`",
            )
        return Check("cameras (V4L2)", SKIP, "no /dev/video* device")
    raw, other = [], []
    for device in devices:
        result = system.run(["v4l2-ctl", "--list-formats-ext", "-d", device])
        if result is None:
            return Check(
                "cameras (V4L2)",
                WARN,
                f"{len(devices)} device(s): {', '.join(devices)}; formats unknown",
                "sudo apt install v4l-utils (for v4l2-ctl)",
            )
        formats = probes.parse_v4l2_formats(result.output) if result.returncode == 0 else []
        bayer = [f for f in formats if f.is_bayer]
        if bayer:
            sizes = sorted({s for f in bayer for s in f.sizes}, key=lambda s: -_area(s))
            raw.append(f"{device} {'/'.join(f.fourcc for f in bayer)} {sizes[0] if sizes else ''}".strip())
        elif formats:
            other.append(f"{device} {'/'.join(f.fourcc for f in formats[:4])}")
    if raw:
        return Check("cameras (V4L2)", PASS, "raw Bayer: " + "; ".join(raw))
    return Check(
        "cameras (V4L2)",
        WARN if machine.is_board else SKIP,
        "no device offers raw Bayer" + (f" ({'; '.join(other)})" if other else ""),
        "edge-isp needs a raw sensor (a CSI camera such as IMX219/IMX477); a USB webcam gives processed video"
        if machine.is_board
        else "",
    )


def _area(size: str) -> int:
    last = size.split("-")[-1]
    width, _, height = last.partition("x")
    return int(width) * int(height) if width.isdigit() and height.isdigit() else 0


def check_libcamera(system: System, machine: Machine) -> Check:
    for tool in ("rpicam-hello", "libcamera-hello"):
        result = system.run([tool, "--list-cameras"], timeout_s=15.0)
        if result is not None:
            cameras = probes.parse_libcamera_cameras(result.output)
            if cameras:
                found = "; ".join(
                    f"{c.index}: {c.sensor} {c.size} {c.bit_depth or '?'}-bit {c.bayer_order}" for c in cameras
                )
                return Check("cameras (libcamera)", PASS, found)
            return Check(
                "cameras (libcamera)",
                WARN if machine.kind == "raspberry-pi" else SKIP,
                f"{tool} lists no camera",
                "check the ribbon cable and camera_auto_detect=1 in /boot/firmware/config.txt"
                if machine.kind == "raspberry-pi"
                else "",
            )
    if machine.kind == "raspberry-pi":
        return Check("cameras (libcamera)", WARN, "no rpicam-hello/libcamera-hello", "sudo apt install rpicam-apps")
    return Check("cameras (libcamera)", SKIP, "libcamera tools not installed (Raspberry Pi cameras only)")


def check_gstreamer(system: System, machine: Machine) -> Check:
    present = {}
    for element in ("nvv4l2h264enc", "x264enc"):
        result = system.run(["gst-inspect-1.0", element])
        if result is None:
            return Check(
                "gstreamer",
                WARN if machine.is_board else SKIP,
                "gst-inspect-1.0 not found: no RTSP output (HTTP MJPEG still works)",
                "sudo apt install gstreamer1.0-tools gstreamer1.0-plugins-ugly gir1.2-gst-rtsp-server-1.0",
            )
        present[element] = probes.gst_element_present(result.returncode, result.output)
    rtsp = bool(system.glob("/usr/lib/*/girepository-1.0/GstRtspServer-1.0.typelib"))
    encoders = [e for e, ok in present.items() if ok]
    detail = f"H.264 encoders: {', '.join(encoders) or 'none'}; RTSP server: {'yes' if rtsp else 'no'}"
    if "nvv4l2h264enc" not in encoders and "orin nano" in machine.name.lower():
        detail += " (the Orin Nano has no hardware encoder: x264enc does it)"
    if encoders and rtsp:
        return Check("gstreamer", PASS, detail)
    missing = ([] if encoders else ["gstreamer1.0-plugins-ugly (x264enc)"]) + (
        [] if rtsp else ["gir1.2-gst-rtsp-server-1.0"]
    )
    return Check("gstreamer", WARN, detail, "for RTSP: sudo apt install " + " ".join(p.split()[0] for p in missing))


CheckFn = Callable[[System, Machine], Check]
MACHINE_CHECKS: tuple[CheckFn, ...] = (
    check_board,
    check_python,
    check_cuda,
    check_gpu,
    check_tensorrt,
    lambda s, m: check_module(
        s,
        m,
        "pycuda",
        ("jetson",),
        "pip install 'edge-isp[jetson]' with CUDA on PATH (export PATH=/usr/local/cuda/bin:$PATH)",
    ),
    lambda s, m: check_module(
        s, m, "onnxruntime", ("raspberry-pi",), "pip install 'edge-isp[pi]' (deploy/install-pi.sh)"
    ),
    lambda s, m: check_module(
        s,
        m,
        "picamera2",
        ("raspberry-pi",),
        "sudo apt install python3-picamera2, in a venv made with --system-site-packages (deploy/install-pi.sh)",
    ),
    check_v4l2,
    check_libcamera,
    check_gstreamer,
)
