"""Real files, damaged: truncated, bit-flipped or with bytes inserted (RawFrame .npy, DNG, ONNX,
checkpoints). Each reader returns a valid object or raises the project's input error, and the
`edge-isp` command given one exits 0 or 1 with a message, never with a traceback."""

from __future__ import annotations

import contextlib
import functools
import io
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_isp.cli import main
from edge_isp.contract.metadata import metadata_of_backend, read_onnx_props
from edge_isp.errors import EdgeIspError
from edge_isp.runtime.backends import make_backend
from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.rawfile import load_raw
from edge_isp.train.checkpoint import load_checkpoint, model_from_checkpoint
from tests.fuzz import files as F
from tests.fuzz.tally import record


def damage(original: bytes) -> st.SearchStrategy[bytes]:
    """Cut at any length, 1 to 16 bits flipped, or a run of bytes written over or inserted."""
    size = len(original)

    def flip(positions: list[tuple[int, int]]) -> bytes:
        data = bytearray(original)
        for pos, bit in positions:
            data[pos] ^= 1 << bit
        return bytes(data)

    cut = st.integers(0, size - 1).map(lambda n: original[:n])
    flips = st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 7)), min_size=1, max_size=16).map(flip)
    over = st.tuples(st.integers(0, size - 1), st.binary(min_size=1, max_size=64)).map(
        lambda a: original[: a[0]] + a[1] + original[a[0] + len(a[1]) :]
    )
    inserted = st.tuples(st.integers(0, size), st.binary(min_size=1, max_size=64)).map(
        lambda a: original[: a[0]] + a[1] + original[a[0] :]
    )
    return st.one_of(cut, flips, over, inserted).filter(lambda d: d != original)


@functools.cache
def originals() -> dict[str, bytes]:
    """The valid files the damage starts from (made once; not a fixture, so that a failing
    example's report shows the damage, not these megabytes)."""
    root = Path(tempfile.mkdtemp(prefix="edge-isp-originals-"))
    npy = F.frame_pair(root / "frame", width=32, height=24)
    made = {
        "npy": npy.read_bytes(),
        "json": npy.with_suffix(".json").read_bytes(),
        "dng": F.dng(root / "a.dng").read_bytes(),
        "onnx": F.onnx_model(root / "m.onnx").read_bytes(),
        "checkpoint": F.checkpoint(root / "c.pt").read_bytes(),
    }
    shutil.rmtree(root)
    return made


def command(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, err.getvalue()


@given(data=st.data())
def test_damaged_raw_frame_pair(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("npy")
    which = data.draw(st.sampled_from(["npy", "json"]))
    damaged = data.draw(damage(originals()[which]))
    record(f"RawFrame .{which}", damaged)
    (folder / "f.npy").write_bytes(damaged if which == "npy" else originals()["npy"])
    (folder / "f.json").write_bytes(damaged if which == "json" else originals()["json"])
    with contextlib.suppress(EdgeIspError):
        RawFrame.load(folder / "f.npy")
    code, err = command(["info", str(folder / "f.npy")])
    assert code == 0 or (code == 1 and err.startswith("error: ")), err


@given(data=st.data())
def test_damaged_dng(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("dng") / "a.dng"
    damaged = data.draw(damage(originals()["dng"]))
    record("DNG", damaged)
    path.write_bytes(damaged)
    try:
        frame = load_raw(path)
        assert frame.data.ndim == 2
    except EdgeIspError:
        pass
    code, err = command(["info", str(path)])
    assert code == 0 or (code == 1 and err.startswith("error: ")), err


@given(data=st.data())
def test_damaged_onnx(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    damaged = data.draw(damage(originals()["onnx"]))
    record("ONNX", damaged)
    path.write_bytes(damaged)
    try:
        read_onnx_props(path)
        with make_backend(path, "onnxruntime") as backend:
            metadata_of_backend(backend)
    except EdgeIspError:
        pass


@given(data=st.data())
def test_damaged_checkpoint(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("pt") / "c.pt"
    damaged = data.draw(damage(originals()["checkpoint"]))
    record("checkpoint", damaged)
    path.write_bytes(damaged)
    try:
        load_checkpoint(path)
        model_from_checkpoint(path)
    except EdgeIspError:
        pass


def test_onnx_metadata_that_is_not_utf8_is_an_input_error(tmp_path):
    """Found by the fuzzer: ONNX Runtime loads such a model, then raises UnicodeDecodeError."""
    good = originals()["onnx"]
    at = good.index(b"spot_detector", good.index(b"edge_isp.model_config"))
    path = tmp_path / "m.onnx"
    path.write_bytes(good[:at] + b"\x80" + good[at + 1 :])
    with pytest.raises(EdgeIspError, match="not UTF-8"):
        make_backend(path, "onnxruntime")
