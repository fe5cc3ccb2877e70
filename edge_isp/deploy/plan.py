"""What `edge-isp deploy` puts on a board: the release, built here, and the plan it follows.

A release is one folder, the same for every host::

    app/edge_isp/...                the package (pure Python; the board's venv has its dependencies)
                                    with its shipped profiles and targets (edge_isp/_data/), no models
    bin/edge-isp                    runs this release's package with the board's Python (a script)
    model/<model>.onnx, model/<profile>.json
    target.toml                     the engine build target, when one was given
    engines/                        the engine and its sidecar, built on the board (with a target)
    config.toml                     the run config (source, outputs, token) with model and profile
    deploy/edge-isp.service, deploy/install-{common,jetson,pi}.sh
    MANIFEST.json                   the release id, version and every file's sha256

Its id is ``<version>-<12 hex>``: a hash of every file but the manifest, so the same inputs
give the same id and deploying them again changes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path
from typing import Any

import edge_isp
from edge_isp.contract.metadata import read_onnx_props
from edge_isp.contract.targets import load_target, target_path
from edge_isp.deploy.run_config import TOP_KEYS, parse_run_config
from edge_isp.deploy.ssh import check_remote_path
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.fileio import read_text, sha256_file, write_json
from edge_isp.sensor.profile import SensorProfile, profile_path
from edge_isp.shipped import shipped_dir
from edge_isp.tomlwrite import toml_value

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PACKAGE_DIR = Path(edge_isp.__file__).resolve().parent
DEFAULT_PREFIX = "/opt/edge-isp"
DEFAULT_REMOTE_CONFIG = "/etc/edge-isp/config.toml"
DEFAULT_HTTP = "127.0.0.1:8080"
SERVICE = "edge-isp"
BOARD_STEP_MODES = ("run", "dry-run")
UNIT_PREFIX = "/opt/edge-isp"  # the prefix written in deploy/edge-isp.service
INSTALL_SCRIPTS = ("install-common.sh", "install-jetson.sh", "install-pi.sh")


@dataclasses.dataclass(frozen=True)
class DeployOptions:
    """Everything `edge-isp deploy` was asked to do, validated.

    Attributes:
        model: the ONNX model (engines are built on the board, for its GPU and TensorRT).
        profile: a sensor profile name or file.
        target: an engine build target name or file, or None for no engine build.
        config: a run config file to ship (its model and profile are replaced), or None.
        source: the camera source; overrides the config's.
        prefix: where releases go on the board.
        remote_python: the board's Python that runs the service (default PREFIX/venv/bin/python).
        remote_config: the run config path the service reads.
        board_steps: "run", or "dry-run" to print the engine build and systemd steps instead.
        health_timeout_s: how long to wait for /healthz after a restart.
        keep: releases to keep on the board (current and previous always stay).
    """

    model: Path
    profile: str
    target: str | None = None
    config: Path | None = None
    source: str | None = None
    prefix: str = DEFAULT_PREFIX
    remote_python: str | None = None
    remote_config: str = DEFAULT_REMOTE_CONFIG
    board_steps: str = "run"
    health_timeout_s: float = 120.0
    keep: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", check_remote_path(self.prefix, "--prefix"))
        check_remote_path(self.python, "--remote-python")
        check_remote_path(self.remote_config, "--remote-config")
        if self.board_steps not in BOARD_STEP_MODES:
            raise InvalidInputError(
                f"board steps must be one of {', '.join(BOARD_STEP_MODES)}, got {self.board_steps!r}"
            )
        if self.keep < 2:
            raise InvalidInputError(f"--keep must be at least 2 (current and previous), got {self.keep}")
        if self.health_timeout_s <= 0:
            raise InvalidInputError(f"--health-timeout must be > 0 seconds, got {self.health_timeout_s}")

    @property
    def python(self) -> str:
        return self.remote_python or f"{self.prefix}/venv/bin/python"


@dataclasses.dataclass(frozen=True)
class Release:
    """A release built locally: its folder, id and manifest."""

    root: Path
    release: str
    manifest: dict[str, Any]

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())


def _resolve_profile(profile: str) -> Path:
    SensorProfile.load(profile)  # refuses a bad profile with the field's name
    return profile_path(profile)


def _resolve_target(target: str) -> Path:
    load_target(target)
    return target_path(target)


def to_toml(data: dict[str, Any]) -> str:
    """The run config as TOML: top-level keys, then [outputs]."""
    lines = ["# Written by `edge-isp deploy`: paths are relative to this release's folder."]
    lines += [f"{key} = {toml_value(v)}" for key, v in data.items() if not isinstance(v, dict)]
    for table, values in data.items():
        if isinstance(values, dict):
            lines += ["", f"[{table}]", *(f"{key} = {toml_value(v)}" for key, v in values.items())]
    return "\n".join(lines) + "\n"


def engine_file(model_name: str) -> str:
    """The engine the release's service runs, ``engines/<name>.engine``: a link, made on the
    board, to the engine `edge-isp export engine` built into the release's cache ``engines/``.
    ``<name>`` is the model file's name up to its first dot, as the engine cache names it."""
    return f"engines/{model_name.split('.')[0]}.engine"


