"""`edge-isp deploy --dry-run` and `edge-isp doctor` through the command line, and how they
report a user's mistake: exit status 1 and one message, no traceback."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import onnx_model_bytes


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "det.onnx"
    path.write_bytes(onnx_model_bytes(b"onnx model bytes"))
    return path


def test_dry_run_prints_the_plan_and_connects_to_nothing(edge_isp_main, model, capsys):
    # .invalid never resolves (RFC 2606): a connection attempt would fail the command.
    code = edge_isp_main(
        ["deploy", "jetson@orin.invalid", "pi@cam2.invalid:2222", "--model", str(model), "--profile", "nexus6p-rear",
         "--target", "orin-nano", "--source", "v4l2:/dev/video0", "--prefix", "/srv/edge-isp", "--dry-run"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "hosts: jetson@orin.invalid, pi@cam2.invalid:2222" in out
    assert "prefix /srv/edge-isp, Python /srv/edge-isp/venv/bin/python" in out
    assert "./bin/edge-isp export engine model/det.onnx --target target.toml" in out
    assert "restart the service: [sudo -n ]systemctl restart edge-isp.service" in out
    assert "[dry-run: printed, not run]" not in out  # board steps would run for real
    assert "cannot reach" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "{tmp}/absent.onnx"], "model {tmp}/absent.onnx does not exist"),
        (["--model", "{model}", "--ssh-config", "{tmp}/nope"], "--ssh-config {tmp}/nope does not exist"),
        (["--model", "{model}", "--prefix", "relative/dir"], "--prefix must be an absolute path"),
        (["--model", "{model}", "--profile", "no-such-sensor"], "no-such-sensor"),
    ],
)
def test_deploy_mistakes_exit_1_with_a_message(edge_isp_main, model, tmp_path, capsys, args, message):
    args = [a.format(tmp=tmp_path, model=model) for a in args]
    if "--profile" not in args:
        args += ["--profile", "nexus6p-rear"]
    with pytest.raises(SystemExit) as info:
        edge_isp_main(["deploy", "board", "--source", "sim", "--dry-run", *args])
    err = capsys.readouterr().err
    assert info.value.code == 1 and message.format(tmp=tmp_path) in err.replace("\n  ", " ")
    assert "Traceback" not in err


def test_bad_host_is_refused(edge_isp_main, model, capsys):
    with pytest.raises(SystemExit) as info:
        edge_isp_main(["deploy", "-oProxyCommand=evil", "--model", str(model), "--profile", "nexus6p-rear"])
    # argparse takes "-o..." as the ssh option flag: no host left, which it says.
    assert info.value.code == 1 and "required: HOST" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        edge_isp_main(["deploy", "a b", "--model", str(model), "--profile", "nexus6p-rear", "--dry-run"])
    assert info.value.code == 1 and "is not [USER@]HOST[:PORT]" in capsys.readouterr().err


def test_doctor_command_prints_the_table(edge_isp_main, capsys):
    code = edge_isp_main(["doctor", "--prefix", "/nonexistent-prefix"])
    out = capsys.readouterr().out
    assert out.startswith("edge-isp doctor: ") and "pass," in out.splitlines()[-1]
    assert code in (0, 1) and (code == 1) == any(line.startswith("FAIL") for line in out.splitlines())
