"""The run config file: what it accepts, how it resolves paths, what it refuses and how it fills `run`'s options."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from edge_isp.deploy.run_config import (
    RunConfigError,
    apply_run_config,
    load_run_config,
    parse_run_config,
    parse_run_config_text,
    split_host_port,
)
from edge_isp.errors import InvalidInputError, MissingFileError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "config.example.toml"


def test_example_config_is_valid_and_says_what_the_service_runs(tmp_path):
    config = parse_run_config_text(EXAMPLE.read_text(), tmp_path, origin="example")
    assert config.source == "v4l2:/dev/video0"
    assert config.model == tmp_path / "model" / "model.onnx"
    assert config.profile == str(tmp_path / "model" / "profile.json")
    assert config.backend == "auto" and config.token is None
    assert config.health_url() == "http://127.0.0.1:8080/healthz"


@pytest.mark.parametrize(
    ("http", "url"),
    [
        ("0.0.0.0:9000", "http://127.0.0.1:9000/healthz"),
        ("192.168.1.7:80", "http://192.168.1.7:80/healthz"),
        ("[::]:8080", "http://[::1]:8080/healthz"),
        ("[fe80::2]:8080", "http://[fe80::2]:8080/healthz"),
        (":8080", "http://127.0.0.1:8080/healthz"),
    ],
)
def test_health_url_polls_loopback_for_a_wildcard_bind(tmp_path, http, url):
    config = parse_run_config({"source": "sim", "model": "m.onnx", "outputs": {"http": http}}, tmp_path)
    assert config.health_url() == url


def test_no_http_output_means_no_health_url(tmp_path):
    assert parse_run_config({"source": "sim", "model": "m.onnx"}, tmp_path).health_url() is None


def test_relative_paths_follow_the_files_real_folder(tmp_path):
    release = tmp_path / "releases" / "r1"
    (release / "model").mkdir(parents=True)
    (release / "model" / "m.onnx").write_bytes(b"x")
    (release / "config.toml").write_text('source = "sim"\nmodel = "model/m.onnx"\n')
    etc = tmp_path / "etc"
    etc.mkdir()
    os.symlink(release / "config.toml", etc / "config.toml")
    config = load_run_config(etc / "config.toml")
    assert config.model == release.resolve() / "model" / "m.onnx"
    assert config.origin == str(etc / "config.toml")


def test_token_file_is_read_and_stripped(tmp_path):
    (tmp_path / "token").write_text("s3cret-token-value\n")
    config = parse_run_config({"source": "sim", "model": "m", "token_file": "token"}, tmp_path)
    assert config.token == "s3cret-token-value"
    # Checking a config meant for another machine: the form only, the file is not read.
    remote = parse_run_config({"source": "sim", "model": "m", "token_file": "/nope"}, tmp_path, read_token=False)
    assert remote.token is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": "sim", "model": "m", "modle": "x"}, "unknown key(s) 'modle'; valid keys: source, size, fps, model"),
        ({"model": "m"}, "missing key 'source'"),
        ({"source": "usb:0", "model": "m"}, "key 'source': source 'usb:0': unknown kind 'usb'; valid forms: sim,"),
        ({"source": "v4l2", "model": "m"}, "v4l2 needs a device, as v4l2:/dev/video0"),
        ({"source": "csi://0", "model": "m"}, "on a Jetson the sensor's raw comes through V4L2: give v4l2:/dev/video0"),
        ({"source": "sim", "model": 3}, "key 'model' must be a path string, got 3"),
        ({"source": "sim", "model": "m", "size": "1920*1080"}, "key 'size' must be 'WIDTHxHEIGHT'"),
        ({"source": "sim", "model": "m", "fps": 0}, "key 'fps' must be a number of frames per second"),
        ({"source": "sim", "model": "m", "fps": True}, "key 'fps' must be"),
        ({"source": "sim", "model": "m", "backend": "cuda"}, "key 'backend' must be one of auto, tensorrt"),
        ({"source": "sim", "model": "m", "outputs": {"http": "localhost"}}, "expected HOST:PORT"),
        ({"source": "sim", "model": "m", "outputs": {"http": "0.0.0.0:70000"}}, "port must be 1..65535, got 70000"),
        ({"source": "sim", "model": "m", "outputs": {"rtsp": "http://x"}}, "--rtsp serves RTSP: give"),
        ({"source": "sim", "model": "m", "outputs": {"rtsp": 8554}}, "'[HOST:]PORT[/PATH]' or 'rtsp://@:PORT/PATH'"),
        ({"source": "sim", "model": "m", "outputs": {"mjpeg": "x"}}, "unknown key(s) 'mjpeg' in [outputs]"),
        ({"source": "sim", "model": "m", "token": "short"}, "at least 8 printable ASCII characters"),
        ({"source": "sim", "model": "m", "token": "a b c d e f g h"}, "without spaces"),
        (
            {"source": "sim", "model": "m", "token": "x" * 9, "token_file": "t"},
            "give 'token' or 'token_file', not both",
        ),
    ],
)
def test_bad_config_names_the_key_expected_and_got(tmp_path, data, message):
    with pytest.raises(RunConfigError) as info:
        parse_run_config(data, tmp_path, origin="board.toml")
    assert message in str(info.value)
    assert str(info.value).startswith("board.toml")
    assert isinstance(info.value, InvalidInputError)


def test_token_never_shows_in_the_message(tmp_path):
    with pytest.raises(RunConfigError) as info:
        parse_run_config({"source": "sim", "model": "m", "token": "has space-in-it"}, tmp_path)
    assert "has space" not in str(info.value) and "got 15 character(s)" in str(info.value)


def test_syntax_error_and_missing_files(tmp_path):
    with pytest.raises(RunConfigError, match=r"broken.toml: not valid TOML"):
        parse_run_config_text("source = \n", tmp_path, origin="broken.toml")
    with pytest.raises(MissingFileError, match=r"run config .* does not exist"):
        load_run_config(tmp_path / "absent.toml")
    (tmp_path / "c.toml").write_text('source = "sim"\nmodel = "gone.onnx"\n')
    with pytest.raises(MissingFileError, match=r"key 'model': .*gone.onnx does not exist"):
        load_run_config(tmp_path / "c.toml")
    assert load_run_config(tmp_path / "c.toml", check_files=False).model == tmp_path / "gone.onnx"
    with pytest.raises(MissingFileError, match="token_file"):
        parse_run_config({"source": "sim", "model": "m", "token_file": "none"}, tmp_path)


def test_split_host_port():
    assert split_host_port("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert split_host_port("[::1]:80") == ("::1", 80)
    with pytest.raises(RunConfigError, match="expected HOST:PORT"):
        split_host_port("8080")


def test_apply_fills_only_what_the_command_line_left_unset(tmp_path):
    config = parse_run_config(
        {
            "source": "v4l2:/dev/video1",
            "size": "1920x1080",
            "fps": 30,
            "model": "m.onnx",
            "backend": "onnxruntime",
            "profile": "imx219",
            "token": "abcdefgh12",
            "outputs": {"http": "0.0.0.0:8080", "record": "rec"},
        },
        tmp_path,
    )
    args = argparse.Namespace(
        source="sim", model=None, profile=None, backend=None, http=None, rtsp=None, record=None, size=(640, 480)
    )
    apply_run_config(args, config)
    assert args.size == (640, 480) and args.fps == 30.0
    assert args.source == "sim"  # given on the command line: kept
    assert args.model == str(tmp_path / "m.onnx") and isinstance(args.model, str)
    assert args.profile == "imx219" and args.backend == "onnxruntime" and args.http == "0.0.0.0:8080"
    assert args.record == tmp_path / "rec" and args.rtsp is None
    assert args.token == "abcdefgh12"


def test_allowed_host_names_come_from_the_file_unless_given_on_the_command_line(tmp_path):
    data = {"source": "sim", "model": "m.onnx", "outputs": {"http": "127.0.0.1:8080", "allow_hosts": ["cam.local"]}}
    config = parse_run_config(data, tmp_path)
    assert config.allow_hosts == ("cam.local",)
    args = apply_run_config(argparse.Namespace(allow_host=None), config)
    assert args.allow_host == ["cam.local"]
    assert apply_run_config(argparse.Namespace(allow_host=["other"]), config).allow_host == ["other"]
    for bad in ("cam.local", ["a b"], [7], ["x;rm"]):
        with pytest.raises(RunConfigError, match=r"outputs\.allow_hosts"):
            parse_run_config({**data, "outputs": {"allow_hosts": bad}}, tmp_path)
