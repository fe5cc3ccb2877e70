"""SSH to a board with the system's own ``ssh``, ``rsync`` and ``scp``.

The user's keys, agent and ``~/.ssh/config`` (host aliases, jump hosts, known hosts) apply
as they do in their shell; ``--ssh-config`` names another config file. ``BatchMode`` is on:
a host that would ask for a password or to trust a new host key fails at once with ssh's
own message rather than hanging on a prompt. The argument lists are built by pure
functions, tested without a server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edge_isp.errors import InvalidInputError

# Conservative on purpose: remote paths go through the remote shell (and rsync's).
SAFE_REMOTE_PATH = re.compile(r"^/[A-Za-z0-9._+/-]*$")


@dataclasses.dataclass(frozen=True)
class Host:
    """A deploy target as the user wrote it: ``[user@]host[:port]``, or an ssh config alias.

    Attributes:
        spec: the text given, for messages.
        destination: ``[user@]host`` as ssh takes it.
        port: the port, or None for ssh's (or the config's) default.
    """

    spec: str
    destination: str
    port: int | None = None

    @property
    def scp_destination(self) -> str:
        """``[user@]host`` with an IPv6 address bracketed, as scp and rsync want it."""
        user, _, host = self.destination.rpartition("@")
        if ":" in host:
            host = f"[{host}]"
        return f"{user}@{host}" if user else host


def parse_host(text: str) -> Host:
    """``board``, ``jetson@10.0.0.5``, ``jetson@10.0.0.5:2222``, ``[fe80::1]:22``."""
    spec = text.strip()
    match = re.fullmatch(r"(?:([A-Za-z0-9._-]+)@)?(?:\[([0-9A-Fa-f:.%\w]+)\]|([A-Za-z0-9._-]+))(?::(\d{1,5}))?", spec)
    if not match or spec.startswith("-"):
        raise InvalidInputError(
            f"host {text!r} is not [USER@]HOST[:PORT] (e.g. jetson@10.0.0.5, board, [fe80::1]:2222, an ssh alias)"
        )
    user, ipv6, name, port = match.groups()
    host = ipv6 or name
    if port is not None and not 1 <= int(port) <= 65535:
        raise InvalidInputError(f"host {text!r}: port must be 1..65535, got {port}")
    return Host(spec, f"{user}@{host}" if user else host, int(port) if port else None)


def check_remote_path(path: str, what: str) -> str:
    """A remote absolute path of plain characters (it passes through remote shells)."""
    if not SAFE_REMOTE_PATH.match(path) or "/../" in path + "/":
        raise InvalidInputError(
            f"{what} must be an absolute path of letters, digits and ._+-/ only (it is used on the board), got {path!r}"
        )
    return path.rstrip("/") or "/"


@dataclasses.dataclass(frozen=True)
class SshOptions:
    """How to reach the hosts: an ssh config file, extra ``-o`` options, the connect timeout."""

    config_file: Path | None = None
    options: tuple[str, ...] = ()
    connect_timeout_s: int = 10

    def common(self) -> list[str]:
        """Options that ssh, scp and rsync's ssh all take."""
        args = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout_s}"]
        if self.config_file is not None:
            args += ["-F", str(self.config_file)]
        for option in self.options:
            args += ["-o", option]
        return args


def ssh_argv(host: Host, remote_command: str, options: SshOptions) -> list[str]:
    """``ssh`` running ``remote_command`` (a shell command line) on ``host``."""
    port = ["-p", str(host.port)] if host.port else []
    return ["ssh", *options.common(), *port, host.destination, remote_command]


def rsync_argv(host: Host, local_dir: Path, remote_dir: str, options: SshOptions, link_dest: str | None) -> list[str]:
    """``rsync`` of ``local_dir``'s contents into ``remote_dir``; unchanged files hard-linked from ``link_dest``."""
    port = ["-p", str(host.port)] if host.port else []
    shell = shlex.join(["ssh", *options.common(), *port])
    args = ["rsync", "-a", "--checksum", "--delete", "-e", shell]
    if link_dest:
        args += ["--link-dest", link_dest]
    return [*args, f"{local_dir}/", f"{host.scp_destination}:{remote_dir}/"]


