"""`edge-isp deploy`: put one release on several boards over SSH and keep each one running.

Per host: read its state; if it already runs this release, change nothing. Otherwise copy
the release beside the running one, verify and import it there, build the engine, move it
into place, switch ``current`` to it, restart the service and wait for /healthz. Until the
switch nothing the running service uses is touched, so a failure before it leaves the
previous release running as it was; a new release that does not become healthy is switched
back and the previous one restarted. Hosts are independent: one failing stops no other.

Steps that only make sense on a board (the engine build, systemd) run with
``board_steps="run"``; with ``"dry-run"`` they are printed, marked as not run, and the rest
runs for real (how the tests deploy to this machine).
"""

from __future__ import annotations

import base64
import dataclasses
import getpass
import json
import os
import shlex
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from edge_isp.deploy import agent as agent_module
from edge_isp.deploy.plan import SERVICE, DeployOptions, Release, engine_file
from edge_isp.deploy.ssh import ConnectionFailed, Host, SshOptions, SshTransport

AGENT_SOURCE = Path(agent_module.__file__).read_text(encoding="utf-8")


class StepFailed(Exception):
    """A step on one host failed; the message says which and why."""


@dataclasses.dataclass
class HostResult:
    """How one host ended: ``outcome`` one of "deployed", "unchanged", "unhealthy" (unchanged, and
    its service does not answer), "failed" or "rolled back"."""

    host: str
    outcome: str
    release: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("deployed", "unchanged")


