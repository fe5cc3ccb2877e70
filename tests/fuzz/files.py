"""Real, valid files of every kind edge-isp reads, made here to be damaged by the fuzz tests and
the hostile-input trials: a RawFrame pair, a DNG, a sensor profile, a train config, a run
config, an ONNX model, a training checkpoint, an engine sidecar."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from edge_isp.sensor.frame import RawFrame
from edge_isp.sensor.profile import SensorProfile
from tests.runtime.onnx_models import spot_detector
from tests.sensor.test_rawfile import write_dng

# The spot detector's input: replayed and simulated frames are this size.
WIDTH, HEIGHT = 128, 96


def frame(width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> RawFrame:
    data = np.random.default_rng(seed).integers(64, 1024, (height, width), dtype=np.uint16)
    return RawFrame(data=data, cfa="RGGB", bit_depth=10, black_level=64, white_level=1023, timestamp_s=10.0 + seed)


def frame_pair(folder: Path, name: str = "frame", **kw) -> Path:
    """A RawFrame saved as ``name.npy`` + ``name.json``; returns the .npy path."""
    folder.mkdir(parents=True, exist_ok=True)
    return frame(**kw).save(folder / name)


def sidecar(folder: Path, **changes) -> Path:
    """A RawFrame pair whose sidecar has ``changes`` (a value of ``...`` removes the key)."""
    npy = frame_pair(folder)
    meta = json.loads(npy.with_suffix(".json").read_text())
    for key, value in changes.items():
        if value is ...:
            meta.pop(key, None)
        else:
            meta[key] = value
    npy.with_suffix(".json").write_text(json.dumps(meta))
    return npy


def recording(folder: Path, count: int = 3) -> Path:
    for i in range(count):
        frame_pair(folder, f"{i:06d}", seed=i)
    return folder


def dng(path: Path) -> Path:
    mosaic = np.random.default_rng(0).integers(0, 4000, size=(24, 32), dtype=np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dng(path, mosaic)
    return path


def profile_dict() -> dict:
    return SensorProfile.load("nexus6p-rear").to_dict()


def profile_file(path: Path, **changes) -> Path:
    data = profile_dict()
    data.update(changes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def onnx_model(path: Path, **metadata: str) -> Path:
    """The spot detector, with its metadata entries replaced by ``metadata`` (edge_isp. keys)."""
    import onnx

    spot_detector(path, WIDTH, HEIGHT)
    if metadata:
        model = onnx.load(str(path))
        props = {p.key: p.value for p in model.metadata_props}
        props.update({f"edge_isp.{k}": v for k, v in metadata.items()})
        del model.metadata_props[:]
        for key, value in props.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(path))
    return path


def checkpoint(path: Path, drop: tuple[str, ...] = (), **changes) -> Path:
    """A tiny untrained classifier checkpoint as `edge-isp train` writes it, less ``drop``."""
    from edge_isp.model.registry import create_model
    from edge_isp.train.checkpoint import save_checkpoint

    model = create_model("raw_cls", num_classes=2, pretrained_backbone=False, width_mult=0.35)
    state = {
        "stage": "joint",
        "model_config": model.config.to_dict(),
        "model": model.state_dict(),
        "class_names": ["blue", "red"],
        "train_config": {"sensor": {"profile": "nexus6p-rear", "val_light": [3.0], "light_unit": "lux"}},
    }
    state.update(changes)
    for key in drop:
        state.pop(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, state)
    return path


def engine_with_sidecar(path: Path, **changes) -> Path:
    """A stand-in engine file (bytes only: no TensorRT here) and the sidecar the engine cache
    writes beside it, with ``changes``."""
    from edge_isp.contract.engine_sidecar import SIDECAR_FORMAT, SIDECAR_VERSION
    from edge_isp.fileio import sha256_file

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"plan bytes")
    data = {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "key": {"tensorrt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7"},
        "engine_sha256": sha256_file(path),
        "onnx": "model.onnx",
        "model": {"edge_isp.task": "detection"},
    }
    data.update(changes)
    path.with_name(path.name + ".json").write_text(json.dumps(data))
    return path


def run_config(path: Path, model: Path, **changes) -> Path:
    lines = {"source": '"sim"', "model": json.dumps(str(model))}
    lines.update(changes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
    return path


def truncated(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def bit_flipped(path: Path, flips: int = 8, seed: int = 0) -> Path:
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for position in rng.integers(0, len(data), flips):
        data[position] ^= 1 << int(rng.integers(0, 8))
    path.write_bytes(bytes(data))
    return path


def random_bytes(path: Path, size: int = 4096, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


def not_utf8(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"name = \xff\xfe\xfd\n" + os.urandom(0))
    return path
