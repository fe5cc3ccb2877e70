"""The board-side agent, run here on a temporary prefix: releases, the atomic switch, the lock,
verification of a copy, the health wait, clean-up; and its command-line contract."""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge_isp.deploy import agent, plan
from edge_isp.deploy.agent import AgentError
from tests.deploy.conftest import onnx_model_bytes


def make_release(prefix, name):
    path = prefix / "releases" / name
    path.mkdir(parents=True)
    (path / "marker").write_text(name)
    return path


def test_switch_moves_current_and_keeps_previous(tmp_path):
    for name in ("r1", "r2", "r3"):
        make_release(tmp_path, name)
    assert agent.switch(str(tmp_path), "r1") == {"old": None}
    assert os.readlink(tmp_path / "current") == "releases/r1" and not (tmp_path / "previous").exists()
    assert agent.switch(str(tmp_path), "r2") == {"old": "r1"}
    assert (tmp_path / "current/marker").read_text() == "r2" and (tmp_path / "previous/marker").read_text() == "r1"
    assert agent.switch(str(tmp_path), "r3") == {"old": "r2"}
    # A rollback: back to r2, and previous back to what it named before r3 came (r1).
    assert agent.switch(str(tmp_path), "r2", previous="r1") == {"old": "r3"}
    assert (tmp_path / "current/marker").read_text() == "r2" and (tmp_path / "previous/marker").read_text() == "r1"
    # A rollback to the first release ever: no previous.
    assert agent.switch(str(tmp_path), "r1", previous="") == {"old": "r2"}
    assert (tmp_path / "current/marker").read_text() == "r1" and not os.path.lexists(tmp_path / "previous")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary links left
    with pytest.raises(AgentError, match="no release r9"):
        agent.switch(str(tmp_path), "r9")


def test_probe_reports_releases_and_current(tmp_path):
    make_release(tmp_path, "r1")
    make_release(tmp_path, "r2")
    (tmp_path / "releases/.staging-r3").mkdir()
    agent.switch(str(tmp_path), "r2")
    state = agent.probe(str(tmp_path), sys.executable, str(tmp_path / "config.toml"), str(tmp_path / "unit"))
    assert state["releases"] == ["r1", "r2"] and state["current"] == "r2"
    assert state["python_ok"] and state["uid"] == os.getuid() and state["unit_sha256"] is None
    assert not state["config_exists"] and state["free_bytes"] > 0
    state = agent.probe(str(tmp_path / "fresh"), "/nonexistent/python", "/nonexistent/config", "/nonexistent/unit")
    assert state["releases"] == [] and state["current"] is None and not state["python_ok"]


def test_lock_is_exclusive_until_released_or_stale(tmp_path):
    answer = agent.lock(str(tmp_path), "alice@pc pid 1", stage="r1")
    assert answer["staging"] == str(tmp_path / "releases/.staging-r1")
    with pytest.raises(AgentError, match=r"another deploy holds .*alice@pc pid 1"):
        agent.lock(str(tmp_path), "bob@laptop pid 2")
    agent.unlock(str(tmp_path))
    agent.lock(str(tmp_path), "bob@laptop pid 2")
    old = time.time() - agent.LOCK_STALE_S - 10
    os.utime(tmp_path / ".deploy-lock", (old, old))
    agent.lock(str(tmp_path), "carol@ci pid 3")  # a stale lock is taken over
    assert (tmp_path / ".deploy-lock/owner").read_text().strip() == "carol@ci pid 3"


def test_discard_and_gc_never_touch_current_or_previous(tmp_path):
    for i, name in enumerate(("r1", "r2", "r3", "r4", "r5")):
        path = make_release(tmp_path, name)
        os.utime(path, (1000 + i, 1000 + i))
    agent.switch(str(tmp_path), "r1")
    agent.switch(str(tmp_path), "r2")
    agent.discard(str(tmp_path), "r2")
    assert (tmp_path / "releases/r2").is_dir()
    removed = agent.gc(str(tmp_path), keep=2)["removed"]
    # Newest by time are r5, r4; r2 (current) and r1 (previous) stay anyway.
    assert sorted(removed) == ["r3"] and sorted(os.listdir(tmp_path / "releases")) == ["r1", "r2", "r4", "r5"]
    agent.discard(str(tmp_path), "r5")
    assert not (tmp_path / "releases/r5").exists()


@pytest.fixture
def staged(tmp_path):
    """A real release, built by deploy's own code, copied into a staging folder."""
    model = tmp_path / "m.onnx"
    model.write_bytes(onnx_model_bytes(b"model-bytes"))
    options = plan.DeployOptions(model=model, profile="nexus6p-rear", source="sim", remote_python=sys.executable)
    release = plan.build_release(options, tmp_path / "built")
    prefix = tmp_path / "prefix"
    shutil.copytree(release.root, prefix / "releases" / f".staging-{release.release}")
    return prefix, release.release


