"""Conventions every command keeps: a reader that goes away ends it quietly; the defaults and
examples in the help are ones that work here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edge_isp.cli import build_parser
from edge_isp.sensor.profile import shipped_profiles

REPO = Path(__file__).resolve().parents[2]


def test_a_closed_pipe_ends_the_command_without_a_traceback():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "edge_isp", "export", "targets"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # as `| head -0` does, before the command writes
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_eval_device_defaults_to_auto_like_train():
    parser = build_parser()
    args = parser.parse_args(["eval", "--task", "detection", "--data", "d", "--checkpoint", "a=b", "--out", "o"])
    assert args.device == "auto"


def test_deploy_help_names_profiles_that_are_shipped(capsys):
    parser = build_parser()
    deploy = next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith(" deploy"))
    text = deploy.format_help()
    assert all(name in " ".join(text.split()) for name in shipped_profiles())
    assert "imx219" not in text or "imx219" in shipped_profiles()
