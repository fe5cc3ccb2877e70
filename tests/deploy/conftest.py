"""The `edge-isp` command with the deploy commands in it (until the lead adds them to
``COMMAND_MODULES``, the tests add them)."""

from __future__ import annotations

import pytest

from edge_isp import cli as cli_module


@pytest.fixture
def edge_isp_main(monkeypatch):
    """``main(argv) -> int`` of the `edge-isp` command, with `doctor` and `deploy` registered."""
    if "edge_isp.cli.deploy_commands" not in cli_module.COMMAND_MODULES:
        modules = (*cli_module.COMMAND_MODULES, "edge_isp.cli.deploy_commands")
        monkeypatch.setattr(cli_module, "COMMAND_MODULES", modules)
    return cli_module.main