def test_verify_checks_imports_and_commits_a_good_copy(staged, tmp_path):
    prefix, release = staged
    answer = agent.verify(str(prefix), release, sys.executable, str(tmp_path / "no-config"), commit_after=True)
    assert answer["health_url"] == "http://127.0.0.1:8080/healthz" and answer["token"] is None
    assert (prefix / "releases" / release / "MANIFEST.json").is_file()
    assert not (prefix / "releases" / f".staging-{release}").exists()
    assert list((prefix / "releases" / release / "app").rglob("*.pyc"))  # byte-compiled for the service


def test_verify_refuses_a_copy_that_differs_from_its_manifest(staged, tmp_path):
    prefix, release = staged
    (prefix / "releases" / f".staging-{release}" / "model" / "m.onnx").write_bytes(b"truncated")
    with pytest.raises(AgentError, match=r"1 file\(s\) differ from the manifest after the copy: model/m.onnx"):
        agent.verify(str(prefix), release, sys.executable, str(tmp_path / "no-config"))
    assert not (prefix / "releases" / release).exists()


def test_verify_refuses_a_python_without_the_dependencies(staged, tmp_path):
    prefix, release = staged
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    with pytest.raises(AgentError, match=r"(?s)self-check of the new release failed .*No module named 'numpy'"):
        agent.verify(str(prefix), release, str(bare / "bin" / "python"), str(tmp_path / "no-config"))


class Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        body = json.dumps({"status": "ok" if self.status == 200 else "stale"}).encode()
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_health_waits_for_200_and_reports_what_it_got(health_server):
    url = f"http://127.0.0.1:{health_server.server_address[1]}/healthz"
    Health.status = 200
    answer = agent.health("/x", "r", sys.executable, "/x", timeout_s=2, url=url)
    assert answer["healthy"] and '"ok"' in answer["detail"]
    Health.status = 503
    start = time.monotonic()
    answer = agent.health("/x", "r", sys.executable, "/x", timeout_s=0.6, url=url)
    assert not answer["healthy"] and answer["detail"].startswith("HTTP 503") and time.monotonic() - start >= 0.6
    answer = agent.health("/x", "r", sys.executable, "/x", timeout_s=0.3, url="http://127.0.0.1:9/healthz")
    assert not answer["healthy"] and answer["detail"].startswith("no answer")


def test_command_line_contract_prints_one_answer_line(tmp_path):
    make_release(tmp_path, "r1")
    source = Path(agent.__file__).read_text()
    payload = base64.b64encode(json.dumps({"prefix": str(tmp_path), "release": "r1"}).encode()).decode()
    done = subprocess.run(
        [sys.executable, "-", "switch", payload],
        input=source,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    (line,) = [x for x in done.stdout.splitlines() if x.startswith(agent.MARK)]
    assert json.loads(line[len(agent.MARK) :]) == {"old": None, "ok": True}
    payload = base64.b64encode(json.dumps({"prefix": str(tmp_path), "release": "nope"}).encode()).decode()
    done = subprocess.run(
        [sys.executable, "-", "switch", payload],
        input=source,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1][len(agent.MARK) :])
    assert answer == {"ok": False, "error": f"no release nope under {tmp_path}"}


def _find_python(name: str) -> str | None:
    """A working ``name`` (python3.8...): on PATH, or one pyenv installed but did not activate."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for path in [shutil.which(name), *sorted(str(p) for p in pyenv.glob(f"*/bin/{name}"))]:
        if path and subprocess.run([path, "-c", "pass"], capture_output=True, timeout=30).returncode == 0:
            return path
    return None


@pytest.mark.parametrize("python", ["python3.8", "python3.10"])
def test_agent_runs_on_the_boards_older_pythons(tmp_path, python):
    """JetPack 5's system Python is 3.8 and JetPack 6's 3.10: the agent runs on both."""
    found = _find_python(python)
    if found is None:
        pytest.skip(f"no {python} on this machine")
    python = found
    make_release(tmp_path, "r1")
    source = Path(agent.__file__).read_text()

    def call(command, **kwargs):
        payload = base64.b64encode(json.dumps(kwargs).encode()).decode()
        done = subprocess.run(
            [python, "-", command, payload], input=source, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1][len(agent.MARK) :])

    assert call("lock", prefix=str(tmp_path), owner="ci", stage="r2")["ok"]
    assert call("switch", prefix=str(tmp_path), release="r1") == {"old": None, "ok": True}
    state = call("probe", prefix=str(tmp_path), python=python, config="/nonexistent", unit="/nonexistent")
    assert state["current"] == "r1" and state["releases"] == ["r1"]
    assert call("unlock", prefix=str(tmp_path), keep=2) == {"removed": [], "ok": True}
    assert not (tmp_path / ".deploy-lock").exists()