def scp_argv(host: Host, local_dir: Path, remote_dir: str, options: SshOptions) -> list[str]:
    """``scp -r`` of ``local_dir`` to ``remote_dir`` (which must not exist yet)."""
    port = ["-P", str(host.port)] if host.port else []
    return [
        "scp",
        "-B",
        "-r",
        "-p",
        "-q",
        *options.common(),
        *port,
        str(local_dir),
        f"{host.scp_destination}:{remote_dir}",
    ]


@dataclasses.dataclass(frozen=True)
class Completed:
    """A finished remote command: exit status, stdout, stderr (ssh's own errors exit 255)."""

    returncode: int
    stdout: str
    stderr: str


class ConnectionFailed(Exception):
    """ssh could not connect or log in; the message is ssh's own."""


class SshTransport:
    """Runs commands on one host and copies folders to it; use it as a context manager.

    Entering opens the shared connection (a :class:`ConnectionFailed` with ssh's message
    if it cannot); leaving closes it. The master also exits by itself after a minute
    without clients, so a crashed deploy leaves nothing behind for long.
    """

    def __init__(self, host: Host, options: SshOptions) -> None:
        self.host = host
        self.options = options
        self._control_dir: str | None = None

    def __enter__(self) -> SshTransport:
        # Short path: a unix socket path must stay under ~104 bytes.
        self._control_dir = tempfile.mkdtemp(prefix="eisp-", dir="/tmp" if os.path.isdir("/tmp") else None)
        port = ["-p", str(self.host.port)] if self.host.port else []
        master = ["ssh", *self.options.common(), *self._control("yes"), "-o", "ControlPersist=60", "-N", "-f"]
        with tempfile.TemporaryFile() as errors:
            # -f puts the master in the background once logged in; it keeps whatever
            # stdout/stderr it was given, so those are a file and /dev/null, never pipes.
            code = subprocess.call(
                [*master, *port, self.host.destination],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
            if code != 0:
                errors.seek(0)
                message = errors.read().decode("utf-8", errors="replace").strip() or f"ssh exited {code}"
                self._cleanup()
                raise ConnectionFailed(message)
        return self

    def __exit__(self, *exc: object) -> None:
        port = ["-p", str(self.host.port)] if self.host.port else []
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                ["ssh", *self.options.common(), *self._control("no"), "-O", "exit", *port, self.host.destination],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )
        self._cleanup()

    def _cleanup(self) -> None:
        if self._control_dir is not None:
            shutil.rmtree(self._control_dir, ignore_errors=True)
            self._control_dir = None

    def _control(self, master: str) -> list[str]:
        if self._control_dir is None:
            return []
        return ["-o", f"ControlPath={self._control_dir}/%C", "-o", f"ControlMaster={master}"]

    def _options(self) -> SshOptions:
        return dataclasses.replace(self.options, options=(*self.options.options, *self._control("no")[1::2]))

    def run(self, remote_command: str, stdin: str | None = None, timeout_s: float = 600.0) -> Completed:
        return _run(ssh_argv(self.host, remote_command, self._options()), stdin, timeout_s)

    def copy_tree(self, local_dir: Path, remote_dir: str, use_rsync: bool, link_dest: str | None = None) -> Completed:
        if use_rsync:
            argv = rsync_argv(self.host, local_dir, remote_dir, self._options(), link_dest)
        else:
            argv = scp_argv(self.host, local_dir, remote_dir, self._options())
        return _run(argv, None, 3600.0)


def _run(argv: Sequence[str], stdin: str | None, timeout_s: float) -> Completed:
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Completed(124, "", f"{argv[0]} did not finish within {timeout_s:.0f} s")
    except FileNotFoundError:
        return Completed(127, "", f"{argv[0]} is not installed on this machine")
    return Completed(done.returncode, done.stdout, done.stderr)
