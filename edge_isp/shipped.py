"""Data that ships inside the package: sensor profiles, engine build targets, the default
models and the board files (service unit, installers), found with :mod:`importlib.resources`.

In a checkout, ``edge_isp/_data/<kind>`` are links to the folders a person edits:

    profiles -> calibration/profiles/*.json     targets -> export/targets/*.toml
    models   -> models/<name>/model.onnx ...    deploy  -> deploy/ (unit, installers)

A wheel carries copies of them (setuptools follows the links when it copies package data;
``pyproject.toml`` lists the patterns), so an installed edge-isp finds the same data from any
working folder. Nothing here is found relative to the working folder or the repository root.
A user's own file is always given by its path, beside these names.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from edge_isp.errors import MissingFileError

KINDS = {
    "profiles": "calibration/profiles",
    "targets": "export/targets",
    "models": "models",
    "deploy": "deploy",
}


def shipped_dir(kind: str) -> Path:
    """The folder of one kind of shipped data (it may be absent from a stripped install)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of shipped data {kind!r}; one of {', '.join(KINDS)}")
    folder = resources.files("edge_isp") / "_data" / kind
    # An installed package is unpacked on disk; ONNX Runtime, TensorRT and shutil need paths.
    return Path(str(folder))


def shipped_names(kind: str, suffix: str) -> list[str]:
    """Names (file stems) of the shipped files of ``kind`` ending in ``suffix``, sorted."""
    folder = shipped_dir(kind)
    return sorted(p.stem for p in folder.glob(f"*{suffix}")) if folder.is_dir() else []


def shipped_file(kind: str, relative: str) -> Path | None:
    """The shipped file ``relative`` (e.g. ``"nexus6p-rear.json"``) of ``kind``, or None."""
    path = shipped_dir(kind) / relative
    return path if path.is_file() else None


def file_or_shipped(name_or_path: str | Path, kind: str, suffix: str, what: str) -> Path:
    """A file the user names (that exists), else the shipped ``kind`` of that bare name;
    anything else is a :class:`MissingFileError` naming ``what`` and the shipped names."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_file(kind, f"{path}{suffix}") if path.suffix == "" and path.name == str(path) else None
    if shipped is None:
        names = ", ".join(shipped_names(kind, suffix)) or "none"
        raise MissingFileError(f"{what} {str(name_or_path)!r} not found: not a file, nor a shipped {what} ({names})")
    return shipped


def default_model(task: str = "det") -> Path:
    """The shipped default model's ONNX file for ``task`` ("det" or "cls"); it may not exist
    in a checkout that has not trained it (`scripts/train_default_models.sh`)."""
    return shipped_dir("models") / f"default-{task}" / "model.onnx"
