"""The `edge-isp` command builds its parser without torch or scipy: a board running `edge-isp run`
has neither (torch is the training side's, scipy the `calibrate` extra's). The commands that
need them import them inside the command, each with a comment saying so."""

from __future__ import annotations

import subprocess
import sys


def run_python(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (so the modules it blocks are not already imported here)."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_every_command_module_imports_without_torch_or_scipy():
    code = (
        "import importlib, sys\n"
        "sys.modules['torch'] = None  # any import of torch now fails\n"
        "sys.modules['scipy'] = None\n"
        "import edge_isp.cli as cli\n"
        "for name in cli.COMMAND_MODULES:\n"
        "    importlib.import_module(name)\n"
        "assert sys.modules['torch'] is None and sys.modules['scipy'] is None\n"
    )
    run_python(code)


def test_run_help_works_without_torch():
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "from edge_isp.cli import main\n"
        "try:\n"
        "    main(['run', '--help'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
    )
    assert "--model" in run_python(code).stdout


def test_the_command_table_names_what_each_module_registers():
    import argparse
    import importlib

    from edge_isp import cli

    registered = {}
    for name in cli.COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(name).register(sub)
        registered.update(dict.fromkeys(sub.choices, name))
    assert registered == cli.COMMANDS


def test_a_command_line_imports_only_its_command_module():
    code = (
        "import sys\n"
        "import edge_isp.cli as cli\n"
        "parser = cli.build_parser(['calibrate', 'ptc', 'frames', '--out', 'o'])\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('edge_isp.cli.'))\n"
        "assert loaded == ['edge_isp.cli.calibrate_commands'], loaded\n"
        "assert 'edge_isp.runtime.sources' not in sys.modules and 'edge_isp.deploy.deployer' not in sys.modules\n"
        "assert parser.parse_args(['calibrate', 'ptc', 'frames', '--out', 'o']).func.__name__ == '_ptc'\n"
        "everything = cli.build_parser(['--help'])._subparsers._group_actions[0].choices\n"
        "assert sorted(everything) == sorted(cli.COMMANDS)\n"
    )
    run_python(code)
