"""The engine cache: TensorRT engines keyed on what makes them valid, with a sidecar JSON file.

An engine runs only with the TensorRT version and the GPU model it was built for, and
answers for the one ONNX graph and settings it was built from. The key is therefore: the
ONNX file's sha256, the precision, the TensorRT version, the GPU name and compute capability,
the DLA core, and the build settings (workspace limit, batch profile, optimization level,
GPU fallback). Its digest names the files::

    CACHE/NAME.PRECISION.DIGEST.engine        the plain plan TensorRT serialized (trtexec reads it)
    CACHE/NAME.PRECISION.DIGEST.engine.json   the sidecar: the key, the engine's sha256, when and
                                             how it was built, the model's ONNX metadata
    CACHE/timing.TRT_VERSION.GPU.smCC.cache  TensorRT's timing cache, shared by builds on that GPU

Both files are written atomically, the engine first and the sidecar last, so a sidecar is
only ever beside a complete engine. A lookup checks the sidecar's key and the engine's sha256;
an engine that is missing, changed or fails to deserialize is rebuilt, with a message that
says why. The metadata stays in the sidecar, not in the plan: a prefix would break trtexec and
every other TensorRT tool.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from edge_isp import __version__
from edge_isp.errors import EdgeIspError, InvalidInputError
from edge_isp.fileio import read_json, write_bytes, write_json

SIDECAR_FORMAT = "edge-isp/engine"
SIDECAR_VERSION = 1
T = TypeVar("T")


class EngineError(EdgeIspError, RuntimeError):
    """TensorRT could not build or load an engine; the message says what it reported."""


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


@dataclasses.dataclass(frozen=True)
class CachedEngine:
    """An engine file and its sidecar (``info``, the parsed JSON)."""

    engine_path: Path
    sidecar_path: Path
    info: dict[str, Any]


def sidecar_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def read_sidecar(engine_path: str | Path) -> dict[str, Any]:
    """The sidecar of an engine file, checked for format and version."""
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
    for field, kind in _SIDECAR_FIELDS.items():
        if field in data and not isinstance(data[field], kind):
            raise InvalidInputError(
                f"{path}: field {field!r} must be a {kind.__name__}, got {str(data[field])[:60]!r}; "
                "rebuild the engine with edge-isp export engine"
            )
    return data


# The sidecar's fields read by name, with their JSON types (dict: an object, str: a string).
_SIDECAR_FIELDS = {"key": dict, "model": dict, "engine_sha256": str, "onnx": str}


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


class EngineCache:
    """Engines under ``root`` (see the module docstring). ``say`` receives the messages."""

    def __init__(self, root: str | Path, say: Callable[[str], None] = print) -> None:
        self.root = Path(root)
        self.say = say

    def engine_path(self, key: EngineKey, name: str) -> Path:
        return self.root / f"{name}.{key.precision}.{key.digest}.engine"

    def timing_cache_path(self, tensorrt_version: str, gpu_slug: str, compute_capability: str) -> Path:
        """The timing cache for a TensorRT version on a GPU model (TensorRT refuses others')."""
        return self.root / f"timing.{tensorrt_version}.{gpu_slug}.sm{compute_capability.replace('.', '')}.cache"

    def lookup(self, key: EngineKey, name: str) -> CachedEngine | None:
        """The cached engine for ``key``, or None (with a message when one was there but is bad)."""
        engine = self.engine_path(key, name)
        side = sidecar_path(engine)
        if not side.exists():
            return None
        try:
            info = read_sidecar(engine)
        except InvalidInputError as exc:
            self.say(f"ignoring cached engine {engine.name}: {exc}")
            return None
        if info.get("key") != key.to_dict():
            self.say(f"ignoring cached engine {engine.name}: its sidecar's key does not match (a digest collision?)")
            return None
        if not engine.is_file():
            self.say(f"cached engine {engine.name} is missing beside its sidecar; rebuilding")
            return None
        if file_sha256(engine) != info.get("engine_sha256"):
            self.say(f"cached engine {engine.name} changed since it was built (sha256 differs); rebuilding")
            return None
        return CachedEngine(engine, side, info)

    def store(self, key: EngineKey, name: str, plan: bytes, info: dict[str, Any]) -> CachedEngine:
        """Write the engine then its sidecar, atomically; ``info`` adds to the sidecar."""
        engine = self.engine_path(key, name)
        side = sidecar_path(engine)
        side.unlink(missing_ok=True)
        write_bytes(engine, plan)
        data = {
            **info,
            "format": SIDECAR_FORMAT,
            "version": SIDECAR_VERSION,
            "key": key.to_dict(),
            "digest": key.digest,
            "engine_file": engine.name,
            "engine_sha256": hashlib.sha256(plan).hexdigest(),
            "engine_bytes": len(plan),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "edge_isp_version": __version__,
        }
        write_json(side, data)
        return CachedEngine(engine, side, data)

    def remove(self, key: EngineKey, name: str) -> None:
        engine = self.engine_path(key, name)
        sidecar_path(engine).unlink(missing_ok=True)
        engine.unlink(missing_ok=True)

    def load_or_build(
        self,
        key: EngineKey,
        name: str,
        build: Callable[[], bytes],
        load: Callable[[bytes], T],
        info: dict[str, Any] | None = None,
        *,
        rebuild: bool = False,
    ) -> tuple[T, CachedEngine, bool]:
        """The loaded engine for ``key``: from the cache if it is there and deserializes,
        else built, stored and loaded. ``load`` returns the engine object, or raises / returns
        None when the plan does not deserialize. Returns (engine, cache entry, was built)."""
        cached = None if rebuild else self.lookup(key, name)
        if cached is not None:
            reason = None
            try:
                engine = load(cached.engine_path.read_bytes())
            except Exception as exc:  # TensorRT raises its own error types for a bad plan
                engine, reason = None, f"{type(exc).__name__}: {exc}"
            if engine is not None:
                return engine, cached, False
            self.say(
                f"cached engine {cached.engine_path.name} failed to deserialize "
                f"({reason or 'TensorRT returned no engine'}); rebuilding it"
            )
            self.remove(key, name)
        start = time.perf_counter()
        plan = bytes(build())
        seconds = time.perf_counter() - start
        entry = self.store(key, name, plan, {**(info or {}), "build_seconds": round(seconds, 3)})
        engine = load(plan)
        if engine is None:
            self.remove(key, name)
            raise EngineError(f"TensorRT built an engine for {name} but cannot deserialize it; nothing was kept")
        return engine, entry, True
