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
every other TensorRT tool. The sidecar's format is :mod:`edge_isp.contract.engine_sidecar`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from edge_isp.contract.engine_sidecar import EngineKey, read_sidecar, sidecar_path, write_sidecar
from edge_isp.errors import EdgeIspError, InvalidInputError
from edge_isp.fileio import sha256_file, write_bytes

T = TypeVar("T")


class EngineError(EdgeIspError, RuntimeError):
    """TensorRT could not build or load an engine; the message says what it reported."""


@dataclasses.dataclass(frozen=True)
class CachedEngine:
    """An engine file and its sidecar (``info``, the parsed JSON)."""

    engine_path: Path
    sidecar_path: Path
    info: dict[str, Any]


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
        if sha256_file(engine) != info.get("engine_sha256"):
            self.say(f"cached engine {engine.name} changed since it was built (sha256 differs); rebuilding")
            return None
        return CachedEngine(engine, side, info)

    def store(self, key: EngineKey, name: str, plan: bytes, info: dict[str, Any]) -> CachedEngine:
        """Write the engine then its sidecar, atomically; ``info`` adds to the sidecar."""
        engine = self.engine_path(key, name)
        side = sidecar_path(engine)
        side.unlink(missing_ok=True)
        write_bytes(engine, plan)
        return CachedEngine(engine, side, write_sidecar(engine, key, plan, info))

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