class Log:
    """Lines prefixed with the host, from several threads at once."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def __call__(self, host: str, message: str) -> None:
        with self.lock:
            for line in message.splitlines() or [""]:
                print(f"{host}: {line}", file=self.stream, flush=True)


def engine_command(options: DeployOptions, release_dir: str) -> str | None:
    """The engine build, run in the release folder on the board, or None without a target.

    `edge-isp export engine` of the release's own package builds with the board's TensorRT
    into the release's engine cache (``engines/``, a file named by its cache key, with its
    sidecar); the links ``engines/<name>.engine`` (and ``.engine.json``) give it the name the
    release's run config uses. It fails unless that engine is there afterwards.
    """
    if options.target is None:
        return None
    link = engine_file(options.model.name)
    name = link.removeprefix("engines/").removesuffix(".engine")
    return (
        f"cd {release_dir} && ./bin/edge-isp export engine model/{options.model.name} --target target.toml "
        f"--cache engines --no-progress && built=$(cd engines && ls {name}.*.engine) && "
        f'ln -sfn "$built" {link} && ln -sfn "$built.json" {link}.json && test -s {link}'
    )


def service_commands(sudo: str) -> list[str]:
    """Restart the service on the release ``current`` now names.

    The unit and the run config link are installed by deploy/install-jetson.sh (as root,
    once), so a deploy needs no more than this restart: the deploying user's sudo right is
    this one command.
    """
    return [f"{sudo}systemctl restart {SERVICE}.service"]


class HostDeploy:
    """One host's deploy: the agent calls, the board steps and the log."""

    def __init__(self, host: Host, release: Release, options: DeployOptions, ssh: SshOptions, log: Log) -> None:
        self.host, self.release, self.options = host, release, options
        self.transport = SshTransport(host, ssh)
        self.wait = True
        # The probe runs with the board's python3; once it has found the service's Python,
        # every later call uses that one (any Python >= 3.8 runs the agent).
        self.agent_python = "python3"
        self.keep = 0  # set once a deploy succeeded: old releases are removed with the lock
        self.say: Callable[[str], None] = lambda message: log(host.spec, message)

    def agent(self, command: str, **kwargs: Any) -> dict[str, Any]:
        payload = base64.b64encode(json.dumps(kwargs).encode()).decode()
        done = self.transport.run(f"{self.agent_python} - {command} {payload}", stdin=AGENT_SOURCE)
        lines = [line for line in done.stdout.splitlines() if line.startswith(agent_module.MARK)]
        if done.returncode == 255 and not lines:
            raise StepFailed(f"cannot reach {self.host.spec} over SSH: {done.stderr.strip() or 'ssh exited 255'}")
        if not lines:
            why = done.stderr.strip() or f"exit status {done.returncode}"
            raise StepFailed(f"{command} on the board did not answer (is {self.agent_python} there?): {why}")
        answer = json.loads(lines[-1][len(agent_module.MARK) :])
        if not answer.pop("ok"):
            raise StepFailed(f"{command}: {answer['error']}")
        return answer

    def board_step(self, what: str, commands: Sequence[str]) -> None:
        line = " && ".join(commands)
        if self.options.board_steps == "dry-run":
            self.say(f"[dry-run] board step not run (--board-steps dry-run): {what}:")
            for command in commands:
                self.say(f"[dry-run]   {command}")
            return
        self.say(f"{what} ...")
        done = self.transport.run(f"sh -c {shlex.quote(line)}", timeout_s=3600.0)
        if done.returncode != 0:
            tail = "\n  ".join((done.stderr or done.stdout).strip().splitlines()[-8:])
            raise StepFailed(f"{what} failed (exit {done.returncode}):\n  {tail}")

    def run(self, wait: bool) -> HostResult:
        self.wait = wait
        try:
            with self.transport:
                return self._run()
        except ConnectionFailed as exc:
            raise StepFailed(f"cannot reach {self.host.spec} over SSH: {exc}") from None

    def _run(self) -> HostResult:
        options, release = self.options, self.release.release
        state = self.agent(
            "probe",
            prefix=options.prefix,
            python=options.python,
            config=options.remote_config,
            unit=f"/etc/systemd/system/{SERVICE}.service",
        )
        if not state["python_ok"]:
            raise StepFailed(
                f"no Python at {options.python} on the board: run deploy/install-jetson.sh there once "
                "(it makes that virtual environment), or give --remote-python"
            )
        self.agent_python = options.python
        if options.board_steps == "run":
            self._check_board(state)
        if state["current"] == release:
            self.say(f"already on release {release}: nothing to change")
            health = self._health(release, quiet=True)
            outcome = "unhealthy" if health.startswith("unhealthy") else "unchanged"
            return HostResult(self.host.spec, outcome, release, health)
        sudo = "" if state["uid"] == 0 else "sudo -n "
        owner = f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"
        stage = release if release not in state["releases"] else None
        staging = self.agent("lock", prefix=options.prefix, owner=owner, stage=stage).get("staging")
        try:
            return self._install_and_switch(state, sudo, staging)
        finally:
            # Never let a failure here hide the step's own: say it and carry on.
            try:
                removed = self.agent("unlock", prefix=options.prefix, keep=self.keep)["removed"]
            except StepFailed as exc:
                self.say(f"could not release the deploy lock {options.prefix}/.deploy-lock: {exc}")
            else:
                if removed:
                    self.say(f"removed old release(s): {', '.join(removed)}")

    def _check_board(self, state: dict[str, Any]) -> None:
        """Before changing anything: can this host run the board steps at all."""
        if not state["systemd"]:
            raise StepFailed(
                "systemd is not running on this host (/run/systemd/system is missing), so there is no service to "
                "restart; --board-steps dry-run installs the release without the board-only steps"
            )
        if state["unit_sha256"] is None or not state["config_exists"]:
            raise StepFailed(
                f"the {SERVICE} service or its run config ({self.options.remote_config}) is not installed: run "
                "deploy/install-jetson.sh on the board once (as root)"
            )
        unit = self.release.manifest["files"].get(f"deploy/{SERVICE}.service")
        if unit != state["unit_sha256"]:
            self.say(
                f"note: this release's {SERVICE}.service differs from the installed unit; rerun "
                f"{self.options.prefix}/current/deploy/install-jetson.sh as root to install it"
            )

    def _install_and_switch(self, state: dict[str, Any], sudo: str, staging: str | None) -> HostResult:
        options, release = self.options, self.release.release
        prefix = options.prefix
        if staging is None:
            self.say(f"release {release} is already on the board (not current): switching to it")
        else:
            method = "rsync" if state["rsync"] else "scp"
            link_dest = f"{prefix}/current/" if state["current"] else None
            self.say(f"copying release {release} ({self.release.size_bytes / 1e6:.1f} MB) to {staging} with {method}")
            try:
                done = self.transport.copy_tree(self.release.root, staging, method == "rsync", link_dest)
                if done.returncode != 0:
                    raise StepFailed(f"{method} failed (exit {done.returncode}): {done.stderr.strip()}")
                engine = engine_command(options, staging)
                checked = self.agent(
                    "verify",
                    prefix=prefix,
                    release=release,
                    python=options.python,
                    config=options.remote_config,
                    commit_after=engine is None,
                )
                self.say(
                    f"verified: files match the manifest; edge-isp {checked['version']} imports with {options.python}"
                )
                if engine:
                    self.board_step("building the TensorRT engine on the board", [engine])
                    self.agent("commit", prefix=prefix, release=release)
            except StepFailed:
                self.agent("discard", prefix=prefix, release=release)
                raise
        previous = self.agent("switch", prefix=prefix, release=release)["old"]
        self.say(f"current -> releases/{release}" + (f" (previous: {previous})" if previous else ""))
        try:
            self.board_step("restarting the service", service_commands(sudo))
            health = self._health(release)
        except StepFailed as exc:
            return self._roll_back(previous, state["previous"], sudo, str(exc))
        if health.startswith("unhealthy"):
            return self._roll_back(previous, state["previous"], sudo, health)
        self.keep = options.keep
        return HostResult(self.host.spec, "deployed", release, health)

    def _health(self, release: str, quiet: bool = False) -> str:
        if not self.wait:
            return "health not checked (--no-wait)"
        options = self.options
        if not quiet:
            self.say(f"waiting up to {options.health_timeout_s:g} s for the service's /healthz")
        answer = self.agent(
            "health",
            prefix=options.prefix,
            release=release,
            python=options.python,
            config=options.remote_config,
            timeout_s=options.health_timeout_s if not quiet else min(options.health_timeout_s, 5.0),
        )
        if answer["healthy"] is None:
            return answer["detail"]
        if answer["healthy"]:
            self.say(f"healthy: {answer['url']} answered")
            return f"healthy ({answer['url']})"
        self.say(f"not healthy: {answer['url']}: {answer['detail']}")
        return f"unhealthy: {answer['url']}: {answer['detail']}"

    def _roll_back(self, previous: str | None, before: str | None, sudo: str, why: str) -> HostResult:
        """Back to ``previous`` (and ``previous`` back to ``before``), then remove the new release."""
        options, release = self.options, self.release.release
        if previous is None:
            self.say("no previous release to go back to: leaving the new one in place")
            return HostResult(self.host.spec, "failed", release, why)
        self.say(f"rolling back to release {previous}")
        self.agent("switch", prefix=options.prefix, release=previous, previous=before or "")
        self.board_step("restarting the previous release's service", service_commands(sudo))
        back = self._health(previous)
        self.agent("discard", prefix=options.prefix, release=release)
        return HostResult(self.host.spec, "rolled back", previous, f"{why}; back on {previous}: {back}")


