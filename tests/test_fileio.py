"""Atomic writes leave no debris: the temporaries of killed writers go at the next write into
the folder; a live writer's stay. Reading text/JSON gives one clear error for a bad file."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from edge_isp import fileio
from edge_isp.errors import InvalidInputError
from edge_isp.fileio import atomic_open, clean_stale_temporaries, read_json, write_bytes


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_write_removes_the_temporaries_of_dead_writers(tmp_path):
    dead = tmp_path / f".last.pt.{dead_pid()}.k3j2h1g0.tmp"
    mine = tmp_path / f".best.pt.{os.getpid()}.a1b2c3d4.tmp"
    old_style = tmp_path / ".history.json.zx81qw7e.tmp"
    young_old_style = tmp_path / ".config.toml.ab12cd34.tmp"
    unrelated = tmp_path / ".notes.tmp"
    for path in (dead, mine, old_style, young_old_style, unrelated):
        path.write_bytes(b"partial")
    hour_ago = time.time() - 2 * 3600
    os.utime(old_style, (hour_ago, hour_ago))
    write_bytes(tmp_path / "last.pt", b"new")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"last.pt", mine.name, young_old_style.name, unrelated.name}
    assert clean_stale_temporaries(tmp_path) == []
    # Once per folder per process: a second write does not scan the folder again.
    later = tmp_path / f".x.{dead_pid()}.zzzzzzzz.tmp"
    later.write_bytes(b"")
    write_bytes(tmp_path / "best.pt", b"new")
    assert later.exists() and tmp_path.resolve() in fileio._CLEANED


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_open(target, "wb") as handle:
        handle.write(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe{}", "is not UTF-8 text"),
        (b"{", "is not valid JSON"),
        (b"[" * 100_000, "nests JSON too deeply"),
    ],
)
def test_read_json_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=message) as info:
        read_json(path, "sidecar")
    assert str(path) in str(info.value)
