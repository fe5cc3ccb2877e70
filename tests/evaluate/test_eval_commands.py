"""`edge-isp eval` and `edge-isp eval recon` end to end on tiny checkpoints and images."""

from __future__ import annotations

import argparse
import json

import pytest

from edge_isp.cli import eval_commands
from edge_isp.errors import InvalidInputError


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="edge-isp")
    eval_commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_eval_writes_table_plot_grid(cls_runs, cls_folder, tmp_path, capsys):
    out = tmp_path / "report"
    code = _run(["eval", "--task", "classification", "--data", str(cls_folder), "--runs", str(cls_runs),
                 "--lux", "3,30", "--seeds", "2", "--limit", "4", "--batch-size", "2", "--isp-denoise", "none",
                 "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    assert {p.name for p in out.iterdir()} == {"sweep.md", "sweep.json", "sweep.png", "scene.png"}
    data = json.loads((out / "sweep.json").read_text())
    assert [p["key"] for p in data["pipelines"]] == ["a", "b", "c", "d", "e"]
    assert data["settings"]["seeds"] == [0, 1] and data["images"] == 4
    assert data["notes"] == ["(f) joint, no Anscombe: skipped, no checkpoint for noansc"]
    printed = capsys.readouterr().out
    assert "## top-1 accuracy (%)" in printed and "sweep.png" in printed


def test_checkpoint_option_replaces_a_found_one(cls_runs, cls_folder, tmp_path):
    joint = cls_runs / "classification" / "joint" / "best.pt"
    out = tmp_path / "report"
    _run(["eval", "--task", "classification", "--data", str(cls_folder), "--checkpoint", f"joint={joint}",
          "--checkpoint", f"joint:again={joint}", "--electrons", "20", "--limit", "2", "--out", str(out),
          "--quiet"])  # fmt: skip
    data = json.loads((out / "sweep.json").read_text())
    assert [p["key"] for p in data["pipelines"]] == ["e", "e:again"]
    assert data["levels"][0]["unit"] == "electrons" and data["levels"][0]["electrons"] == 20.0


def test_eval_recon(cls_runs, cls_folder, tmp_path):
    out = tmp_path / "recon"
    code = _run(["eval", "recon", "--data", str(cls_folder), "--checkpoint",
                 f"isp={cls_runs / 'classification' / 'isp' / 'best.pt'}", "--denoisers", "nlm", "--no-demosaicnet",
                 "--lux", "6", "--limit", "2", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    assert {p.name for p in out.iterdir()} == {"recon.md", "recon.json", "recon.png", "recon-scene.png"}
    data = json.loads((out / "recon.json").read_text())
    assert [p["key"] for p in data["pipelines"]] == ["isp", "conv-nlm"]


def test_user_mistakes_name_the_option(cls_folder, tmp_path):
    with pytest.raises(InvalidInputError, match="--task"):
        _run(["eval", "--data", str(cls_folder), "--runs", str(tmp_path), "--out", str(tmp_path)])
    with pytest.raises(InvalidInputError, match="--runs DIR and/or --checkpoint"):
        _run(["eval", "--task", "classification", "--data", str(cls_folder), "--out", str(tmp_path)])
    with pytest.raises(InvalidInputError, match="--seeds"):
        _run(["eval", "--task", "classification", "--data", str(cls_folder), "--runs", str(tmp_path),
              "--seeds", "0", "--out", str(tmp_path)])  # fmt: skip
    with pytest.raises(SystemExit):
        _run(["eval", "--lux", "3,dark"])


def test_a_bad_blur_spec_fails_before_models_load(cls_folder, tmp_path):
    with pytest.raises(InvalidInputError, match="blur"):
        _run(["eval", "--task", "classification", "--data", str(cls_folder), "--runs", str(tmp_path / "none"),
              "--blur", "gauss:2", "--out", str(tmp_path)])  # fmt: skip
