"""The thin layer `edge-isp doctor` reads a machine through: files, commands, imports, disk, HTTP.

:class:`LocalSystem` does it for real. The checks only ever see this interface, so they are
tested on captured text with a stand-in that answers from a table.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """A finished command: exit status and its stdout and stderr together."""

    returncode: int
    output: str


@dataclasses.dataclass(frozen=True)
class ModuleProbe:
    """An import attempt: ``ok``, the module's version (or ""), or the error's text."""

    ok: bool
    version: str = ""
    error: str = ""


class System:
    """How the checks see a machine. Every method returns None when the thing is absent."""

    def read_text(self, path: str) -> str | None:
        raise NotImplementedError

    def run(self, argv: Sequence[str], timeout_s: float = 10.0) -> CommandResult | None:
        """Run a command; None when the program is not installed."""
        raise NotImplementedError

    def glob(self, pattern: str) -> list[str]:
        raise NotImplementedError

    def disk_free_bytes(self, path: str) -> int | None:
        raise NotImplementedError

    def import_module(self, name: str) -> ModuleProbe:
        raise NotImplementedError

    def http_get(self, url: str, token: str | None = None, timeout_s: float = 3.0) -> tuple[int, str] | None:
        """(status, body) of a GET; None when nothing answers."""
        raise NotImplementedError

    def machine(self) -> str:
        """The CPU architecture and OS, e.g. "aarch64 Linux"."""
        raise NotImplementedError

    def gpu(self) -> tuple[str, str] | None:
        """The CUDA GPU as the engine cache names it: (name, compute capability "8.7"), or None."""
        raise NotImplementedError

    def python(self) -> tuple[str, bool, bool]:
        """(version, in a virtual environment, that environment sees the system's packages)."""
        raise NotImplementedError


class LocalSystem(System):
    """This machine."""

    def read_text(self, path: str) -> str | None:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return None

    def run(self, argv: Sequence[str], timeout_s: float = 10.0) -> CommandResult | None:
        program = argv[0]
        if os.sep not in program and shutil.which(program) is None:
            return None
        if os.sep in program and not os.access(program, os.X_OK):
            return None
        try:
            done = subprocess.run(
                list(argv),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return CommandResult(124, f"{program} did not answer within {timeout_s:.0f} s")
        except OSError as exc:
            return CommandResult(126, str(exc))
        return CommandResult(done.returncode, done.stdout.decode("utf-8", errors="replace"))

    def glob(self, pattern: str) -> list[str]:
        return sorted(glob.glob(pattern))

    def disk_free_bytes(self, path: str) -> int | None:
        try:
            return shutil.disk_usage(path).free
        except OSError:
            return None

    def import_module(self, name: str) -> ModuleProbe:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # a broken binding raises OSError/RuntimeError, not only ImportError
            return ModuleProbe(False, error=f"{type(exc).__name__}: {exc}")
        return ModuleProbe(True, version=str(getattr(module, "__version__", "") or getattr(module, "VERSION", "")))

    def http_get(self, url: str, token: str | None = None, timeout_s: float = 3.0) -> tuple[int, str] | None:
        request = urllib.request.Request(url)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.status, response.read(4096).decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(4096).decode("utf-8", errors="replace")
        except (OSError, ValueError):
            return None

    def gpu(self) -> tuple[str, str] | None:
        from edge_isp.contract.gpu import NoGpuError, detect_gpu

        try:
            info = detect_gpu()
        except NoGpuError:
            return None
        return info.name, info.sm

    def machine(self) -> str:
        uname = os.uname()
        return f"{uname.machine} {uname.sysname}"

    def python(self) -> tuple[str, bool, bool]:
        version = ".".join(str(v) for v in sys.version_info[:3])
        in_venv = sys.prefix != sys.base_prefix
        sees_system = True
        if in_venv:
            cfg = self.read_text(os.path.join(sys.prefix, "pyvenv.cfg")) or ""
            sees_system = any(
                line.replace(" ", "").lower() == "include-system-site-packages=true" for line in cfg.splitlines()
            )
        return version, in_venv, sees_system
