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


# The shipped models by scene: what the demo shows and which model it runs by default.
MODEL_SCENES = {"footage": "real", "garments": "garment"}
MODEL_TASKS = ("det", "cls")


def default_model(task: str = "det", scene: str = "footage") -> Path:
    """The shipped model's ONNX file for ``task`` ("det" or "cls") and ``scene``: "footage"
    (the default) is the real-world one (``models/real-{task}``), "garments" the one trained
    on the simulated garment scene (``models/garment-{task}``). It may not exist in a checkout
    that has not trained it (`scripts/train_default_models.sh`)."""
    if task not in MODEL_TASKS:
        raise ValueError(f"unknown model task {task!r}; one of {', '.join(MODEL_TASKS)}")
    if scene not in MODEL_SCENES:
        raise ValueError(f"unknown scene {scene!r}; one of {', '.join(MODEL_SCENES)}")
    return shipped_dir("models") / f"{MODEL_SCENES[scene]}-{task}" / "model.onnx"


def shipped_model_names() -> list[str]:
    """Names of the shipped models (``garment-det``, ``real-cls``...): folders holding a model.onnx."""
    folder = shipped_dir("models")
    return sorted(p.parent.name for p in folder.glob("*/model.onnx")) if folder.is_dir() else []


def model_or_shipped(name_or_path: str | Path) -> Path:
    """A model file the user names by path, or a shipped model by its bare name
    (``garment-det`` -> ``models/garment-det/model.onnx``). A path that does not exist is
    returned as given, for the backend to report; only a bare name is looked up."""
    path = Path(name_or_path)
    if path.exists() or path.suffix or path.name != str(path):
        return path
    shipped = shipped_file("models", f"{path}/model.onnx")
    if shipped is None:
        names = ", ".join(shipped_model_names()) or "none"
        raise MissingFileError(f"model {str(name_or_path)!r} not found: not a file, nor a shipped model ({names})")
    return shipped
