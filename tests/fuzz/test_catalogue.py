"""Every case of the hostile-input catalogue through the real `edge-isp` command: a refused
input exits 1 with one message naming the problem (no traceback), a bad replay frame is
reported and counted, a valid input is accepted."""

from __future__ import annotations

import logging
import os

import pytest

from edge_isp.cli import main
from tests.fuzz.catalogue import CASES, Case


@pytest.fixture(autouse=True)
def quiet_progress(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case, tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = case.build(tmp_path)
    with caplog.at_level(logging.WARNING):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    captured = capsys.readouterr()
    err = captured.err + caplog.text + (captured.out if case.expect == "reported" else "")
    assert "Traceback" not in err
    said = " ".join(err.split()).replace("- ", "-")  # unwrapped
    if case.expect == "refused":
        assert code == 1, err
        assert "error: " in err and case.needle in said, err
    elif case.expect == "reported":
        assert code in (0, 1) and case.needle in said, err
    else:
        assert code == 0, err
    assert os.getcwd() == str(tmp_path)
