"""The `edge-isp` command. Thin: every subcommand parses arguments and calls the library.

A user's mistake (an :class:`~edge_isp.errors.EdgeIspError`, a missing file, a bad
option) exits with status 1 and a one-paragraph message; anything else is a bug and
keeps its traceback. A reader that goes away (``edge-isp doctor --json | head``) ends the
command quietly, as it ends any Unix tool.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap
from collections.abc import Sequence

from edge_isp import __version__
from edge_isp.errors import EdgeIspError

# Each module defines register(subparsers); its parser sets `func(args) -> int | None`.
COMMAND_MODULES = (
    "edge_isp.cli.sensor_commands",
    "edge_isp.cli.data_commands",
    "edge_isp.cli.train_commands",
    "edge_isp.cli.eval_commands",
    "edge_isp.cli.record_commands",
    "edge_isp.cli.run_commands",
    "edge_isp.cli.demo_commands",
    "edge_isp.cli.calibrate_commands",
    "edge_isp.cli.export_commands",
    "edge_isp.cli.deploy_commands",
)
# The top-level commands each module registers: a command line that names one needs only its
# module (the others import what their commands use, e.g. the data sets, the runtime's sources
# and the deploy planner: a fifth of a second that `calibrate` or `info` would wait for).
COMMANDS = {
    "simulate": "edge_isp.cli.sensor_commands",
    "isp": "edge_isp.cli.sensor_commands",
    "info": "edge_isp.cli.sensor_commands",
    "data": "edge_isp.cli.data_commands",
    "train": "edge_isp.cli.train_commands",
    "eval": "edge_isp.cli.eval_commands",
    "record": "edge_isp.cli.record_commands",
    "run": "edge_isp.cli.run_commands",
    "demo": "edge_isp.cli.demo_commands",
    "calibrate": "edge_isp.cli.calibrate_commands",
    "export": "edge_isp.cli.export_commands",
    "doctor": "edge_isp.cli.deploy_commands",
    "deploy": "edge_isp.cli.deploy_commands",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default exits 2; ours says 1
        self.print_usage(sys.stderr)
        _fail(f"{self.prog}: {message}")


def _fail(message: str) -> None:
    print("error: " + textwrap.fill(message, width=100, subsequent_indent="  "), file=sys.stderr)
    raise SystemExit(1)


# A path the user named that is missing, of the wrong kind (a file where a folder must be, or
# the reverse) or not theirs: their mistake, said in one line.
USER_OS_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def _os_message(exc: OSError) -> str:
    if exc.filename is None or exc.strerror is None:
        return str(exc)
    where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
    hint = {
        FileExistsError: " (a file is in the way of a folder or an output that must be new)",
        NotADirectoryError: " (a file is where a folder must be)",
        IsADirectoryError: " (a folder is where a file must be)",
    }.get(type(exc), "")
    return f"{where}: {exc.strerror}{hint}"


def _modules_for(argv: Sequence[str] | None) -> tuple[str, ...]:
    """The command modules a command line needs: the one of the command it names (the first
    word that is not an option: the top-level options take no value), else all of them (for
    the top-level help, and the message that lists the commands)."""
    command = next((word for word in argv if not word.startswith("-")), None) if argv is not None else None
    module = COMMANDS.get(command)
    return (module,) if module in COMMAND_MODULES else tuple(COMMAND_MODULES)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with every command, or with only what ``argv`` (a command line to parse)
    needs."""
    parser = _Parser(
        prog="edge-isp",
        description="RAW Bayer frames straight into one network that does the ISP and the task.",
    )
    parser.add_argument("--version", action="version", version=f"edge-isp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _modules_for(argv):
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        return 128 + 13  # as a process killed by SIGPIPE reports itself
    except EdgeIspError as exc:
        _fail(str(exc))
    except USER_OS_ERRORS as exc:
        _fail(_os_message(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the flush at exit does not raise BrokenPipeError again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
