"""Paths in a training config: relative to the config file (from any working folder), to the
working folder on the command line; a saved config loads back to the same files; `--out`
finds the isp/head runs the same habit put beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_isp.cli import main
from edge_isp.train.config import load_config
from edge_isp.train.config_paths import runs_beside

REPO = Path(__file__).resolve().parents[2]


def same_file(a: str, b: Path) -> bool:
    return Path(a).resolve() == b.resolve()


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_file_paths_are_relative_to_the_file_from_any_folder(tmp_path, elsewhere):
    config_file = tmp_path / "exp" / "c.toml"
    config_file.parent.mkdir()
    config_file.write_text(
        '[data]\nroot = "../data"\n[sensor]\nprofile = "profiles/cam.json"\n[run]\nout = "runs/a"\n'
        '[init]\nhead = "/abs/head.pt"\n[stage.joint.init]\nisp = "runs/isp/best.pt"\n'
    )
    config = load_config(config_file, stage="joint", overrides=["data.val=val.json"])
    assert same_file(config.data.root, tmp_path / "data")
    assert same_file(config.sensor.profile, tmp_path / "exp/profiles/cam.json")
    assert same_file(config.run.out, tmp_path / "exp/runs/a")
    assert same_file(config.init.isp, tmp_path / "exp/runs/isp/best.pt")  # from a [stage.*] table too
    assert config.init.head == "/abs/head.pt"
    assert config.data.val == "val.json", "--set is relative to the working folder"
    assert load_config(None, overrides=["sensor.profile=oneplus6-rear"]).sensor.profile == "oneplus6-rear"


def test_the_shipped_configs_work_from_another_folder(elsewhere):
    config = load_config(REPO / "configs" / "detection.toml", stage="joint")
    assert same_file(config.data.root, REPO / "data" / "demo")
    assert same_file(config.init.isp, REPO / "runs/detection/isp/best.pt")
    assert same_file(config.run.out, REPO / "runs/detection/joint")


def test_a_saved_config_loads_back_to_the_same_files(tmp_path, elsewhere):
    config = load_config(None, overrides=["data.root=data/x", "init.isp=/abs/isp.pt", "run.out=runs/r"])
    saved = tmp_path / "deep" / "er" / "config.toml"
    saved.parent.mkdir(parents=True)
    config.save(saved)
    assert 'root = "../../elsewhere/data/x"' in saved.read_text()
    again = load_config(saved)
    assert again == config


def test_runs_beside_out(tmp_path, elsewhere):
    init = {"isp": "runs/detection/isp/best.pt", "head": "runs/detection/head/best.pt"}
    (elsewhere / "exp" / "isp").mkdir(parents=True)
    (elsewhere / "exp" / "isp" / "best.pt").write_bytes(b"x")
    assert runs_beside(init, "runs/detection/joint", "exp/joint") == {"isp": "exp/isp/best.pt"}  # head not there
    assert runs_beside(init, "runs/detection/joint", "runs/detection/joint") == {}
    assert runs_beside({"isp": "/elsewhere/isp.pt"}, "runs/detection/joint", "exp/joint") == {}
    assert runs_beside(init, None, "exp/joint") == {}


def test_train_joint_out_finds_the_runs_the_same_out_made(tmp_path, elsewhere, capsys):
    config_file = tmp_path / "c.toml"
    config_file.write_text(
        '[stage.isp.run]\nout = "runs/d/isp"\n[stage.head.run]\nout = "runs/d/head"\n'
        '[stage.joint.init]\nisp = "runs/d/isp/best.pt"\nhead = "runs/d/head/best.pt"\n'
        '[stage.joint.run]\nout = "runs/d/joint"\n'
    )
    for role in ("isp", "head"):
        (elsewhere / "mine" / role).mkdir(parents=True)
        (elsewhere / "mine" / role / "best.pt").write_bytes(b"x")
    argv = ["train", "joint", "--config", str(config_file), "--out", "mine/joint", "--print-config"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "init.isp: mine/isp/best.pt (the isp run beside --out mine/joint)" in out
    assert 'isp = "mine/isp/best.pt"' in out and 'head = "mine/head/best.pt"' in out
    assert main([*argv, "--set", "init.isp=other.pt"]) == 0
    out = capsys.readouterr().out
    assert 'isp = "other.pt"' in out and 'head = "mine/head/best.pt"' in out


def test_a_teacher_file_and_cache_are_paths_a_built_in_teacher_is_a_name(tmp_path, elsewhere):
    config_file = tmp_path / "exp" / "c.toml"
    config_file.parent.mkdir()
    config_file.write_text('[teacher]\nmodel = "models/t.onnx"\ncache = "cache"\n')
    config = load_config(config_file)
    assert same_file(config.teacher.model, tmp_path / "exp/models/t.onnx")
    assert same_file(config.teacher.cache, tmp_path / "exp/cache")
    config_file.write_text('[teacher]\nmodel = "mobilenet_v2_imagenet"\n')
    assert load_config(config_file).teacher.model == "mobilenet_v2_imagenet"
    for name in ("real-cls", "real-det"):
        config = load_config(REPO / "configs" / f"{name}.toml", stage="joint")
        assert same_file(config.data.root, REPO / "data" / "real")
        assert same_file(config.init.isp, REPO / f"runs/{name}/isp/best.pt")
