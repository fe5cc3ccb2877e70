"""CPU/GPU load, memory, power and temperatures of the board the pipeline runs on, for the
dashboard: from ``tegrastats`` on a Jetson, else from ``/proc/stat``, the kernel's thermal
zones (``/sys/class/thermal``) and, on a Jetson without tegrastats, the GPU's load file.

The parsers are pure and tested on recorded text; :class:`BoardMonitor` is the thin part that
runs tegrastats or reads the files once a second on its own thread. Whatever the board does not
report is left out (a Raspberry Pi has no GPU load; a desktop may have no thermal zones).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

THERMAL_ROOT = Path("/sys/class/thermal")
PROC_STAT = Path("/proc/stat")
# The integrated GPU's load in per mille, on Jetsons (the path moved between L4T releases).
GPU_LOAD_FILES = (Path("/sys/devices/platform/gpu.0/load"), Path("/sys/devices/gpu.0/load"))
# tegrastats prints -256C (or similar) for a sensor that is powered off.
_OFF_BELOW_C = -40.0

_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_CORE = re.compile(r"(\d+)%@(\d+)")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_TEMP = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
_POWER = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)mW/(\d+)mW")
# The rail that carries the whole module's input power, by board generation.
_INPUT_RAILS = ("VDD_IN", "VIN_SYS_5V0", "POM_5V_IN")


@dataclasses.dataclass(frozen=True)
class BoardStats:
    """One reading. Loads on [0, 1]; None where the board does not report it.

    Attributes:
        cpu_load: mean load of the online CPU cores.
        gpu_load: the GPU's load.
        temperatures_c: sensor name -> degrees Celsius (sensors that are off left out).
        ram_used_mb, ram_total_mb: memory in use and in all (tegrastats only).
        power_mw: the module's input power (tegrastats only).
        source: ``"tegrastats"`` or ``"sysfs"``.
    """

    cpu_load: float | None = None
    gpu_load: float | None = None
    temperatures_c: Mapping[str, float] = dataclasses.field(default_factory=dict)
    ram_used_mb: int | None = None
    ram_total_mb: int | None = None
    power_mw: int | None = None
    source: str = "sysfs"

    def to_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in dataclasses.asdict(self).items()}


def parse_tegrastats(line: str) -> BoardStats:
    """One line of ``tegrastats`` output (any Jetson generation: TX1 to Thor)."""
    cpu_load = None
    match = _CPU.search(line)
    if match:
        loads = [int(pct) for pct, _mhz in _CORE.findall(match.group(1))]  # "off" cores are left out
        cpu_load = sum(loads) / len(loads) / 100 if loads else None
    gr3d = _GR3D.search(line)
    ram = _RAM.search(line)
    temps = {name: float(c) for name, c in _TEMP.findall(line) if float(c) > _OFF_BELOW_C}
    rails = {name: int(now) for name, now, _avg in _POWER.findall(line)}
    # Older BSPs print rails without units ("POM_5V_IN 1165/1165"): milliwatts.
    rails.update({n: int(v) for n, v in re.findall(r"\b(POM_5V_IN) (\d+)/\d+\b", line)})
    power = next((rails[name] for name in _INPUT_RAILS if name in rails), None)
    return BoardStats(
        cpu_load=cpu_load,
        gpu_load=None if gr3d is None else int(gr3d.group(1)) / 100,
        temperatures_c=temps,
        ram_used_mb=None if ram is None else int(ram.group(1)),
        ram_total_mb=None if ram is None else int(ram.group(2)),
        power_mw=power,
        source="tegrastats",
    )


def parse_proc_stat(text: str) -> tuple[int, int]:
    """``(busy, total)`` jiffies of all CPUs from ``/proc/stat``'s first line."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:]]
            # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
            total = sum(values[:8])
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            return total - idle, total
    raise ValueError("no 'cpu' line in /proc/stat text")


def cpu_load(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """The load between two :func:`parse_proc_stat` readings; None without elapsed time."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return None if total <= 0 else min(max(busy / total, 0.0), 1.0)


def read_thermal_zones(root: Path = THERMAL_ROOT) -> dict[str, float]:
    """Zone type -> degrees Celsius for every readable ``thermal_zone*`` under ``root``.

    ``temp`` is in millidegrees. A zone that cannot be read (some return EINVAL or ENODATA
    while their sensor is off) or reads below -40 C is left out; a repeated type gets its zone
    number appended.
    """
    out: dict[str, float] = {}
    for zone in sorted(root.glob("thermal_zone*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        try:
            kind = (zone / "type").read_text().strip() or zone.name
            celsius = int((zone / "temp").read_text().strip()) / 1000
        except (OSError, ValueError):
            continue
        if celsius <= _OFF_BELOW_C:
            continue
        name = kind.removesuffix("-thermal").removesuffix("_thermal")
        out[name if name not in out else f"{name}{zone.name.removeprefix('thermal_zone')}"] = celsius
    return out


def read_gpu_load(paths: tuple[Path, ...] = GPU_LOAD_FILES) -> float | None:
    """A Jetson GPU's load from its per-mille load file; None where there is none."""
    for path in paths:
        with contextlib.suppress(OSError, ValueError):
            return min(int(path.read_text().strip()) / 1000, 1.0)
    return None


class BoardMonitor:
    """Samples the board once every ``interval_s`` on a daemon thread; :meth:`latest` is the
    newest reading (None before the first). Uses tegrastats where it is installed."""

    def __init__(self, interval_s: float = 1.0, use_tegrastats: bool = True) -> None:
        self.interval_s = interval_s
        self.tegrastats = shutil.which("tegrastats") if use_tegrastats else None
        self._latest: BoardStats | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen | None = None

    def latest(self) -> BoardStats | None:
        return self._latest

    def start(self) -> BoardMonitor:
        if self._thread is None:
            self._stop.clear()
            target = self._run_tegrastats if self.tegrastats else self._run_sysfs
            self._thread = threading.Thread(target=target, name="board-monitor", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(2)
        if self._thread is not None:
            self._thread.join(2 * self.interval_s + 1)
            self._thread = None

    def _run_sysfs(self) -> None:
        before = None
        while not self._stop.is_set():
            try:
                now = parse_proc_stat(PROC_STAT.read_text())
            except (OSError, ValueError):
                now = None
            load = cpu_load(before, now) if before and now else None
            before = now
            self._latest = BoardStats(cpu_load=load, gpu_load=read_gpu_load(), temperatures_c=read_thermal_zones())
            self._stop.wait(self.interval_s)

    def _run_tegrastats(self) -> None:
        try:
            self._process = subprocess.Popen(
                [self.tegrastats, "--interval", str(max(100, round(self.interval_s * 1000)))],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        except OSError as exc:
            log.warning("tegrastats could not start (%s); reading /proc and /sys instead", exc)
            self._run_sysfs()
            return
        for line in self._process.stdout:
            if self._stop.is_set():
                break
            self._latest = parse_tegrastats(line)
