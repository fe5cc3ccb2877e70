"""Atomic file writing (a crash never leaves a half-written artifact in place) and the reading
of small text files (JSON, TOML) with one clear error for a file that is not what it should be.

The temporary file of an atomic write is ``.NAME.PID.XXXXXXXX.tmp`` beside its target. A
kill between its creation and the replace leaves it behind; the next atomic write into that
folder by a process removes those whose writing process is gone (and, for names without a
process id, those older than :data:`STALE_TMP_AGE_S`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from edge_isp.errors import InvalidInputError

# Read once at import: os.umask can only be read by setting it, which races with threads.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
STALE_TMP_AGE_S = 3600.0
# mkstemp's name: "." + target + "." + [writer's pid + "."] + 8 random characters + ".tmp".
_TMP_NAME = re.compile(r"\..+?\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp")


def _process_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists, as another user's
        return False
    return False


def clean_stale_temporaries(folder: str | os.PathLike, older_than_s: float = STALE_TMP_AGE_S) -> list[Path]:
    """Remove the temporary files that interrupted atomic writes left in ``folder``: those
    whose writer process is gone, and those without a process id older than ``older_than_s``.
    Returns the paths removed."""
    removed = []
    cutoff = time.time() - older_than_s
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            match = _TMP_NAME.fullmatch(entry.name)
            if match is None:
                continue
            with contextlib.suppress(OSError):
                if not entry.is_file(follow_symlinks=False):
                    continue
                pid = match.group("pid")
                stale = _process_gone(int(pid)) if pid else entry.stat(follow_symlinks=False).st_mtime < cutoff
                if stale:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


_CLEANED: set[Path] = set()
_CLEANED_LOCK = threading.Lock()


def _clean_once(folder: Path) -> None:
    # Once per folder per process: a recording writes thousands of frames into one folder, and
    # the writers whose temporaries could be stale are earlier processes.
    key = folder.resolve()
    with _CLEANED_LOCK:
        if key in _CLEANED:
            return
        _CLEANED.add(key)
    clean_stale_temporaries(folder)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one step.

    On an exception the temporary file is removed and the previous ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_once(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    # mkstemp makes the file private (0600); give it the mode an ordinary open() would.
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def jsonable(value: Any) -> Any:
    """``json.dump``'s ``default=``: numpy scalars and arrays as Python numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def replace_folder(built: Path, out: Path) -> None:
    """Put the finished folder ``built`` at ``out`` (on the same file system), replacing what was
    there only once ``built`` is complete: the old folder is moved aside, the new one renamed
    in, then the old one deleted, so an interruption leaves one of the two whole."""
    if out.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        out.rename(trash / out.name)
        built.rename(out)
        shutil.rmtree(trash)
    else:
        built.rename(out)


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """The UTF-8 text of ``path``; a file that is not UTF-8 text is an :class:`InvalidInputError`."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """The JSON content of ``path``; text that is not UTF-8 or not JSON (or nests too deeply
    to parse) is an :class:`InvalidInputError` naming the file."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{what} {path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInputError(f"{what} {path} nests JSON too deeply to read") from None


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
