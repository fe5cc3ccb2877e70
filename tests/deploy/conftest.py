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


def onnx_model_bytes(tag: bytes = b"model") -> bytes:
    """The bytes of a small valid ONNX model whose content carries ``tag`` (a metadata
    value), so that two tags make two different models: deploy refuses a file that is not ONNX."""
    from onnx import helper

    model = helper.make_model(helper.make_graph([], "g", [], []))
    entry = model.metadata_props.add()
    entry.key, entry.value = "tag", tag.decode()
    return model.SerializeToString()
