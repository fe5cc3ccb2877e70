"""The release `edge-isp deploy` builds, its options, the ssh/rsync/scp command lines and the printed plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import edge_isp
from edge_isp.deploy import plan
from edge_isp.deploy.deployer import describe_plan, engine_command, service_commands
from edge_isp.deploy.run_config import load_run_config
from edge_isp.deploy.ssh import SshOptions, parse_host, rsync_argv, scp_argv, ssh_argv
from edge_isp.errors import InvalidInputError, MissingFileError
from tests.deploy.conftest import onnx_model_bytes

try:
    import tomllib
except ModuleNotFoundError:
    import tomli as tomllib


@pytest.fixture
def model(tmp_path) -> Path:
    path = tmp_path / "det.onnx"
    path.write_bytes(onnx_model_bytes(b"onnx bytes of a model"))
    return path


def options(model: Path, **kwargs) -> plan.DeployOptions:
    kwargs.setdefault("source", "v4l2:/dev/video0")
    return plan.DeployOptions(model=model, profile="nexus6p-rear", **kwargs)


def test_release_holds_package_model_profile_config_and_manifest(tmp_path, model):
    release = plan.build_release(options(model, target="orin-nano", prefix="/srv/eisp"), tmp_path / "r")
    root = release.root
    assert release.release.startswith(edge_isp.__version__ + "-") and len(release.release.split("-")[-1]) == 12
    assert (root / "app/edge_isp/__init__.py").is_file() and (root / "app/edge_isp/deploy/agent.py").is_file()
    assert (root / "app/edge_isp/_data/profiles/nexus6p-rear.json").is_file()
    assert (root / "app/edge_isp/_data/targets/orin-nano.toml").is_file()
    assert not any(p.is_symlink() for p in root.rglob("*")), "links in a checkout are copied as files"
    assert not (root / "app/edge_isp/_data/models").exists(), "the release carries its own model only"
    assert not list(root.rglob("__pycache__")) and not list(root.rglob("*.pyc"))
    assert (root / "model/det.onnx").read_bytes() == model.read_bytes()
    assert json.loads((root / "model/nexus6p-rear.json").read_text())["name"] == "nexus6p-rear"
    assert tomllib.loads((root / "target.toml").read_text())["name"] == "orin-nano"
    unit = (root / "deploy/edge-isp.service").read_text()
    assert "ExecStart=/srv/eisp/current/bin/edge-isp run" in unit and "/opt/edge-isp" not in unit
    assert os.access(root / "deploy/install-jetson.sh", os.R_OK)
    manifest = json.loads((root / "MANIFEST.json").read_text())
    assert manifest == release.manifest and manifest["release"] == release.release
    assert manifest["python"] == "/srv/eisp/venv/bin/python"
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {"MANIFEST.json"}
    assert set(manifest["files"]) == on_disk
    from edge_isp.fileio import sha256_file

    assert manifest["files"]["model/det.onnx"] == sha256_file(model)


def test_release_config_runs_the_board_built_engine_with_a_target(tmp_path, model):
    release = plan.build_release(options(model, target="orin-nano"), tmp_path / "r")
    config = load_run_config(release.root / "config.toml", check_files=False)
    assert config.model == (release.root / "engines/det.engine").resolve()
    assert config.backend == "tensorrt" and config.source == "v4l2:/dev/video0"
    assert config.profile == str((release.root / "model/nexus6p-rear.json").resolve())
    assert config.http == plan.DEFAULT_HTTP
    command = engine_command(options(model, target="orin-nano"), "/x")
    assert command.startswith(
        "cd /x && ./bin/edge-isp export engine model/det.onnx --target target.toml --cache engines"
    )


FAKE_BUILD = """#!/bin/sh
# Stands in for `edge-isp export engine` (TensorRT is not here): writes what the engine cache
# writes, a plan named by its key's digest and its sidecar, or nothing at all.
[ "$1 $2 $3" = "export engine model/det.onnx" ] || exit 9
[ -n "$EMPTY" ] && exit 0
mkdir -p engines
printf plan > engines/det.int8.0123456789abcdef.engine
printf '{"format": "edge-isp/engine"}' > engines/det.int8.0123456789abcdef.engine.json
"""


def test_engine_command_links_the_built_engine_where_the_run_config_looks(tmp_path, model):
    opts = options(model, target="orin-nano")
    release = plan.build_release(opts, tmp_path / "r")
    (release.root / "bin/edge-isp").write_text(FAKE_BUILD)
    done = subprocess.run(["sh", "-c", engine_command(opts, str(release.root))], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    engines = release.root / "engines"
    assert os.readlink(engines / "det.engine") == "det.int8.0123456789abcdef.engine"
    assert (engines / "det.engine.json").read_text() == '{"format": "edge-isp/engine"}'
    assert load_run_config(release.root / "config.toml").model.read_bytes() == b"plan"
    # A build that leaves no engine fails the step.
    other = plan.build_release(opts, tmp_path / "r2")
    (other.root / "bin/edge-isp").write_text(FAKE_BUILD)
    env = dict(os.environ, EMPTY="1")
    done = subprocess.run(["sh", "-c", engine_command(opts, str(other.root))], capture_output=True, env=env, timeout=60)
    assert done.returncode != 0 and not (other.root / "engines/det.engine").exists()


def test_release_config_without_target_runs_the_onnx_and_keeps_the_users_keys(tmp_path, model):
    user = tmp_path / "camera.toml"
    user.write_text(
        'source = "v4l2:/dev/video2"\nmodel = "elsewhere.onnx"\ntoken_file = "/etc/edge-isp/token"\n'
        '[outputs]\nhttp = "0.0.0.0:9000"\nrtsp = "8554/cam"\n'
    )
    release = plan.build_release(options(model, source=None, config=user), tmp_path / "r")
    text = (release.root / "config.toml").read_text()
    data = tomllib.loads(text)
    assert data["model"] == "model/det.onnx" and data["source"] == "v4l2:/dev/video2"
    assert data["token_file"] == "/etc/edge-isp/token" and data["outputs"] == {
        "http": "0.0.0.0:9000",
        "rtsp": "8554/cam",
    }
    assert engine_command(options(model), "/x") is None


def test_same_inputs_same_release_id_and_any_change_a_new_one(tmp_path, model):
    first = plan.build_release(options(model), tmp_path / "a")
    second = plan.build_release(options(model), tmp_path / "b")
    assert first.release == second.release
    model.write_bytes(onnx_model_bytes(b"retrained"))
    assert plan.build_release(options(model), tmp_path / "c").release != first.release
    assert plan.build_release(options(model, source="sim"), tmp_path / "d").release != first.release


def test_launcher_runs_its_own_release_through_a_symlink(tmp_path, model):
    release = plan.build_release(options(model, remote_python=sys.executable), tmp_path / "releases" / "r1")
    os.symlink("releases/r1", tmp_path / "current")
    # Mark the release's copy, to see it is the one that runs (not the installed edge_isp).
    init = release.root / "app/edge_isp/__init__.py"
    init.write_text(init.read_text().replace(f'"{edge_isp.__version__}"', '"9.9.9+release-copy"'))
    done = subprocess.run(
        [str(tmp_path / "current/bin/edge-isp"), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "edge-isp 9.9.9+release-copy"


def test_launcher_is_valid_python_for_the_boards_interpreter():
    text = plan.launcher_script("/opt/edge-isp/venv/bin/python")
    assert text.startswith("#!/opt/edge-isp/venv/bin/python\n")
    compile(text, "bin/edge-isp", "exec")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"prefix": "opt/edge-isp"}, InvalidInputError, "--prefix must be an absolute path"),
        ({"prefix": "/opt/edge isp"}, InvalidInputError, "letters, digits and ._+-/ only"),
        ({"prefix": "/opt/../etc"}, InvalidInputError, "--prefix"),
        ({"remote_python": "/usr/bin/python3;rm"}, InvalidInputError, "--remote-python"),
        ({"board_steps": "maybe"}, InvalidInputError, "one of run, dry-run"),
        ({"keep": 1}, InvalidInputError, "--keep must be at least 2"),
        ({"health_timeout_s": 0}, InvalidInputError, "--health-timeout"),
    ],
)
def test_bad_options_are_refused(model, kwargs, error, message):
    with pytest.raises(error) as info:
        options(model, **kwargs)
    assert message in str(info.value)


def test_bad_inputs_are_refused_before_anything_is_copied(tmp_path, model):
    with pytest.raises(MissingFileError, match="does not exist"):
        plan.build_release(options(tmp_path / "none.onnx"), tmp_path / "r1")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(InvalidInputError, match=r"must be an ONNX file .* engines are built on the board"):
        plan.build_release(options(engine), tmp_path / "r2")
    with pytest.raises(InvalidInputError, match="give --source"):
        plan.build_release(options(model, source=None), tmp_path / "r3")
    with pytest.raises(MissingFileError, match="target 'orin-nono' not found"):
        plan.build_release(options(model, target="orin-nono"), tmp_path / "r4")
    bad = tmp_path / "bad.toml"
    bad.write_text('source = "sim"\n[outputs]\nhttp = "everywhere"\n')
    with pytest.raises(InvalidInputError, match="expected HOST:PORT"):
        plan.build_release(options(model, source=None, config=bad), tmp_path / "r5")
    assert not any((tmp_path / name).exists() and any((tmp_path / name).iterdir()) for name in ("r1", "r2", "r3"))


@pytest.mark.parametrize(
    ("text", "destination", "port"),
    [
        ("board", "board", None),
        ("jetson@10.0.0.5", "jetson@10.0.0.5", None),
        ("jetson@10.0.0.5:2222", "jetson@10.0.0.5", 2222),
        ("[fe80::1]:22", "fe80::1", 22),
        ("pi@[::1]", "pi@::1", None),
    ],
)
def test_parse_host(text, destination, port):
    host = parse_host(text)
    assert (host.destination, host.port, host.spec) == (destination, port, text)


@pytest.mark.parametrize("text", ["-oProxyCommand=x", "a b", "host:99999", "user@", ""])
def test_parse_host_refuses(text):
    with pytest.raises(InvalidInputError):
        parse_host(text)


def test_command_lines():
    opts = SshOptions(config_file=Path("/tmp/cfg"), options=("StrictHostKeyChecking=yes",), connect_timeout_s=7)
    host = parse_host("pi@[fe80::1]:2200")
    argv = ssh_argv(host, "uptime", opts)
    assert argv[0] == "ssh" and argv[-2:] == ["pi@fe80::1", "uptime"]
    joined = " ".join(argv)
    for part in ("-o BatchMode=yes", "-o ConnectTimeout=7", "-F /tmp/cfg", "-o StrictHostKeyChecking=yes", "-p 2200"):
        assert part in joined
    rsync = rsync_argv(host, Path("/tmp/rel"), "/opt/x/releases/.staging-1", opts, "/opt/x/current/")
    assert rsync[:4] == ["rsync", "-a", "--checksum", "--delete"]
    shell = rsync[rsync.index("-e") + 1]
    assert shell.startswith("ssh ") and "-p 2200" in shell and "BatchMode=yes" in shell
    assert rsync[rsync.index("--link-dest") + 1] == "/opt/x/current/"
    assert rsync[-2:] == ["/tmp/rel/", "pi@[fe80::1]:/opt/x/releases/.staging-1/"]
    scp = scp_argv(host, Path("/tmp/rel"), "/opt/x/releases/.staging-1", opts)
    assert scp[:3] == ["scp", "-B", "-r"] and "-P" in scp and scp[-1] == "pi@[fe80::1]:/opt/x/releases/.staging-1"


def test_printed_plan_names_every_step_and_the_dry_run_ones(tmp_path, model):
    opts = options(model, target="orin-nano", board_steps="dry-run", health_timeout_s=30)
    release = plan.build_release(opts, tmp_path / "r")
    text = describe_plan([parse_host("jetson@orin-1"), parse_host("orin-2")], release, opts)
    assert f"release {release.release}" in text and "hosts: jetson@orin-1, orin-2" in text
    assert f"/opt/edge-isp/releases/.staging-{release.release}" in text
    assert "build the TensorRT engine on the board [dry-run: printed, not run]" in text
    assert "restart the service [dry-run: printed, not run]: [sudo -n ]systemctl restart edge-isp.service" in text
    assert "wait up to 30 s for /healthz" in text and "leaves the running release untouched" in text
    assert service_commands("") == ["systemctl restart edge-isp.service"]