def release_config(options: DeployOptions, model_name: str, profile_name: str) -> dict[str, Any]:
    """The release's run config: the user's file (or defaults) with this release's model and
    profile. With a target the service runs the engine built on the board, with TensorRT."""
    data: dict[str, Any] = {}
    if options.config is not None:
        if not options.config.is_file():
            raise MissingFileError(f"run config {options.config} does not exist")
        try:
            data = tomllib.loads(read_text(options.config, "run config"))
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInputError(f"{options.config}: not valid TOML: {exc}") from None
    if options.source is not None:
        data["source"] = options.source
    if "source" not in data:
        raise InvalidInputError("the board's camera is not known: give --source (e.g. v4l2:/dev/video0) or --config")
    if options.target is not None:
        data["model"], data["backend"] = engine_file(model_name), "tensorrt"
    else:
        data["model"] = f"model/{model_name}"
    data["profile"] = f"model/{profile_name}"
    data.setdefault("outputs", {}).setdefault("http", DEFAULT_HTTP)
    ordered = {k: data[k] for k in TOP_KEYS if k in data}
    ordered.update({k: v for k, v in data.items() if k not in ordered})
    # The token file lives on the board, so it is checked there; everything else here.
    parse_run_config(ordered, Path("/"), origin=str(options.config or "the release's run config"), read_token=False)
    return ordered


def launcher_script(python: str) -> str:
    """``bin/edge-isp``: a Python script (run by the board's Python) that runs this release's package.

    The release is found from the script's own path with symlinks resolved, so a running
    service keeps its release when `current` moves to another. The package goes first on
    ``sys.path``: neither an installed edge-isp nor one in the working directory shadows it.
    """
    return (
        f"#!{python}\n"
        "# Written by `edge-isp deploy`: runs this release's package with the board's Python.\n"
        "import os\n"
        "import sys\n"
        "\n"
        'app = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "app")\n'
        "sys.path.insert(0, app)\n"
        'os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (app, os.environ.get("PYTHONPATH")) if p)\n'
        "from edge_isp.cli import main  # noqa: E402\n"
        "\n"
        "sys.exit(main())\n"
    )


def _copy_app(out: Path) -> None:
    """The package as installed here, with its shipped data (profiles, targets, board files;
    links in a checkout are followed) but not the default models: the release carries its own."""
    caches = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")

    def ignore(folder: str, names: list[str]) -> set[str]:
        return set(caches(folder, names)) | ({"models"} if Path(folder) == PACKAGE_DIR / "_data" else set())

    shutil.copytree(PACKAGE_DIR, out / "app" / "edge_isp", ignore=ignore)


def _deploy_files(out: Path, prefix: str) -> None:
    deploy_dir = shipped_dir("deploy")
    unit, scripts = deploy_dir / "edge-isp.service", [deploy_dir / n for n in INSTALL_SCRIPTS]
    missing = [p.name for p in (unit, *scripts) if not p.is_file()]
    if missing:
        raise MissingFileError(f"this edge-isp install lacks its board files ({', '.join(missing)} in {deploy_dir})")
    (out / "deploy").mkdir()
    (out / "deploy" / unit.name).write_text(unit.read_text(encoding="utf-8").replace(UNIT_PREFIX, prefix))
    for script in scripts:
        shutil.copy2(script, out / "deploy" / script.name)


def build_release(options: DeployOptions, out: Path) -> Release:
    """Assemble the release in ``out`` (an empty or absent folder) and name it."""
    model = options.model
    if not model.is_file():
        raise MissingFileError(f"model {model} does not exist")
    if model.suffix.lower() != ".onnx":
        raise InvalidInputError(
            f"--model must be an ONNX file (.onnx), got {model.name}: engines are built on the board, "
            "for its GPU and TensorRT version"
        )
    read_onnx_props(model)  # refuses a file that is not an ONNX model before anything ships
    profile = _resolve_profile(options.profile)
    target = _resolve_target(options.target) if options.target else None
    config = release_config(options, model.name, profile.name)

    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise InvalidInputError(f"release folder {out} must be empty")
    _copy_app(out)
    (out / "model").mkdir()
    shutil.copy2(model, out / "model" / model.name)
    shutil.copy2(profile, out / "model" / profile.name)
    if target is not None:
        shutil.copy2(target, out / "target.toml")
    (out / "config.toml").write_text(to_toml(config), encoding="utf-8")
    (out / "bin").mkdir()
    (out / "bin" / "edge-isp").write_text(launcher_script(options.python), encoding="utf-8")
    (out / "bin" / "edge-isp").chmod(0o755)
    _deploy_files(out, options.prefix)

    files = {p.relative_to(out).as_posix(): sha256_file(p) for p in sorted(out.rglob("*")) if p.is_file()}
    digest = hashlib.sha256("".join(f"{name}\0{sha}\n" for name, sha in files.items()).encode()).hexdigest()
    release = f"{edge_isp.__version__}-{digest[:12]}"
    manifest = {
        "schema": "edge-isp/release",
        "schema_version": 1,
        "release": release,
        "version": edge_isp.__version__,
        "model": {"file": f"model/{model.name}", "sha256": files[f"model/{model.name}"]},
        "profile": f"model/{profile.name}",
        "target": options.target,
        "python": options.python,
        "files": files,
    }
    write_json(out / "MANIFEST.json", manifest)
    return Release(out, release, manifest)
