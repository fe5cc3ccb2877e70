"""`edge-isp train STAGE`: the command module on its own parser and through edge_isp.cli.main."""

from __future__ import annotations

import argparse

import pytest

from edge_isp.cli import train_commands
from edge_isp.train.checkpoint import load_checkpoint


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edge-isp")
    train_commands.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def data_options(data) -> list[str]:
    sets = [
        f"data.train={data['train']}",
        f"data.val={data['val']}",
        "data.batch_size=4",
        "data.num_workers=0",
        "model.pretrained_backbone=false",
        "model.width_mult=0.35",
        "run.device=cpu",
        "run.progress=false",
        "run.epochs=1",
        "sensor.light_unit=electrons",
        "sensor.light_range=[20, 200]",
        "sensor.val_light=[50]",
    ]
    return [arg for s in sets for arg in ("--set", s)]


def test_print_config_applies_stage_table_and_overrides(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('[model]\nname = "dp_s_cls"\n[stage.isp.model]\nname = "dp_s_rec"\n')
    args = parse(["train", "isp", "--config", str(config), "--set", "optim.lr=0.02", "--out", "x/y", "--print-config"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert 'name = "dp_s_rec"' in out and "lr = 0.02" in out and 'out = "x/y"' in out


def test_stop_then_resume_through_the_command(cls_data, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--config", str(tmp_path / "c.toml"), "--out", str(out), *data_options(cls_data)]
    (tmp_path / "c.toml").write_text("")
    args = parse(["train", "joint", *common, "--set", "run.max_steps=2"])
    assert args.func(args) == 0
    assert "stopped at step 2" in capsys.readouterr().out
    args = parse(["train", "joint", *common, "--resume"])
    assert args.func(args) == 0
    assert "finished" in capsys.readouterr().out
    assert load_checkpoint(out / "last.pt")["global_step"] == 4


def test_stages_and_required_config():
    for stage in ("isp", "head", "joint", "baseline"):
        assert parse(["train", stage, "--config", "c.toml"]).stage == stage
    with pytest.raises(SystemExit):
        parse(["train", "pretrain", "--config", "c.toml"])
    with pytest.raises(SystemExit):
        parse(["train", "joint"])


def test_user_errors_exit_1_with_a_message(tmp_path, monkeypatch, capsys):
    import edge_isp.cli as cli

    if "edge_isp.cli.train_commands" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "edge_isp.cli.train_commands"))
    (tmp_path / "c.toml").write_text("[optim]\nlr = -1\n")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "joint", "--config", str(tmp_path / "c.toml")])
    assert exit_info.value.code == 1
    assert "optim.lr" in capsys.readouterr().err
