"""Hostile and careless inputs to the `edge-isp` command, one case each: the file or option a
user could give, the command it goes to, and what must happen.

``expect``: ``"refused"`` (exit 1 and one message holding ``needle``), ``"reported"`` (the
command goes on, and says ``needle`` on stderr: a camera error counted) or ``"accepted"`` (a
valid input, by design). ``issue``: what issue #20 found before the fix (``"traceback"``,
``"silent"``) or None for a case added here. Used by tests/fuzz/test_catalogue.py and by
scripts/hostile_trials.py, which measures the counts the issue gives.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from tests.fuzz import files as F


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], list[str]]  # makes the input under a folder; returns the argv
    expect: str
    needle: str
    issue: str | None = None


def _info(make: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    return lambda tmp: ["info", str(make(tmp))]


def _isp_with_profile(make: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    return lambda tmp: ["isp", str(F.frame_pair(tmp / "f")), "--profile", str(make(tmp)), "--out", str(tmp / "out")]


def _print_config(text: bytes) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        (tmp / "c.toml").write_bytes(text)
        return ["train", "joint", "--config", str(tmp / "c.toml"), "--print-config"]

    return build


def _run_config(**changes: str) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        config = F.run_config(tmp / "run.toml", F.onnx_model(tmp / "m.onnx"), **changes)
        return ["run", "--config", str(config), "--max-frames", "1"]

    return build


def _run(*options: str, model: Callable[[Path], Path] | None = None) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        path = model(tmp) if model else F.onnx_model(tmp / "m.onnx")
        argv = ["run", "--model", str(path), "--backend", "onnxruntime", "--max-frames", "2"]
        return argv + [o.replace("{tmp}", str(tmp)) for o in options]

    return build


def _export(make: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    return lambda tmp: ["export", "onnx", str(make(tmp)), "-o", str(tmp / "out.onnx"), "--input-size", "64x64"]


def _deploy(*options: str, model: Callable[[Path], Path] | None = None) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        path = model(tmp) if model else F.onnx_model(tmp / "m.onnx")
        return ["deploy", "cam.invalid", "--model", str(path), "--profile", "nexus6p-rear", "--dry-run", *options]

    return build


def _replay(damage: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        folder = F.recording(tmp / "rec", 3)
        damage(folder)
        return _run("--source", f"replay:{folder}", "--process-all")(tmp)

    return build


def _calibrate(manifest: bytes) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        folder = tmp / "dark"
        F.frame_pair(folder, "dark_000", width=32, height=32)
        (folder / "manifest.json").write_bytes(manifest)
        return ["calibrate", "dark", str(folder), "--out", str(tmp / "out")]

    return build


def _doctor_engine(**changes) -> Callable[[Path], list[str]]:
    return lambda tmp: ["doctor", "--engine", str(F.engine_with_sidecar(tmp / "m.engine", **changes))]


def _write(path_name: str, content: bytes, then: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        (tmp / path_name).write_bytes(content)
        return then(tmp)

    return build


def _zero_byte(folder: Path) -> None:
    (folder / "000001.npy").write_bytes(b"")


def _other_size(folder: Path) -> None:
    F.frame_pair(folder, "000001", width=64, height=64)


def _partial_last(tmp: Path) -> list[str]:
    from tests.tiny_data import make_classification

    run = tmp / "run"
    F.checkpoint(run / "last.pt", drop=("model",))
    train, val = make_classification(tmp / "train", 2), make_classification(tmp / "val", 1, seed=1)
    (tmp / "c.toml").write_text(
        f'[data]\ntrain = "{train}"\nval = "{val}"\nnum_workers = 0\n'
        f'[model]\nname = "raw_cls"\npretrained_backbone = false\nwidth_mult = 0.35\n'
        f'[run]\nout = "{run}"\ndevice = "cpu"\nprogress = false\n'
    )
    return ["train", "joint", "--config", str(tmp / "c.toml"), "--resume"]


def _existing_run(tmp: Path) -> list[str]:
    run = tmp / "run"
    F.checkpoint(run / "last.pt")
    (tmp / "c.toml").write_text(f'[run]\nout = "{run}"\n')
    return ["train", "joint", "--config", str(tmp / "c.toml")]


DEEP = b"[" * 5000 + b"]" * 5000

CASES = [
    # -- RawFrame pairs (edge-isp info) ------------------------------------------------------------
    Case(
        "empty .npy", _info(lambda t: F.truncated(F.frame_pair(t), 0.0)), "refused", "not a readable .npy", "traceback"
    ),
    Case("truncated .npy", _info(lambda t: F.truncated(F.frame_pair(t), 0.5)), "refused", "not a readable .npy"),
    Case("1-D array", _info(lambda t: _one_d(t)), "refused", "2-D array", "traceback"),
    Case(
        "non-UTF-8 sidecar",
        _info(lambda t: _set(F.frame_pair(t), ".json", b'{"cfa": "\xff"}')),
        "refused",
        "not UTF-8",
        "traceback",
    ),
    Case("sidecar not JSON", _info(lambda t: _set(F.frame_pair(t), ".json", b"{")), "refused", "not valid JSON"),
    Case("sidecar a list", _info(lambda t: _set(F.frame_pair(t), ".json", b"[1]")), "refused", "JSON object"),
    Case(
        "sidecar bit_depth string",
        _info(lambda t: F.sidecar(t, bit_depth="ten")),
        "refused",
        "'bit_depth'",
        "traceback",
    ),
    Case(
        "sidecar white_level null",
        _info(lambda t: F.sidecar(t, white_level=None)),
        "refused",
        "'white_level'",
        "traceback",
    ),
    Case(
        "sidecar timestamp string",
        _info(lambda t: F.sidecar(t, timestamp_s="noon")),
        "refused",
        "'timestamp_s'",
        "traceback",
    ),
    Case(
        "sidecar black level -5",
        _info(lambda t: F.sidecar(t, black_level=[-5, -5, -5, -5])),
        "refused",
        "'black_level' must be >= 0",
        "silent",
    ),
    Case("sidecar bit depth 10.7", _info(lambda t: F.sidecar(t, bit_depth=10.7)), "refused", "integer 8..16", "silent"),
    Case(
        "sidecar white 60000 at 10 bits",
        _info(lambda t: F.sidecar(t, white_level=60000)),
        "refused",
        "fit in 10 bits",
        "silent",
    ),
    Case("sidecar missing cfa", _info(lambda t: F.sidecar(t, cfa=...)), "refused", "missing field(s) cfa"),
    Case("sidecar version 99", _info(lambda t: F.sidecar(t, version=99)), "refused", "version 99"),
    Case("sidecar huge integer", _info(lambda t: F.sidecar(t, analogue_gain=10**400)), "refused", "analogue_gain"),
    Case("sidecar nested too deep", _info(lambda t: _set(F.frame_pair(t), ".json", DEEP)), "refused", "too deeply"),
    Case("pickled .npy", _info(lambda t: _pickled(t)), "refused", "not a readable .npy"),
    # -- camera raw files ----------------------------------------------------------------------------
    Case("truncated DNG", _info(lambda t: F.truncated(F.dng(t / "a.dng"), 0.3)), "refused", "a.dng"),
    Case("random-bytes DNG", _info(lambda t: F.random_bytes(t / "a.dng")), "refused", "a.dng"),
    # -- sensor profiles (edge-isp isp --profile) ------------------------------------------------------
    Case(
        "non-UTF-8 profile", _isp_with_profile(lambda t: F.not_utf8(t / "p.json")), "refused", "not UTF-8", "traceback"
    ),
    Case(
        "profile description 7",
        _isp_with_profile(lambda t: F.profile_file(t / "p.json", description=7)),
        "refused",
        "'description' must be a string",
        "silent",
    ),
    Case(
        "profile black level -5",
        _isp_with_profile(lambda t: F.profile_file(t / "p.json", black_level=[-5] * 4)),
        "refused",
        "'black_level' must be >= 0",
    ),
    Case(
        "profile bit depth string",
        _isp_with_profile(lambda t: F.profile_file(t / "p.json", bit_depth="10")),
        "refused",
        "'bit_depth'",
    ),
    Case(
        "profile huge integer",
        _isp_with_profile(lambda t: F.profile_file(t / "p.json", white_level=10**400)),
        "refused",
        "'white_level'",
    ),
    Case("profile nested too deep", _isp_with_profile(lambda t: _set(t / "p.json", "", DEEP)), "refused", "too deeply"),
    # -- train configs and run folders -------------------------------------------------------------------
    Case("non-UTF-8 train config", _print_config(b"[run]\nepochs = \xff\n"), "refused", "not UTF-8", "traceback"),
    Case("train config not TOML", _print_config(b"[run\n"), "refused", "not valid TOML"),
    Case("train config wrong type", _print_config(b'[run]\nepochs = "ten"\n'), "refused", "epochs"),
    Case("train into a folder holding a run", _existing_run, "refused", "--resume", "silent"),
    Case("resume a partial last.pt", _partial_last, "refused", "partial checkpoint"),
    # -- run configs --------------------------------------------------------------------------------------
    Case(
        "non-UTF-8 run config",
        _write("run.toml", b"source = \xff\n", lambda t: ["run", "--config", str(t / "run.toml")]),
        "refused",
        "not UTF-8",
        "traceback",
    ),
    Case("run config token 'a'", _run_config(token='"a"'), "refused", "at least 8 printable"),
    Case("run config shell in source", _run_config(source='"v4l2:/dev/video0;reboot"'), "refused", "shell syntax"),
    # -- the live command ----------------------------------------------------------------------------------
    Case(
        "--lux 1e19", _run("--source", "sim", "--lux", "1e19"), "refused", "lux must be a number from 0.01", "traceback"
    ),
    Case("--lux 1e-38", _run("--source", "sim", "--lux", "1e-38"), "refused", "lux must be a number from 0.01"),
    Case("--token a", _run("--source", "sim", "--http", "127.0.0.1:0", "--token", "a"), "refused", "at least 8"),
    Case("0-byte replay frame", _replay(_zero_byte), "reported", "000001.npy skipped", "traceback"),
    Case(
        "64x64 frame in a 128x96 recording", _replay(_other_size), "reported", "is 64x64, but the recording's", "silent"
    ),
    Case(
        "output path is a file",
        _write("taken", b"", lambda t: ["isp", str(F.frame_pair(t / "f")), "--out", str(t / "taken")]),
        "refused",
        "File exists",
        "traceback",
    ),
    # -- models and their metadata ------------------------------------------------------------------------
    Case(
        "random-bytes ONNX", _run("--source", "sim", model=lambda t: F.random_bytes(t / "m.onnx")), "refused", "m.onnx"
    ),
    Case(
        "metadata class_names not JSON",
        _run("--source", "sim", model=lambda t: F.onnx_model(t / "m.onnx", class_names="[oops")),
        "refused",
        "class_names",
    ),
    Case(
        "metadata model_config too deep",
        _run("--source", "sim", model=lambda t: F.onnx_model(t / "m.onnx", model_config=DEEP.decode())),
        "refused",
        "model_config",
    ),
    Case(
        "metadata input_size odd",
        _run("--source", "sim", model=lambda t: F.onnx_model(t / "m.onnx", input_size="127x95")),
        "refused",
        "input_size",
    ),
    # -- checkpoints (edge-isp export onnx) -------------------------------------------------------------------
    Case(
        "partial checkpoint",
        _export(lambda t: F.checkpoint(t / "c.pt", drop=("model",))),
        "refused",
        "partial checkpoint",
        "traceback",
    ),
    Case(
        "checkpoint with a bad model_config",
        _export(lambda t: F.checkpoint(t / "c.pt", model_config={"x": 1})),
        "refused",
        "model_config",
    ),
    Case(
        "checkpoint weights of another model",
        _export(lambda t: F.checkpoint(t / "c.pt", model={})),
        "refused",
        "do not fit",
    ),
    Case(
        "truncated checkpoint",
        _export(lambda t: F.truncated(F.checkpoint(t / "c.pt"), 0.5)),
        "refused",
        "not a readable edge-isp checkpoint",
    ),
    # -- engine sidecars (edge-isp doctor --engine) -----------------------------------------------------------
    Case(
        "engine sidecar key a string",
        _doctor_engine(key="orin"),
        "reported",
        "field 'key' must be an object",
        "traceback",
    ),
    Case(
        "engine sidecar model a list",
        _doctor_engine(model=[1, 2]),
        "reported",
        "field 'model' must be an object",
        "traceback",
    ),
    # -- deploy --dry-run ----------------------------------------------------------------------------------------
    Case(
        "deploy a random-bytes model",
        _deploy("--source", "sim", model=lambda t: F.random_bytes(t / "m.onnx")),
        "refused",
        "not a readable ONNX model",
        "silent",
    ),
    Case(
        "deploy a source with shell syntax",
        _deploy("--source", "v4l2:/dev/video0;reboot"),
        "refused",
        "shell syntax",
        "silent",
    ),
    # -- calibration manifests ----------------------------------------------------------------------------------
    Case(
        "manifest naming a missing file",
        _calibrate(json.dumps({"frames": {"gone.npy": {"kind": "dark"}}}).encode()),
        "refused",
        "gone.npy",
        "silent",
    ),
    Case("manifest not UTF-8", _calibrate(b'{"defaults": "\xff"}'), "refused", "not UTF-8"),
    # -- valid inputs, accepted by design ----------------------------------------------------------------------
    Case("a valid frame", _info(lambda t: F.frame_pair(t)), "accepted", ""),
    Case("lux 200000 (daylight)", _run("--source", "sim", "--lux", "200000"), "accepted", ""),
]


def _set(path: Path, suffix: str, content: bytes) -> Path:
    target = path.with_suffix(suffix) if suffix else path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    return path


def _one_d(tmp: Path) -> Path:
    import numpy as np

    npy = F.sidecar(tmp, height=..., width=...)
    np.save(npy, np.arange(64, dtype=np.uint16))
    return npy


def _pickled(tmp: Path) -> Path:
    import numpy as np

    npy = F.frame_pair(tmp)
    np.save(npy, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return npy