def deploy(
    hosts: Sequence[Host],
    release: Release,
    options: DeployOptions,
    ssh: SshOptions,
    wait: bool = True,
    parallel: int = 4,
    stream: TextIO | None = None,
) -> list[HostResult]:
    """Deploy ``release`` to every host (up to ``parallel`` at once); one result per host, in order."""
    log = Log(stream or sys.stdout)

    def one(host: Host) -> HostResult:
        try:
            result = HostDeploy(host, release, options, ssh, log).run(wait)
        except StepFailed as exc:
            log(host.spec, f"FAILED: {exc}")
            return HostResult(host.spec, "failed", None, str(exc))
        log(host.spec, f"{result.outcome}: release {result.release}")
        return result

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(hosts)))) as pool:
        return list(pool.map(one, hosts))


def describe_plan(hosts: Sequence[Host], release: Release, options: DeployOptions, wait: bool = True) -> str:
    """What a deploy would do, step by step, without connecting to anything."""
    prefix, rel = options.prefix, release.release
    staging, final = f"{prefix}/releases/.staging-{rel}", f"{prefix}/releases/{rel}"
    board = "" if options.board_steps == "run" else " [dry-run: printed, not run]"
    manifest = release.manifest
    lines = [
        f"release {rel}: {len(manifest['files'])} files, {release.size_bytes / 1e6:.1f} MB",
        f"  model {manifest['model']['file']} (sha256 {manifest['model']['sha256'][:12]}), "
        f"profile {manifest['profile']}, target {options.target or 'none (no engine build)'}",
        f"  on each board: prefix {prefix}, Python {options.python}, run config {options.remote_config}",
        f"hosts: {', '.join(h.spec for h in hosts)}",
        "steps on each host:",
        "  1. connect with ssh (BatchMode; your keys and ssh config) and read the host's state;"
        f" a host already on {rel} is left as it is",
        f"  2. copy the release to {staging} (rsync, or scp where the board has no rsync)",
        "  3. check every file against the manifest, byte-compile, import it and check its run config",
    ]
    engine = engine_command(options, staging)
    lines.append(f"  4. build the TensorRT engine on the board{board}: {engine}" if engine else "  4. no engine build")
    lines += [
        f"  5. move it into place as {final}",
        f"  6. switch {prefix}/current to it in one rename; {prefix}/previous keeps the running release",
        f"  7. restart the service{board}: {service_commands('[sudo -n ]')[0]}",
        f"  8. wait up to {options.health_timeout_s:g} s for /healthz; if it does not answer, switch back and restart"
        " the previous release"
        if wait
        else "  8. (--no-wait: /healthz not checked)",
        f"  9. keep the newest {options.keep} releases (current and previous always)",
        "a step that fails before 6 leaves the running release untouched and removes the copy",
    ]
    return "\n".join(lines)
