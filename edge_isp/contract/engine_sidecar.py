"""The sidecar beside a TensorRT engine: ``NAME.PRECISION.DIGEST.engine.json``.

An engine runs only with the TensorRT version and the GPU model it was built for, and answers
for the one ONNX graph and settings it was built from. The sidecar says which (the
:class:`EngineKey`: ONNX sha256, precision, TensorRT version, GPU name and compute capability,
DLA core, build settings), holds the engine's own sha256, and keeps a copy of the model's ONNX
metadata, which a plan file cannot carry (a prefix on the plan would break trtexec). The export
side writes it (:func:`write_sidecar`, from :mod:`edge_isp.contract.engine_cache`); the runtime
and ``edge-isp doctor`` read it (:func:`read_sidecar`, :func:`check_engine`). Torch-free.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from edge_isp import __version__
from edge_isp.errors import InvalidInputError
from edge_isp.fileio import read_json, sha256_file, write_json

SIDECAR_FORMAT = "edge-isp/engine"
SIDECAR_VERSION = 1

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EngineKey:
    """What an engine depends on. ``settings``: JSON-able build settings (workspace, profile...)."""

    onnx_sha256: str
    precision: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    dla_core: int | None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineKey:
        fields = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or not {f for f in fields if f != "settings"} <= set(data):
            raise InvalidInputError(f"an engine key needs the fields {sorted(fields)}, got {data!r}")
        return cls(**{k: v for k, v in data.items() if k in fields})

    @property
    def digest(self) -> str:
        """16 hex digits of the sha256 of the key's canonical JSON."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def sidecar_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def write_sidecar(engine_path: str | Path, key: EngineKey, plan: bytes, info: dict[str, Any]) -> dict[str, Any]:
    """Write the sidecar of the engine ``plan`` at ``engine_path``, atomically; ``info`` adds
    to it (target, build plan, the model's metadata as ``model``...). Returns what was written."""
    engine_path = Path(engine_path)
    data = {
        **info,
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "key": key.to_dict(),
        "digest": key.digest,
        "engine_file": engine_path.name,
        "engine_sha256": hashlib.sha256(plan).hexdigest(),
        "engine_bytes": len(plan),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "edge_isp_version": __version__,
    }
    write_json(sidecar_path(engine_path), data)
    return data


def read_sidecar(engine_path: str | Path) -> dict[str, Any]:
    """The sidecar of an engine file, checked for format, version and the shape of the fields
    a reader uses (``key``, ``engine_sha256``, ``model``)."""
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise InvalidInputError(
            f"engine {engine_path} has no sidecar {path.name}; rebuild it with edge-isp export engine"
        )
    data = read_json(path, "engine sidecar")
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise InvalidInputError(f"{path}: not an edge-isp engine sidecar (format {SIDECAR_FORMAT!r})")
    if data.get("version") != SIDECAR_VERSION:
        raise InvalidInputError(
            f"{path}: sidecar version {data.get('version')!r}; this edge-isp reads {SIDECAR_VERSION}"
        )
    if not isinstance(data.get("key"), dict):
        raise InvalidInputError(f"{path}: field 'key' must be an object (the engine's cache key)")
    if not isinstance(data.get("engine_sha256"), str):
        raise InvalidInputError(f"{path}: field 'engine_sha256' must be a string")
    model = data.get("model", {})
    if not isinstance(model, dict) or not all(isinstance(v, str) for v in model.values()):
        raise InvalidInputError(f"{path}: field 'model' must be an object of strings (the ONNX metadata)")
    return data


def compatibility_problems(
    info: dict[str, Any], tensorrt_version: str, gpu_name: str, compute_capability: str
) -> list[str]:
    """Why an engine (its sidecar ``info``) cannot run here; empty if it can."""
    key = info.get("key", {})
    problems = []
    if key.get("tensorrt_version") != tensorrt_version:
        problems.append(f"built with TensorRT {key.get('tensorrt_version')}, this is TensorRT {tensorrt_version}")
    if key.get("compute_capability") != compute_capability or key.get("gpu_name") != gpu_name:
        problems.append(
            f"built for {key.get('gpu_name')} (compute capability {key.get('compute_capability')}), "
            f"this GPU is {gpu_name} ({compute_capability})"
        )
    return problems


def check_engine(path: str | Path, tensorrt_version: str, gpu_name: str, compute_capability: str) -> dict[str, str]:
    """Check an engine against its sidecar before loading it, and return the model's ONNX
    metadata the sidecar keeps.

    Refused: an engine whose bytes changed since it was built (sha256), or one built for
    another TensorRT version or GPU model, with a message saying how to rebuild. An engine
    without a sidecar (made by trtexec, say) is run unchecked, with a warning, and without
    metadata (class names are then numbered).
    """
    path = Path(path)
    if not sidecar_path(path).is_file():
        log.warning(
            "engine %s has no sidecar %s: it is not checked against this TensorRT and GPU, and has no class names",
            path,
            sidecar_path(path).name,
        )
        return {}
    info = read_sidecar(path)
    rebuild = f"rebuild it here with `edge-isp export engine {info.get('onnx', 'MODEL.onnx')}`"
    if sha256_file(path) != info["engine_sha256"]:
        raise InvalidInputError(
            f"engine {path} changed since it was built (its sha256 differs from the sidecar's); {rebuild}"
        )
    problems = compatibility_problems(info, tensorrt_version, gpu_name, compute_capability)
    if problems:
        raise InvalidInputError(f"engine {path} cannot run here: {'; '.join(problems)}; {rebuild}")
    return dict(info.get("model", {}))
