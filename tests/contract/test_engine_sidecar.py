"""The engine sidecar read by the runtime and doctor: written once, malformed fields refused
with the file named (not a traceback from a field of the wrong type)."""

from __future__ import annotations

import json

import pytest

from edge_isp.contract.engine_sidecar import EngineKey, check_engine, read_sidecar, sidecar_path, write_sidecar
from edge_isp.errors import InvalidInputError

KEY = EngineKey("ab" * 32, "fp16", "10.3.0", "Orin", "8.7", None)


def _engine(tmp_path, model=None):
    engine = tmp_path / "m.fp16.0123.engine"
    engine.write_bytes(b"plan")
    write_sidecar(engine, KEY, b"plan", {"model": model or {"edge_isp.task": "detection"}})
    return engine


def test_written_sidecar_reads_back_and_checks(tmp_path):
    engine = _engine(tmp_path)
    info = read_sidecar(engine)
    assert info["key"] == KEY.to_dict() and info["engine_file"] == engine.name and info["engine_bytes"] == 4
    assert check_engine(engine, "10.3.0", "Orin", "8.7") == {"edge_isp.task": "detection"}


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("key", "ab", "'key' must be an object"), ("engine_sha256", 7, "'engine_sha256' must be a string"),
     ("model", ["x"], "'model' must be an object of strings"), ("model", {"a": 1}, "'model' must be an object")],
)  # fmt: skip
def test_malformed_fields_are_refused_naming_the_file(tmp_path, field, value, words):
    engine = _engine(tmp_path)
    path = sidecar_path(engine)
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidInputError, match=rf"m\.fp16\.0123\.engine\.json: field {words}"):
        read_sidecar(engine)
    with pytest.raises(InvalidInputError):
        check_engine(engine, "10.3.0", "Orin", "8.7")


def test_not_utf8(tmp_path):
    engine = _engine(tmp_path)
    sidecar_path(engine).write_bytes(b"\xff\xfe{")
    with pytest.raises(InvalidInputError, match="is not UTF-8 text"):
        read_sidecar(engine)
