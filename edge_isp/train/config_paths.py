"""The paths in a training config: where relative ones start, and where the stages' runs are.

A relative path written in a config file is relative to the file's own folder, so
``configs/detection.toml`` (``root = "../data/demo"``) works from any working folder. Paths
given on the command line (``--set data.root=...``, ``--out``) are relative to the working
folder, as a shell user expects. Once loaded, a path is kept relative to the working folder
when it lies under it (absolute otherwise), and :func:`relative_to_file` writes it back
relative to the file a resolved config is saved in, so a saved ``config.toml`` loads back to
the same paths.

The keys that hold paths: :data:`PATH_KEYS`; ``teacher.model`` when it names a file (a slash
or a suffix, unlike ``mobilenet_v2_imagenet``); ``sensor.profile`` too when it is a file (has
a ``/`` or ends in ``.json``) rather than a shipped profile's name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PATH_KEYS = (
    ("data", "root"),
    ("data", "train"),
    ("data", "val"),
    ("data", "train_images"),
    ("data", "val_images"),
    ("run", "out"),
    ("init", "isp"),
    ("init", "head"),
    ("teacher", "cache"),
)
STAGE_RUNS = ("isp", "head")  # the runs whose best.pt the joint and baseline stages start from


def _is_path(section: str, key: str, value: Any) -> bool:
    if not isinstance(value, str) or not value or value == "none":
        return False
    if (section, key) == ("sensor", "profile"):
        return "/" in value or value.endswith(".json")
    if (section, key) == ("teacher", "model"):  # a file, or a built-in teacher's name
        return "/" in value or "." in os.path.basename(value)
    return (section, key) in PATH_KEYS


def _from_working_folder(path: str) -> str:
    """``path`` relative to the working folder when it lies under it, else absolute."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    return absolute if relative == ".." or relative.startswith(".." + os.sep) else relative


def _map_paths(data: Mapping[str, Any], change) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section, values in data.items():
        if isinstance(values, Mapping):
            out[section] = {k: change(v) if _is_path(section, k, v) else v for k, v in values.items()}
        else:
            out[section] = values
    return out


def resolve_file_paths(data: Mapping[str, Any], config_file: str | Path) -> dict[str, Any]:
    """A config file's sections with its relative paths taken from the file's folder."""
    folder = os.path.dirname(os.fspath(config_file))

    def change(value: str) -> str:
        path = os.path.expanduser(value)
        return _from_working_folder(path if os.path.isabs(path) else os.path.join(folder, path))

    return _map_paths(data, change)


def relative_to_file(data: Mapping[str, Any], config_file: str | Path) -> dict[str, Any]:
    """Sections (of :meth:`TrainConfig.to_dict`) with relative paths rewritten relative to the
    folder of ``config_file``, the file they are about to be saved in."""
    folder = os.path.abspath(os.path.dirname(os.fspath(config_file)) or ".")

    def change(value: str) -> str:
        return value if os.path.isabs(value) else os.path.relpath(os.path.abspath(value), folder)

    return _map_paths(data, change)


def runs_beside(init: Mapping[str, str | None], default_out: str | None, out: str | Path) -> dict[str, str]:
    """The ``init.isp``/``init.head`` checkpoints to use when ``--out`` moved this stage's run:
    a config's init path under the folder that holds its default runs (``runs/detection/isp/
    best.pt`` beside ``runs/detection/joint``) is looked for beside ``out`` instead
    (``OUT/../isp/best.pt``), where the same ``--out`` habit put it. Only paths found there
    are returned."""
    if default_out is None:
        return {}
    default_root = os.path.dirname(os.path.normpath(default_out))
    new_root = os.path.dirname(os.path.normpath(os.fspath(out)))
    moved = {}
    for role in STAGE_RUNS:
        path = init.get(role)
        if not path or not default_root:
            continue
        relative = os.path.relpath(os.path.normpath(path), default_root)
        if relative.startswith(".."):
            continue
        candidate = os.path.join(new_root, relative)
        if os.path.normpath(candidate) != os.path.normpath(path) and os.path.isfile(candidate):
            moved[role] = _from_working_folder(candidate)
    return moved
