"""`edge-isp doctor`: is this machine ready to run edge-isp, and if not, what to do.

The machine's checks are in :mod:`edge_isp.deploy.board_checks`; here are those of what is
installed on it (the run config, the model and its engine, disk space, the service), the
runner that does them all, and the report: a table of pass/warn/fail/skip with what to do
under each warning and failure.
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

from edge_isp.contract.engine_sidecar import compatibility_problems, read_sidecar
from edge_isp.deploy.board_checks import FAIL, MACHINE_CHECKS, PASS, SKIP, WARN, Check, Machine, identify
from edge_isp.deploy.run_config import RunConfig, load_run_config
from edge_isp.deploy.system import System
from edge_isp.errors import EdgeIspError
from edge_isp.fileio import sha256_file

DEFAULT_PREFIX = "/opt/edge-isp"
DEFAULT_CONFIG = "/etc/edge-isp/config.toml"
SERVICE = "edge-isp"
MIN_FREE_GIB, LOW_FREE_GIB = 0.5, 2.0


@dataclasses.dataclass(frozen=True)
class DoctorOptions:
    """What to look at beyond the machine: the run config, a model and engine, the install prefix."""

    config: str | None = None
    model: str | None = None
    engine: str | None = None
    prefix: str = DEFAULT_PREFIX
    service: str = SERVICE


def check_disk(system: System, options: DoctorOptions) -> Check:
    path = options.prefix if system.glob(options.prefix) else "/"
    free = system.disk_free_bytes(path)
    if free is None:
        return Check("disk", WARN, f"free space at {path} unknown")
    gib = free / 2**30
    detail = f"{gib:.1f} GiB free at {path}"
    if gib < MIN_FREE_GIB:
        return Check("disk", FAIL, detail, "free space: engines, releases and recordings need room; `sudo apt clean`")
    if gib < LOW_FREE_GIB:
        return Check("disk", WARN, detail + " (low)", f"keep at least {LOW_FREE_GIB:.0f} GiB free for engine builds")
    return Check("disk", PASS, detail)


def check_service(system: System, machine: Machine, options: DoctorOptions, health_url: str | None) -> Check:
    name = f"service {options.service}"
    if not system.glob("/run/systemd/system"):
        status = WARN if machine.is_board else SKIP
        return Check(
            name, status, "systemd is not running here", "the service needs systemd" if machine.is_board else ""
        )
    result = system.run(["systemctl", "show", options.service, "--property=LoadState,ActiveState,SubState,NRestarts"])
    props = dict(line.split("=", 1) for line in (result.output if result else "").splitlines() if "=" in line)
    if props.get("LoadState") in (None, "not-found"):
        return Check(
            name,
            WARN if machine.is_board else SKIP,
            "not installed",
            "run deploy/install-jetson.sh or `edge-isp deploy`",
        )
    state = f"{props.get('ActiveState', '?')} ({props.get('SubState', '?')}), restarts {props.get('NRestarts', '?')}"
    if props.get("ActiveState") == "failed":
        return Check(name, FAIL, state, f"journalctl -u {options.service} -n 50 says why")
    if props.get("ActiveState") != "active":
        return Check(name, WARN, state, f"sudo systemctl enable --now {options.service}")
    if health_url:
        answer = system.http_get(health_url)
        if answer is None or answer[0] != 200:
            got = "no answer" if answer is None else f"HTTP {answer[0]}"
            return Check(name, FAIL, f"{state}; {health_url}: {got}", f"journalctl -u {options.service} -n 50")
        state += f"; {health_url} answers"
    return Check(name, PASS, state)


def format_report(machine: Machine, checks: Sequence[Check], width: int = 100) -> str:
    """The table: one row per check, and under each warn/fail what to do."""
    lines = [f"edge-isp doctor: {machine.name} ({machine.kind})", ""]
    name_width = max(len(c.name) for c in checks)
    for check in checks:
        head = f"{check.status.upper():<4}  {check.name:<{name_width}}  "
        body = textwrap.wrap(check.detail, width=max(40, width - len(head))) or [""]
        lines.append(head + body[0])
        lines.extend(" " * len(head) + more for more in body[1:])
        if check.advice and check.status in (WARN, FAIL):
            lines.append(" " * len(head) + "-> " + check.advice)
    counts = {s: sum(c.status == s for c in checks) for s in (PASS, WARN, FAIL, SKIP)}
    lines += ["", ", ".join(f"{n} {s}" for s, n in counts.items())]
    return "\n".join(lines)


def model_path_check(path: str) -> Check:
    """The model file: present and readable, with its size and sha256 (the engine cache's key)."""
    model = Path(path)
    if not model.is_file():
        return Check("model", FAIL, f"{model} does not exist", "deploy a model: `edge-isp deploy HOST --model ...`")
    size_mb = model.stat().st_size / 1e6
    return Check("model", PASS, f"{model} ({size_mb:.1f} MB, sha256 {sha256_file(model)[:12]})")


def check_config(path: str) -> tuple[Check, RunConfig | None]:
    """The run config: valid, and not readable by every user when it holds the token."""
    try:
        config = load_run_config(path, check_files=False)
    except (EdgeIspError, OSError) as exc:
        return Check("config", FAIL, str(exc), "fix the file (deploy/config.example.toml shows every key)"), None
    detail = f"{path}: source {config.source}, http {config.http or 'off'}"
    mode = os.stat(Path(path).resolve()).st_mode
    if config.token is not None and mode & 0o004:
        return Check(
            "config", WARN, detail + "; holds the token and is readable by every user", f"chmod o-r {path}"
        ), config
    return Check("config", PASS, detail), config


ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def check_engine(system: System, path: str) -> Check:
    """Does this engine run here: its sidecar's TensorRT version and GPU against this machine's."""
    rebuild = "rebuild it on this board: `edge-isp deploy` with --target, or `edge-isp export engine`"
    if not Path(path).is_file():
        return Check("engine", FAIL, f"{path} does not exist", rebuild)
    try:
        info = read_sidecar(path)
    except EdgeIspError as exc:
        return Check("engine", WARN, f"cannot tell what it was built for: {exc}", rebuild)
    key = info.get("key", {})
    built = (
        f"built with TensorRT {key.get('tensorrt_version')} for {key.get('gpu_name')} ({key.get('compute_capability')})"
    )
    tensorrt = system.import_module("tensorrt")
    gpu = system.gpu() if tensorrt.ok else None
    if not tensorrt.ok or gpu is None:
        lacking = "TensorRT" if not tensorrt.ok else "a CUDA GPU"
        return Check("engine", WARN, f"{Path(path).name}: {built}; this machine has no {lacking} to run it")
    problems = compatibility_problems(info, tensorrt.version, gpu[0], gpu[1])
    if problems:
        return Check("engine", FAIL, f"{Path(path).name} cannot run here: {'; '.join(problems)}", rebuild)
    return Check("engine", PASS, f"{Path(path).name}: {built}: matches this machine")


def run_doctor(system: System, options: DoctorOptions) -> tuple[Machine, list[Check]]:
    """Every check, in the report's order."""
    machine = identify(system)
    checks = [check(system, machine) for check in MACHINE_CHECKS]
    config = None
    config_path = options.config or (DEFAULT_CONFIG if system.glob(DEFAULT_CONFIG) else None)
    if config_path:
        check, config = check_config(config_path)
        checks.append(check)
    model = options.model or (str(config.model) if config else None)
    engine = options.engine
    if model and Path(model).suffix.lower() in ENGINE_SUFFIXES:
        engine, model = engine or model, None
    if model:
        checks.append(model_path_check(model))
    elif not engine:
        checks.append(Check("model", SKIP, f"no model given (--model, or a run config at {DEFAULT_CONFIG})"))
    if engine:
        checks.append(check_engine(system, engine))
    checks.append(check_disk(system, options))
    checks.append(check_service(system, machine, options, config.health_url() if config else None))
    return machine, checks
