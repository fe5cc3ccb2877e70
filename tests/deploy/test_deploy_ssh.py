"""`edge-isp deploy` against a real OpenSSH server on this machine.

The test starts its own sshd on 127.0.0.1 at a free port, with a host key and a client key
made for it (strict host key checking against a known_hosts file of its own), and deploys
into temporary prefixes. This machine plays the board: the release runs with this
interpreter (nothing is pip-installed), and the board-only steps (engine build, systemd)
run in their dry-run form, which the output says. A small HTTP server stands in for the
service: it answers /healthz for whatever release ``current`` names, 503 for a model that
does not work (its bytes say "unhealthy").
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from edge_isp.deploy import plan
from edge_isp.deploy.deployer import deploy
from edge_isp.deploy.ssh import SshOptions, parse_host
from tests.deploy.conftest import onnx_model_bytes

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.access("/usr/sbin/sshd", os.X_OK) else None)
NEEDS = [
    tool
    for tool, path in (("sshd", SSHD), ("ssh", shutil.which("ssh")), ("ssh-keygen", shutil.which("ssh-keygen")))
    if not path
]
pytestmark = pytest.mark.skipif(
    bool(NEEDS), reason=f"needs {', '.join(NEEDS)} (apt-get install openssh-server openssh-client)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclasses.dataclass
class Sshd:
    config: Path  # the client's ssh config: hosts "board" and "deadhost"
    process: subprocess.Popen
    log: Path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    root = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True, timeout=30)
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    port = free_port()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\nPidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\nLogLevel VERBOSE\n"
    )
    host_key = (root / "host_key.pub").read_text().split()
    (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    common = (
        f"  HostName 127.0.0.1\n  User {getpass.getuser()}\n  IdentityFile {root / 'client_key'}\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {root / 'known_hosts'}\n  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking yes\n"
    )
    (root / "ssh_config").write_text(
        f"Host board\n  Port {port}\n{common}\nHost deadhost\n  Port {free_port()}\n{common}"
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation folder, as root
    log = root / "sshd.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")], stdout=handle, stderr=handle)
    deadline = time.monotonic() + 15
    while True:
        probe = subprocess.run(
            ["ssh", "-F", str(root / "ssh_config"), "-o", "BatchMode=yes", "board", "true"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if probe.returncode == 0:
            break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"sshd did not come up: {probe.stderr.decode()}\n{log.read_text()}")
        time.sleep(0.2)
    yield Sshd(root / "ssh_config", process, log)
    process.terminate()
    process.wait(timeout=10)


class FakeService(http.server.BaseHTTPRequestHandler):
    """/healthz of the service running ``PREFIX/current``: 200 with its release, 503 when its
    model does not work or nothing is installed."""

    prefix: Path

    def do_GET(self):
        current = self.prefix / "current"
        try:
            manifest = json.loads((current / "MANIFEST.json").read_text())
            broken = b"unhealthy" in (current / manifest["model"]["file"]).read_bytes()
        except OSError:
            manifest, broken = {"release": None}, True
        status = 503 if broken else 200
        body = json.dumps({"status": "stale" if broken else "ok", "release": manifest["release"]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def fake_service(prefix: Path):
    handler = type("Handler", (FakeService,), {"prefix": prefix})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def service_answer(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@dataclasses.dataclass
class Board:
    prefix: Path
    port: int
    work: Path

    def options(self, model: Path, **kwargs) -> plan.DeployOptions:
        config = self.work / "camera.toml"
        config.write_text(f'source = "sim"\n[outputs]\nhttp = "127.0.0.1:{self.port}"\n')
        kwargs.setdefault("remote_python", sys.executable)
        # The stand-in answers at once; a short wait keeps the unhealthy case quick.
        kwargs.setdefault("health_timeout_s", 1.5)
        return plan.DeployOptions(
            model=model, profile="nexus6p-rear", config=config, prefix=str(self.prefix), board_steps="dry-run", **kwargs
        )

    def release(self, options: plan.DeployOptions, name: str) -> plan.Release:
        return plan.build_release(options, self.work / name)

    def releases(self) -> list[str]:
        return sorted(os.listdir(self.prefix / "releases"))

    def current(self) -> str:
        return os.path.basename(os.readlink(self.prefix / "current"))


@pytest.fixture
def board(tmp_path):
    prefix = tmp_path / "opt-edge-isp"
    with fake_service(prefix) as port:
        yield Board(prefix, port, tmp_path)


def model_file(board: Board, name: str, content: bytes) -> Path:
    path = board.work / name
    path.write_bytes(onnx_model_bytes(content))
    return path


def run_deploy(sshd: Sshd, release: plan.Release, options: plan.DeployOptions, hosts=("board",)):
    out = io.StringIO()
    results = deploy([parse_host(h) for h in hosts], release, options, SshOptions(config_file=sshd.config), stream=out)
    return results, out.getvalue()


def test_deploy_installs_switches_and_waits_for_health_then_a_second_deploy_is_a_no_op(sshd, board):
    options = board.options(model_file(board, "det.onnx", b"model v1"), target="orin-nano")
    release = board.release(options, "v1")
    (result,), log = run_deploy(sshd, release, options)
    assert result.outcome == "deployed" and result.release == release.release, log
    assert f"copying release {release.release}" in log and "verified: files match the manifest" in log
    # The board-only steps are printed in their dry-run form, and said to be not run.
    assert "[dry-run] board step not run (--board-steps dry-run): building the TensorRT engine on the board" in log
    assert "export engine model/det.onnx --target target.toml --cache engines --no-progress" in log
    assert "[dry-run]   systemctl restart edge-isp.service" in log
    assert f"healthy: http://127.0.0.1:{board.port}/healthz answered" in log
    assert board.current() == release.release and board.releases() == [release.release]
    assert service_answer(board.port) == (200, {"status": "ok", "release": release.release})
    installed = board.prefix / "releases" / release.release
    assert (installed / "model/det.onnx").read_bytes() == onnx_model_bytes(b"model v1")
    done = subprocess.run(
        [str(board.prefix / "current/bin/edge-isp"), "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("edge-isp "), done.stderr
    assert not (board.prefix / ".deploy-lock").exists()

    link_before = os.lstat(board.prefix / "current")
    tree_before = {p: p.stat().st_mtime_ns for p in installed.rglob("*")}
    (again,), log = run_deploy(sshd, release, options)
    assert again.outcome == "unchanged" and f"already on release {release.release}: nothing to change" in log
    assert "copying" not in log and "[dry-run]" not in log
    link_after = os.lstat(board.prefix / "current")
    assert (link_after.st_ino, link_after.st_mtime_ns) == (link_before.st_ino, link_before.st_mtime_ns)
    assert {p: p.stat().st_mtime_ns for p in installed.rglob("*")} == tree_before
    assert board.releases() == [release.release]


def test_failed_install_and_unhealthy_release_leave_the_previous_one_running(sshd, board):
    v1_options = board.options(model_file(board, "det.onnx", b"model v1"))
    v1 = board.release(v1_options, "v1")
    (result,), log = run_deploy(sshd, v1, v1_options)
    assert result.outcome == "deployed", log

    # A board whose Python lacks the dependencies: the new release fails its self-check there.
    bare = board.work / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    v2_options = board.options(model_file(board, "det.onnx", b"model v2"), remote_python=str(bare / "bin/python"))
    v2 = board.release(v2_options, "v2")
    (result,), log = run_deploy(sshd, v2, v2_options)
    assert result.outcome == "failed" and "self-check of the new release failed" in result.detail, log
    assert "No module named 'numpy'" in log
    assert board.current() == v1.release and board.releases() == [v1.release]  # no copy left, nothing switched
    assert service_answer(board.port) == (200, {"status": "ok", "release": v1.release})

    # A release that installs but whose service never gets healthy: switched back.
    v3_options = board.options(model_file(board, "det.onnx", b"unhealthy model v3"))
    v3 = board.release(v3_options, "v3")
    (result,), log = run_deploy(sshd, v3, v3_options)
    assert result.outcome == "rolled back" and result.release == v1.release, log
    assert f"current -> releases/{v3.release}" in log and "not healthy" in log and "HTTP 503" in log
    assert f"rolling back to release {v1.release}" in log and "[dry-run]   systemctl restart edge-isp.service" in log
    assert board.current() == v1.release and board.releases() == [v1.release]
    assert not os.path.lexists(board.prefix / "previous")  # v1 was the first release: nothing before it
    assert service_answer(board.port) == (200, {"status": "ok", "release": v1.release})


def test_several_hosts_one_unreachable(sshd, board):
    options = board.options(model_file(board, "det.onnx", b"model v1"))
    release = board.release(options, "v1")
    results, log = run_deploy(sshd, release, options, hosts=("board", "deadhost"))
    assert [r.host for r in results] == ["board", "deadhost"]
    assert results[0].outcome == "deployed" and board.current() == release.release
    assert results[1].outcome == "failed" and "cannot reach deadhost over SSH" in results[1].detail
    assert "Connection refused" in results[1].detail, log


def test_a_held_lock_stops_a_second_deploy(sshd, board):
    options = board.options(model_file(board, "det.onnx", b"model v1"))
    release = board.release(options, "v1")
    (board.prefix / ".deploy-lock").mkdir(parents=True)
    (board.prefix / ".deploy-lock/owner").write_text("alice@laptop pid 42\n")
    (result,), _ = run_deploy(sshd, release, options)
    assert result.outcome == "failed" and "another deploy holds" in result.detail and "alice@laptop" in result.detail
    assert not (board.prefix / "releases").exists()


@pytest.mark.skipif(os.path.isdir("/run/systemd/system"), reason="this machine runs systemd")
def test_board_steps_are_refused_where_there_is_no_systemd(sshd, board, capsys, edge_isp_main):
    model = model_file(board, "det.onnx", b"model v1")
    code = edge_isp_main([
        "deploy", "board", "--model", str(model), "--profile", "nexus6p-rear", "--source", "sim",
        "--prefix", str(board.prefix), "--remote-python", sys.executable, "--ssh-config", str(sshd.config),
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and "systemd is not running on this host" in out and "--board-steps dry-run" in out
    assert not board.prefix.exists()
