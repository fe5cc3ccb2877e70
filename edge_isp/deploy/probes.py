"""Pure parsers for what `edge-isp doctor` reads off a machine: files and command output.

Each function takes text (a file's content or a command's output) and returns plain data,
so every one is tested on captured text from real boards without the board.
"""

from __future__ import annotations

import dataclasses
import json
import re

# JetPack for each Jetson Linux (L4T) release (NVIDIA's release notes). A release not in
# the table is reported by its L4T version and major-version family.
JETPACK_FOR_L4T = {
    "32.7.1": "4.6.1",
    "32.7.2": "4.6.2",
    "32.7.3": "4.6.3",
    "32.7.4": "4.6.4",
    "32.7.5": "4.6.5",
    "32.7.6": "4.6.6",
    "35.1.0": "5.0.2",
    "35.2.1": "5.1",
    "35.3.1": "5.1.1",
    "35.4.1": "5.1.2",
    "35.5.0": "5.1.3",
    "35.6.0": "5.1.4",
    "35.6.1": "5.1.5",
    "36.2.0": "6.0 DP",
    "36.3.0": "6.0",
    "36.4.0": "6.1",
    "36.4.3": "6.2",
    "36.4.4": "6.2.1",
}
JETPACK_FAMILY = {32: "4", 35: "5", 36: "6", 38: "7"}

# V4L2 pixel formats that carry Bayer raw: 8/10/12/14/16-bit unpacked, MIPI CSI-2 packed
# (p?AA 10-bit, p?CC 12-bit, p?EE 14-bit) and the Pi 5's compressed PiSP ones (PC1?).
BAYER_FOURCCS = frozenset(
    {"BA81", "GBRG", "GRBG", "RGGB", "BYR2"}
    | {order + depth for order in ("BG", "GB", "BA", "GR", "RG") for depth in ("10", "12", "14", "16")}
    | {"p" + order + packing for order in "BGgR" for packing in ("AA", "CC", "EE")}
    | {"PC1" + order for order in "BGgR"}
)


@dataclasses.dataclass(frozen=True)
class L4TRelease:
    """A Jetson Linux release: ``version`` "36.4.3", ``board`` as the file names it."""

    major: int
    minor: int
    patch: int
    board: str = ""

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def jetpack(self) -> str | None:
        """The JetPack release ("6.2"), its family ("6.x") when not in the table, or None."""
        if self.version in JETPACK_FOR_L4T:
            return JETPACK_FOR_L4T[self.version]
        family = JETPACK_FAMILY.get(self.major)
        return f"{family}.x" if family else None


def parse_nv_tegra_release(text: str) -> L4TRelease | None:
    """``/etc/nv_tegra_release``: "# R36 (release), REVISION: 4.3, GCID: ..., BOARD: generic, ..."."""
    match = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)(?:\.(\d+))?", text)
    if not match:
        return None
    board = re.search(r"BOARD:\s*([^,\s]+)", text)
    return L4TRelease(
        int(match.group(1)), int(match.group(2)), int(match.group(3) or 0), board.group(1) if board else ""
    )


def parse_l4t_package_version(text: str) -> L4TRelease | None:
    """``dpkg-query -W -f='${Version}' nvidia-l4t-core``: "36.4.3-20250107174145" (also in containers)."""
    match = re.match(r"\s*(\d+)\.(\d+)\.(\d+)", text)
    return L4TRelease(int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else None


@dataclasses.dataclass(frozen=True)
class BoardModel:
    """What ``/proc/device-tree/model`` says: the name and the family ("jetson", "raspberry-pi", "other")."""

    name: str
    family: str


def parse_device_model(text: str) -> BoardModel | None:
    """``/proc/device-tree/model``: NUL-terminated, e.g. "NVIDIA Jetson Orin Nano Developer Kit\\x00"."""
    name = text.replace("\x00", "").strip()
    if not name:
        return None
    lowered = name.lower()
    if "jetson" in lowered or lowered.startswith("nvidia"):
        family = "jetson"
    elif "raspberry pi" in lowered:
        family = "raspberry-pi"
    else:
        family = "other"
    return BoardModel(name, family)


def parse_cuda_version(text: str) -> str | None:
    """CUDA's version from ``nvcc --version`` ("release 12.6, V12.6.68") or
    ``/usr/local/cuda/version.json`` ({"cuda": {"version": "12.6.68"}})."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            return None
        version = (data.get("cuda") or {}).get("version") if isinstance(data, dict) else None
        return str(version) if version else None
    match = re.search(r"\bV(\d+\.\d+(?:\.\d+)?)", text) or re.search(r"release (\d+\.\d+)", text)
    if match:
        return match.group(1)
    match = re.search(r"CUDA Version (\d+\.\d+(?:\.\d+)?)", text)  # the old version.txt
    return match.group(1) if match else None


@dataclasses.dataclass(frozen=True)
class V4L2Format:
    """One pixel format a V4L2 device offers: fourcc "RG10", its description and frame sizes ("WxH")."""

    fourcc: str
    description: str
    sizes: tuple[str, ...]

    @property
    def is_bayer(self) -> bool:
        return self.fourcc in BAYER_FOURCCS or "bayer" in self.description.lower()


def parse_v4l2_formats(text: str) -> list[V4L2Format]:
    """``v4l2-ctl --list-formats-ext -d /dev/videoN``: formats with their discrete or stepwise sizes."""
    formats: list[V4L2Format] = []
    fourcc = description = None
    sizes: list[str] = []

    def flush() -> None:
        if fourcc is not None:
            formats.append(V4L2Format(fourcc, description or "", tuple(sizes)))

    for line in text.splitlines():
        head = re.match(r"\s*\[\d+\]:\s*'([^']{1,4})'\s*\((.*)\)\s*$", line)
        if head:
            flush()
            fourcc, description, sizes = head.group(1).strip(), head.group(2), []
            continue
        size = re.match(r"\s*Size:\s*(?:Discrete|Stepwise|Continuous)\s+(\d+x\d+(?:\s*-\s*\d+x\d+)?)", line)
        if size and fourcc is not None:
            sizes.append(re.sub(r"\s+", "", size.group(1)))
    flush()
    return formats


@dataclasses.dataclass(frozen=True)
class LibcameraCamera:
    """A camera libcamera lists: index, sensor ("imx708"), full size, bit depth, Bayer order."""

    index: int
    sensor: str
    size: str
    bit_depth: int | None
    bayer_order: str


def parse_libcamera_cameras(text: str) -> list[LibcameraCamera]:
    """``rpicam-hello --list-cameras`` (or ``libcamera-hello``): "0 : imx708 [4608x2592 10-bit RGGB] (...)"."""
    cameras = []
    for match in re.finditer(r"^\s*(\d+)\s*:\s*(\S+)\s*\[(\d+x\d+)(?:\s+(\d+)-bit)?\s*([A-Z]{4})?[^\]]*\]", text, re.M):
        cameras.append(
            LibcameraCamera(
                int(match.group(1)),
                match.group(2),
                match.group(3),
                int(match.group(4)) if match.group(4) else None,
                match.group(5) or "",
            )
        )
    return cameras


def gst_element_present(returncode: int, text: str) -> bool:
    """``gst-inspect-1.0 ELEMENT`` exits 0 and prints its factory details when the element exists."""
    return returncode == 0 and "Factory Details" in text


def parse_systemctl_state(text: str) -> str:
    """``systemctl is-active UNIT``: "active", "inactive", "failed", "activating"... or "unknown"."""
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    known = ("active", "inactive", "failed", "activating", "deactivating", "reloading", "maintenance")
    return first if first in known else "unknown"


def parse_gpu_query(text: str) -> tuple[str, str] | None:
    """``nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader``: first GPU's (name, "8.9")."""
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and re.fullmatch(r"\d+\.\d+", parts[-1]):
            return ", ".join(parts[:-1]), parts[-1]
    return None


def compute_capability_for_board(model_name: str) -> str | None:
    """The integrated GPU's compute capability from the board's name (Jetsons have no nvidia-smi)."""
    lowered = model_name.lower()
    for needle, capability in (("thor", "11.0"), ("orin", "8.7"), ("xavier", "7.2"), ("tx2", "6.2"), ("nano", "5.3")):
        if needle in lowered:
            return capability
    return None
